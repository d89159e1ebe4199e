"""Judge backends behind one interface (`Judge` in base.py)."""

from __future__ import annotations

from ..settings import Settings
from .base import LABELS, Judge, JudgeError, ScoreDistribution

__all__ = ["LABELS", "Judge", "JudgeError", "ScoreDistribution", "make_judge"]


def make_judge(settings: Settings) -> Judge:
    if settings.judge_backend == "openai":
        from .openai import OpenAIJudge

        return OpenAIJudge(settings)
    from .local import LocalJudge

    return LocalJudge(settings.judge_model_dir, settings.judge_device)
