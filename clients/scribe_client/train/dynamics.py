"""Training dynamics: per training step, the outcome and process rewards, the mean step score per skill
prototype, the routing fallback rate, the library version, the credit mode and the advantage statistics, as
JSONL; and a PNG of the per-skill score curves with the advantages under them."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, List, Optional


class DynamicsLog:
    def __init__(self, path: Path):
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("")
        self.records: List[Dict[str, Any]] = []
        self.refreshes: List[Dict[str, Any]] = []
        self.library_version: Optional[str] = None  # set by refresh.py: the version records are scored with

    def mark_refresh(self, event: Dict[str, Any]) -> None:
        """A library refresh (refresh.py): written to the log as {"event": "library_refresh", ...}."""
        self.refreshes.append(event)
        self.library_version = event["library_version"]
        with self.path.open("a") as sink:
            sink.write(json.dumps({"event": "library_refresh", **event}) + "\n")

    def add(self, results: List[Dict[str, Any]], library_version: Optional[str] = None, credit: Optional[str] = None,
            advantages: Optional[Dict[str, float]] = None, unmapped_steps: int = 0, **kwargs: Any) -> None:
        """One record per training step: the step's results, the library version they were scored with, and (from
        the trainer) the credit mode, the statistics of the token advantages and the steps mapped to no token."""
        state = kwargs.get("trainer_state")
        ok = [r for r in results if r["status"] == "ok"]
        steps = [s for r in ok for s in r["steps"]]
        per_skill: Dict[str, List[float]] = defaultdict(list)
        for s in steps:
            per_skill[s["prototype_id"]].append(s["score_normalized"])
        outcomes = [r["outcome"] for r in ok if r.get("outcome") is not None]
        record = {
            "step": getattr(state, "global_step", len(self.records)),
            "n_samples": len(results),
            "failed": len(results) - len(ok),
            "outcome_reward": sum(outcomes) / len(outcomes) if outcomes else None,
            "process_reward": sum(r["process_reward"] for r in ok) / len(ok) if ok else None,
            "reward": sum(r["reward"] for r in ok) / len(ok) if ok else None,
            "fallback_rate": sum(s["fallback"] for s in steps) / len(steps) if steps else None,
            "skill_scores": {k: sum(v) / len(v) for k, v in sorted(per_skill.items())},
            "skill_counts": {k: len(v) for k, v in sorted(per_skill.items())},
            "library_version": library_version or self.library_version,
            "credit": credit,
            "advantages": advantages,
            "unmapped_steps": unmapped_steps,
        }
        self.records.append(record)
        with self.path.open("a") as sink:
            sink.write(json.dumps(record) + "\n")


def credit_modes(records: List[Dict[str, Any]]) -> str:
    return ", ".join(sorted({r["credit"] for r in records if r.get("credit")})) or "not recorded"


def plot_title(records: List[Dict[str, Any]]) -> str:
    return f"SCRIBE per-skill step scores during GRPO (credit: {credit_modes(records)})"


def plot(jsonl: Path, png: Path, top_k: int = 8) -> Path:
    """Per-skill mean step score over training (the most frequent skills), with the rewards on top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    lines = [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()]
    records = [r for r in lines if "event" not in r]
    refreshes = [r for r in lines if r.get("event") == "library_refresh"]
    counts: Dict[str, int] = defaultdict(int)
    for r in records:
        for skill, n in r["skill_counts"].items():
            counts[skill] += n
    skills = sorted(counts, key=counts.get, reverse=True)[:top_k]  # type: ignore[arg-type]
    fig, (top, bottom, credit_axis) = plt.subplots(3, 1, figsize=(9, 9.5), sharex=True,
                                                  gridspec_kw={"height_ratios": [2, 2, 1.3]})
    xs = [r["step"] for r in records]
    for key in ("outcome_reward", "process_reward"):
        top.plot(xs, [r[key] for r in records], marker="o", label=key.replace("_", " "))
    top.set_ylabel("reward")
    top.legend()
    for skill in skills:
        points = [(r["step"], r["skill_scores"][skill]) for r in records if skill in r["skill_scores"]]
        bottom.plot([p[0] for p in points], [p[1] for p in points], marker=".", label=skill)
    for refresh in refreshes:  # each library refresh, labelled with the version it loaded
        for axis in (top, bottom):
            axis.axvline(refresh["step"], color="grey", linestyle="--", linewidth=1)
        top.annotate(f"library {refresh['library_version']}", (refresh["step"], 1.0), xycoords=("data", "axes fraction"),
                     fontsize=7, rotation=90, va="top", ha="right")
    bottom.set_ylabel("mean step score (0-1)")
    bottom.legend(fontsize=7, loc="best")
    stats = [(r["step"], r["advantages"]) for r in records if r.get("advantages")]
    if stats:
        steps_x = [s for s, _ in stats]
        mean = [a["mean"] for _, a in stats]
        std = [a["std"] for _, a in stats]
        credit_axis.plot(steps_x, mean, marker="o", label="mean")
        credit_axis.fill_between(steps_x, [m - d for m, d in zip(mean, std)], [m + d for m, d in zip(mean, std)],
                                 alpha=0.25, label="± std")
        credit_axis.plot(steps_x, [a["min"] for _, a in stats], linestyle=":", label="min")
        credit_axis.plot(steps_x, [a["max"] for _, a in stats], linestyle=":", label="max")
        credit_axis.legend(fontsize=7, loc="best")
    credit_axis.set_ylabel("token advantage")
    credit_axis.set_title(f"token advantages, credit {credit_modes(records)}", fontsize=9)
    credit_axis.set_xlabel("training step")
    credit_axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(plot_title(records))
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png
