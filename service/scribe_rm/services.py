"""The assembled pipeline (library, embedder, router, judge, scorer) and its start-up, shared by the
HTTP app and the in-process CLI commands. The library-dependent part is one immutable snapshot
(`Pipeline`): a reload builds a new one in the background and swaps it in with one assignment, so a request
that took the old snapshot finishes on it and every response names exactly one library version."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from . import metrics
from .embedder import Embedder
from .gaps import GapSample
from .judges import Judge, make_judge
from .library import Library, load_library
from .library.loader import library_fingerprint
from .router import Router
from .scorer import Scorer
from .settings import Settings

log = logging.getLogger("scribe_rm")


def configured_library(settings: Settings) -> Library:
    return load_library(settings.prototypes_dir, settings.fallback_prototype_id, settings.on_invalid_card,
                        include_drafts=settings.load_draft_cards)


@dataclass(frozen=True)
class Pipeline:
    """What one library version serves with. Take it once per request."""
    library: Library
    router: Router
    scorer: Scorer


@dataclass(frozen=True)
class Reload:
    previous_version: str
    library_version: str
    cards: int
    changed: bool


@dataclass
class Services:
    settings: Settings
    embedder: Embedder
    judge: Judge
    pipeline: Pipeline
    gaps: GapSample
    loaded: bool = False
    load_error: str | None = None
    _reload_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _fingerprint: tuple = ()

    @classmethod
    def build(cls, settings: Settings, judge: Judge | None = None) -> "Services":
        library = configured_library(settings)
        for message in library.skipped:
            log.warning("card skipped: %s", message)
        embedder = Embedder.from_settings(settings)
        judge = judge or make_judge(settings)
        gaps = GapSample(settings.gap_sample_size, settings.gap_margin, settings.gap_seed)
        services = cls(settings, embedder, judge, _pipeline(settings, library, embedder, judge, gaps), gaps)
        services._fingerprint = library_fingerprint(settings.prototypes_dir)
        return services

    # the current snapshot's parts (a request that needs two of them takes `pipeline` once instead)
    @property
    def library(self) -> Library:
        return self.pipeline.library

    @property
    def router(self) -> Router:
        return self.pipeline.router

    @property
    def scorer(self) -> Scorer:
        return self.pipeline.scorer

    async def load(self, with_judge: bool = True) -> None:
        try:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, self.embedder.load)
            await loop.run_in_executor(None, self.router.build_sync)
            if with_judge:
                await self.judge.start()
            self.loaded = True
            self._publish_build_info(None)
            log.info("ready: %d cards, library %s, judge %s", len(self.library.cards), self.library.version,
                     self.judge.model_name)
        except Exception as exc:
            self.load_error = f"{type(exc).__name__}: {exc}"
            log.exception("start-up failed")

    async def reload(self) -> Reload:
        """Load the library directory again and, if it is valid, swap in a pipeline built on it (anchors from
        the anchor cache). Raises CardError, and the old pipeline keeps serving, if any card is invalid."""
        async with self._reload_lock:
            loop = asyncio.get_running_loop()
            old = self.pipeline
            fingerprint = library_fingerprint(self.settings.prototypes_dir)
            try:
                library = await loop.run_in_executor(None, configured_library, self.settings)
            except Exception:
                metrics.LIBRARY_RELOADS.labels("invalid").inc()
                raise
            self._fingerprint = fingerprint
            if library.version == old.library.version:
                metrics.LIBRARY_RELOADS.labels("unchanged").inc()
                return Reload(old.library.version, library.version, len(library.cards), changed=False)
            pipeline = _pipeline(self.settings, library, self.embedder, self.judge, self.gaps)
            await loop.run_in_executor(None, pipeline.router.build_sync)
            self.pipeline = pipeline  # the swap: requests from now on take the new snapshot
            self._publish_build_info(old.library.version)
            metrics.LIBRARY_RELOADS.labels("changed").inc()
            log.info("library reloaded: %s -> %s (%d cards)", old.library.version, library.version, len(library.cards))
            return Reload(old.library.version, library.version, len(library.cards), changed=True)

    async def watch_library(self, interval_s: float) -> None:
        """Reload when the library directory's files change (a mounted ConfigMap is updated in place)."""
        while True:
            await asyncio.sleep(interval_s)
            if not self.loaded:
                continue
            fingerprint = await asyncio.get_running_loop().run_in_executor(
                None, library_fingerprint, self.settings.prototypes_dir)
            if fingerprint == self._fingerprint:
                continue
            try:
                await self.reload()
            except Exception as exc:  # the old library keeps serving; the metric and the log say why
                self._fingerprint = fingerprint  # do not retry the same broken files every interval
                log.error("library change not applied: %s", exc)

    def _publish_build_info(self, previous_version: str | None) -> None:
        labels = (self.judge.model_name, self.settings.judge_backend)
        if previous_version is not None:
            try:
                metrics.BUILD.remove(previous_version, *labels)
            except KeyError:
                pass
        metrics.BUILD.labels(self.library.version, *labels).set(1)

    async def readiness(self) -> tuple[bool, dict]:
        checks = {"embedder": self.embedder.loaded, "router": self.router.ready,
                  "judge": self.loaded and await self.judge.ready()}
        return all(checks.values()), {"checks": checks, "error": self.load_error}

    async def aclose(self) -> None:
        await self.judge.aclose()
        self.embedder.close()


def _pipeline(settings: Settings, library: Library, embedder: Embedder, judge: Judge, gaps: GapSample) -> Pipeline:
    router = Router.from_settings(library, embedder, settings, gaps)
    return Pipeline(library, router, Scorer(settings, library, router, judge))
