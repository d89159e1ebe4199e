"""Step-level cases from BFCL v4 multi-turn ground truth (PyPI bfcl-eval, installed --no-deps and read with
importlib.resources), each gold call paired with perturbed copies. Reports pairwise accuracy (the gold step
scored above its perturbation; ties count as misses) and the routing distribution, for SCRIBE and for the
no-rubric baseline on the same judge."""

from __future__ import annotations

import ast
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

from ..pipeline.engine import Engine
from ..pipeline.segment import Segment, Trajectory

PERTURBATIONS = ("wrong_function", "wrong_argument", "missing_argument", "skipped_prerequisite", "unneeded_call")
SPLIT = "BFCL_v4_multi_turn_base.json"


@dataclass
class Case:
    case_id: str
    kind: str
    question: str
    gold: list[Segment]  # context + the gold step last
    perturbed: list[Segment]  # context + the perturbed step last


@dataclass
class Scored:
    gold: dict[str, float] = field(default_factory=dict)
    perturbed: dict[str, list[float]] = field(default_factory=dict)


def _jsonl(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def load_multi_turn(limit: int | None = None) -> list[tuple[str, list[str], list[list[str]]]]:
    """(id, user turns, gold calls per turn) from the packaged BFCL data."""
    data = files("bfcl_eval") / "data"
    gold = {r["id"]: r["ground_truth"] for r in _jsonl(data / "possible_answer" / SPLIT)}
    records = []
    for row in _jsonl(data / SPLIT)[:limit]:
        turns = [" ".join(m["content"] for m in turn if m.get("role") == "user") for turn in row["question"]]
        records.append((row["id"], turns, gold[row["id"]]))
    return records


def _step(call: str) -> Segment:
    return Segment(f"Tool call: {call}")


def perturb(call: str, kind: str, rng: random.Random, functions: list[str]) -> str | None:
    """A perturbed copy of one call string, or None when this kind does not apply to it."""
    node = ast.parse(call, mode="eval").body
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        return None
    if kind == "wrong_function":
        others = [f for f in functions if f != node.func.id]
        node.func.id = rng.choice(others)
    elif kind == "missing_argument":
        if node.keywords:
            node.keywords.pop(rng.randrange(len(node.keywords)))
        elif node.args:
            node.args.pop()
        else:
            return None
    elif kind == "wrong_argument":
        values = [kw.value for kw in node.keywords] + list(node.args)
        constants = [v for v in values if isinstance(v, ast.Constant) and isinstance(v.value, (str, int, float))]
        if not constants:
            return None
        target = rng.choice(constants)
        target.value = (target.value + 7 if isinstance(target.value, (int, float)) and not isinstance(target.value, bool)
                        else f"{target.value}_old" if isinstance(target.value, str) else target.value)
    else:
        return None
    return ast.unparse(node)


def build_cases(records, seed: int = 0, max_cases: int | None = None) -> list[Case]:
    rng = random.Random(seed)
    functions = sorted({c.split("(", 1)[0].strip() for _, _, turns in records for calls in turns for c in calls})
    cases: list[Case] = []
    for record_id, turns, gold_turns in records:
        for t, (question, calls) in enumerate(zip(turns, gold_turns)):
            for k, call in enumerate(calls):
                context = [_step(c) for c in calls[:k]]
                gold = context + [_step(call)]
                for kind in PERTURBATIONS:
                    if kind == "skipped_prerequisite":
                        if k == 0:
                            continue
                        perturbed = context[:-1] + [_step(call)]
                    elif kind == "unneeded_call":
                        if k != len(calls) - 1:
                            continue  # once per turn: an extra call after the turn's work is done
                        extra = rng.choice([f for f in functions if f not in {c.split("(")[0] for c in calls}])
                        perturbed = gold + [_step(f"{extra}()")]  # scored: the extra call after the gold one
                    else:
                        changed = perturb(call, kind, rng, functions)
                        if changed is None or changed == call:
                            continue
                        perturbed = context + [_step(changed)]
                    cases.append(Case(f"{record_id}/t{t}/c{k}", kind, question, gold, perturbed))
    rng.shuffle(cases)
    return cases[:max_cases]


async def _score(engine: Engine, method: str, question: str, segments: list[Segment], routes: Counter) -> float:
    """The last step's expected score in its context (gold steps recur across their perturbations: the
    scorer's judgement and routing caches answer the repeats)."""
    judged = await engine.scorer.score_step(Trajectory(question, segments), len(segments) - 1, domain="tool_use",
                                            with_card=method == "scribe")
    if method == "scribe":
        routes[judged.card_id] += 1
    return judged.distribution.expected


async def evaluate_bfcl(engine: Engine, records_limit: int = 20, max_cases: int | None = 40,
                        seed: int = 0) -> dict[str, Any]:
    cases = build_cases(load_multi_turn(records_limit), seed, max_cases)
    report: dict[str, Any] = {"judge_model": engine.judge.model_name, "library_version": engine.library.version,
                              "split": SPLIT, "n_cases": len(cases), "by_kind_count": dict(Counter(c.kind for c in cases))}
    scores: dict[str, dict[str, list[float]]] = {}
    for method in ("scribe", "baseline"):
        routes: Counter = Counter()
        wins, ties, by_kind = 0, 0, {k: [] for k in PERTURBATIONS}
        gold_scores, perturbed_scores = [], []
        for case in cases:
            g = await _score(engine, method, case.question, case.gold, routes)
            p = await _score(engine, method, case.question, case.perturbed, routes)
            wins += g > p
            ties += g == p
            by_kind[case.kind].append(g > p)
            gold_scores.append(g)
            perturbed_scores.append(p)
        report[method] = {
            "pairwise_accuracy": wins / len(cases) if cases else None, "ties": ties,
            "pairwise_accuracy_by_kind": {k: sum(v) / len(v) for k, v in by_kind.items() if v},
            **({"routing": dict(routes.most_common())} if method == "scribe" else {}),
        }
        scores[method] = {"gold": gold_scores, "perturbed": perturbed_scores}
    report["scores"] = scores
    return report


def markdown(report: dict[str, Any]) -> str:
    lines = [f"BFCL v4 `{report['split']}`: {report['n_cases']} gold/perturbed step pairs; judge "
             f"`{report['judge_model']}`, library `{report['library_version']}`.", "",
             "| pairwise accuracy (gold > perturbed) | SCRIBE | no-rubric baseline |", "|---|---:|---:|",
             f"| all | {report['scribe']['pairwise_accuracy']:.3f} | {report['baseline']['pairwise_accuracy']:.3f} |"]
    for kind in PERTURBATIONS:
        if kind in report["scribe"]["pairwise_accuracy_by_kind"]:
            lines.append(f"| {kind} ({report['by_kind_count'][kind]}) | "
                         f"{report['scribe']['pairwise_accuracy_by_kind'][kind]:.3f} | "
                         f"{report['baseline']['pairwise_accuracy_by_kind'][kind]:.3f} |")
    lines += ["", f"Ties: SCRIBE {report['scribe']['ties']}, baseline {report['baseline']['ties']}.", "",
              "Routing of scored steps (SCRIBE): " + ", ".join(f"{k} {v}" for k, v in report["scribe"]["routing"].items())]
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], png: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    bins = [i / 8 for i in range(25)]
    for ax, method in zip(axes, ("scribe", "baseline")):
        ax.hist(report["scores"][method]["gold"], bins=bins, alpha=0.6, label="gold")
        ax.hist(report["scores"][method]["perturbed"], bins=bins, alpha=0.6, label="perturbed")
        ax.set_title(f"{method}: accuracy {report[method]['pairwise_accuracy']:.2f}")
        ax.set_xlabel("expected step score (0-3)")
        ax.legend()
    axes[0].set_ylabel("steps")
    fig.suptitle(f"BFCL v4 step scores, judge {report['judge_model']}")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png
