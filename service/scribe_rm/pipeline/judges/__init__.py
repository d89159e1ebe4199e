"""Judge backends behind one interface (`Judge` in base.py), each built from its own config."""

from __future__ import annotations

from .base import LABELS, Judge, JudgeError, ScoreDistribution
from .local import LocalJudge, LocalJudgeConfig
from .openai import OpenAIJudge, OpenAIJudgeConfig

JudgeConfig = LocalJudgeConfig | OpenAIJudgeConfig

__all__ = ["LABELS", "Judge", "JudgeConfig", "JudgeError", "LocalJudgeConfig", "OpenAIJudgeConfig",
           "ScoreDistribution", "make_judge"]


def make_judge(config: JudgeConfig) -> Judge:
    if isinstance(config, OpenAIJudgeConfig):
        return OpenAIJudge(config)
    return LocalJudge(config.model_dir, config.device)
