"""The assembled pipeline (library, embedder, router, judge, scorer) and its start-up, shared by the
HTTP app and the in-process CLI commands."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from . import metrics
from .embedder import Embedder
from .judges import Judge, make_judge
from .library import Library, load_library
from .router import Router
from .scorer import Scorer
from .settings import Settings

log = logging.getLogger("scribe_rm")


def configured_library(settings: Settings) -> Library:
    return load_library(settings.prototypes_dir, settings.fallback_prototype_id, settings.on_invalid_card,
                        include_drafts=settings.load_draft_cards)


@dataclass
class Services:
    settings: Settings
    library: Library
    embedder: Embedder
    router: Router
    judge: Judge
    scorer: Scorer
    loaded: bool = False
    load_error: str | None = None

    @classmethod
    def build(cls, settings: Settings, judge: Judge | None = None) -> "Services":
        library = configured_library(settings)
        for message in library.skipped:
            log.warning("card skipped: %s", message)
        embedder = Embedder.from_settings(settings)
        router = Router.from_settings(library, embedder, settings)
        judge = judge or make_judge(settings)
        return cls(settings, library, embedder, router, judge, Scorer(settings, library, router, judge))

    async def load(self, with_judge: bool = True) -> None:
        try:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, self.embedder.load)
            await loop.run_in_executor(None, self.router.build_sync)
            if with_judge:
                await self.judge.start()
            self.loaded = True
            metrics.BUILD.labels(self.library.version, self.judge.model_name, self.settings.judge_backend).set(1)
            log.info("ready: %d cards, library %s, judge %s", len(self.library.cards), self.library.version,
                     self.judge.model_name)
        except Exception as exc:
            self.load_error = f"{type(exc).__name__}: {exc}"
            log.exception("start-up failed")

    async def readiness(self) -> tuple[bool, dict]:
        checks = {"embedder": self.embedder.loaded, "router": self.router.ready,
                  "judge": self.loaded and await self.judge.ready()}
        return all(checks.values()), {"checks": checks, "error": self.load_error}

    async def aclose(self) -> None:
        await self.judge.aclose()
        self.embedder.close()
