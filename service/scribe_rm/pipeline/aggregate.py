"""Step scores to a process reward, and process plus outcome to the reward a trainer uses."""

from __future__ import annotations

import math

from .schemas import Aggregation


def process_reward(normalized: list[float], how: Aggregation, error_threshold: float = 0.5) -> float:
    """Aggregate step scores already normalized to [0, 1]."""
    if not normalized:
        raise ValueError("no step scores to aggregate")
    if how == "mean":
        return sum(normalized) / len(normalized)
    if how == "min":
        return min(normalized)
    if how == "last":
        return normalized[-1]
    if how == "product":
        return math.prod(normalized)
    if how == "first_error":
        # fraction of steps before the first one scored below the threshold (1.0 when none is)
        first = next((i for i, s in enumerate(normalized) if s < error_threshold), len(normalized))
        return first / len(normalized)
    raise ValueError(f"unknown aggregation {how!r}")


def combine(process: float, outcome: float | None, weight_outcome: float, weight_process: float) -> float:
    """reward = w_outcome * outcome + w_process * process; the process reward alone without an outcome."""
    if outcome is None:
        return process
    return weight_outcome * outcome + weight_process * process
