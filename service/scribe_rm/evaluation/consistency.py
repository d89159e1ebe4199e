"""The paper's two consistency measures, for SCRIBE scoring and for a no-rubric baseline on the same judge.

Repeat agreement: each trajectory "scored `samples` times with independent sampling". The judge's reply is
one score token whose full distribution we read, so T=1 sampling of that token is exactly a draw from the
distribution; we draw `samples` labels per step with a seeded RNG instead of calling the judge again.
Cross-instance: groups of steps from different problems sharing a skill and a failure; exact label
agreement over the pairs in a group and the mean |score gap| (0-3)."""

from __future__ import annotations

import itertools
import json
import random
from collections import Counter
from pathlib import Path
from statistics import fmean, pstdev
from typing import Any

from ..blocks.resources import eval_data
from ..pipeline.engine import Engine
from ..pipeline.judges import ScoreDistribution
from ..pipeline.segment import Segment, Trajectory

DEFAULT_DATA = eval_data("consistency.json")
METHODS = ("scribe", "baseline")


def repeat_metrics(step_distributions: list[ScoreDistribution], samples: int, rng: random.Random) -> dict[str, float]:
    """Sampled rewards of one trajectory: agreement with the modal reward, and their standard deviation."""
    rewards = []
    for _ in range(samples):
        labels = [rng.choices(range(4), weights=d.probabilities)[0] for d in step_distributions]
        rewards.append(round(sum(labels) / (3 * len(labels)), 6))
    modal_count = Counter(rewards).most_common(1)[0][1]
    return {"agreement": modal_count / samples, "reward_std": pstdev(rewards)}


def group_metrics(distributions: list[ScoreDistribution]) -> dict[str, float]:
    pairs = list(itertools.combinations(distributions, 2))
    return {"agreement": fmean(a.label == b.label for a, b in pairs),
            "mean_gap": fmean(abs(a.expected - b.expected) for a, b in pairs)}


async def evaluate_consistency(engine: Engine, data: dict[str, Any], samples: int = 10, seed: int = 0,
                               limit: int | None = None) -> dict[str, Any]:
    trajectories = data["repeat"][:limit]
    groups = data["groups"][:limit]
    scorer = engine.scorer
    report: dict[str, Any] = {"judge_model": engine.judge.model_name, "library_version": engine.library.version,
                              "samples": samples, "n_trajectories": len(trajectories), "n_groups": len(groups)}
    for method in METHODS:
        with_card = method == "scribe"
        rng = random.Random(seed)
        repeats = []
        for trajectory in trajectories:
            steps = Trajectory(trajectory["question"], [Segment(text) for text in trajectory["steps"]])
            distributions = [(await scorer.score_step(steps, j, with_card=with_card)).distribution
                             for j in range(len(steps.segments))]
            repeats.append(repeat_metrics(distributions, samples, rng))
        cross, routed_to_skill = [], []
        for group in groups:
            judged = [await scorer.score_step(Trajectory(step["question"], [Segment(step["text"])]), 0,
                                              with_card=with_card) for step in group["steps"]]
            cross.append(group_metrics([j.distribution for j in judged]))
            routed_to_skill += [j.card_id == group["skill"] for j in judged]
        report[method] = {
            "repeat_agreement": fmean(r["agreement"] for r in repeats),
            "repeat_reward_std": fmean(r["reward_std"] for r in repeats),
            "cross_agreement": fmean(c["agreement"] for c in cross),
            "cross_mean_gap": fmean(c["mean_gap"] for c in cross),
            **({"cross_routed_to_group_skill": fmean(routed_to_skill)} if method == "scribe" else {}),
        }
    return report


def load_data(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    if not {"repeat", "groups"} <= data.keys():
        raise ValueError(f"{path}: needs 'repeat' and 'groups'")
    return data


def markdown(report: dict[str, Any]) -> str:
    rows = [("repeat: exact reward agreement", "repeat_agreement"), ("repeat: reward std", "repeat_reward_std"),
            ("cross-instance: exact label agreement", "cross_agreement"), ("cross-instance: mean gap (0-3)", "cross_mean_gap")]
    lines = [f"Judge `{report['judge_model']}`, library `{report['library_version']}`, {report['samples']} samples, "
             f"{report['n_trajectories']} trajectories, {report['n_groups']} groups.", "",
             "| measure | SCRIBE | no-rubric baseline |", "|---|---:|---:|"]
    lines += [f"| {label} | {report['scribe'][key]:.3f} | {report['baseline'][key]:.3f} |" for label, key in rows]
    return "\n".join(lines) + "\n"
