"""Shared fixtures. HF_HUB_OFFLINE=1 makes any hidden hub download fail loudly."""

from __future__ import annotations

import asyncio
import math
import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import pytest  # noqa: E402

from scribe_rm.embedder import Embedder  # noqa: E402
from scribe_rm.judges import JudgeError  # noqa: E402
from scribe_rm.prototypes import load_library  # noqa: E402
from scribe_rm.router import Router  # noqa: E402
from scribe_rm.settings import Settings  # noqa: E402


def logprobs_for(label: int, confidence: float = 0.7) -> list[float]:
    """Label logprobs that put `confidence` on `label` and spread the rest evenly."""
    rest = (1 - confidence) / 3
    return [math.log(confidence if i == label else rest) for i in range(4)]


class ScriptedJudge:
    """A judge double driven by markers in the step under judgement:
    GOOD -> label 3, BAD -> label 0, FAIL -> JudgeError, SLOW -> sleeps `slow_s` first; otherwise label 2."""

    def __init__(self, slow_s: float = 5.0):
        self.model_name = "scripted-judge"
        self.slow_s = slow_s
        self.calls = 0
        self.cancelled = 0
        self.started = False

    async def start(self) -> None:
        self.started = True

    async def ready(self) -> bool:
        return self.started

    async def label_logprobs(self, messages):
        self.calls += 1
        step = messages[-1]["content"].split("# Step to score", 1)[1]
        try:
            if "SLOW" in step:
                await asyncio.sleep(self.slow_s)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        if "FAIL" in step:
            raise JudgeError("scripted failure")
        if "GOOD" in step:
            return logprobs_for(3)
        if "BAD" in step:
            return logprobs_for(0)
        return logprobs_for(2)

    async def aclose(self) -> None:
        pass


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def library(settings):
    return load_library(settings.prototypes_dir, settings.fallback_prototype_id)


@pytest.fixture(scope="session")
def embedder(settings):
    e = Embedder(settings.resolved_embedder_dir())
    e.load()
    return e


@pytest.fixture(scope="session")
def router(settings, library, embedder):
    r = Router(library, embedder, settings.route_threshold, settings.route_top_k, settings.fallback_prototype_id,
               settings.route_train_steps, settings.route_lexical_weight)
    r.build_sync()
    return r
