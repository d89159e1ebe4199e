"""The assembled pipeline and its public entry points (score, route, reload, readiness), shared by the HTTP API
and the in-process CLI commands. It has no HTTP in it: problems are raised as the errors of errors.py.

The library-dependent part is one immutable snapshot (`Pipeline`): a reload builds a new one in the
background and swaps it in with one assignment, so a request that took the old snapshot finishes on it and
every response names exactly one library version. The snapshots it replaced stay (`keep_versions` in all,
each for `keep_grace_s` after it was replaced), so that a request pinned to a version (`library_version`)
is answered with that version while the fleet's replicas reload at different moments; a version not kept
is an UnknownLibraryVersion, never a silent switch."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from ..library import CardError, Library, LibrarySource
from . import metrics
from .embedder import Embedder, EmbedderConfig, make_embedder
from .errors import InvalidLibrary, InvalidRequest, NotReady, UnknownLibraryVersion
from .gap_sample import GapSample
from .judges import Judge, JudgeConfig, make_judge
from .router import Route, Router, RouterConfig, RoutingItem
from .schemas import (Alternative, KeptVersion, LibraryVersions, ReloadResponse, RouteRequest, RouteResponse,
                      RouteResult, ScoreRequest, ScoreResponse)
from .scorer import Scorer, ScorerConfig

log = logging.getLogger("scribe_rm")


@dataclass(frozen=True)
class GapConfig:
    size: int = 1000  # texts kept per domain (reservoir); 0: keep nothing
    margin: float = 0.02  # best card within this similarity of the runner-up: a gap
    seed: int = 0


@dataclass(frozen=True)
class PipelineConfig:
    """Everything the pipeline is built from; settings.py makes it from the environment."""
    library: LibrarySource
    embedder: EmbedderConfig
    router: RouterConfig
    judge: JudgeConfig
    scorer: ScorerConfig = field(default_factory=ScorerConfig)
    gaps: GapConfig = field(default_factory=GapConfig)
    static_embedder: EmbedderConfig | None = None  # the static routing tier, when the router's tiers use it
    # induction and the coverage gaps cluster in the whole model's space (what their thresholds were measured
    # in) when the router's embedder runs fewer layers; None: the router's embedder serves them too
    cluster_embedder: EmbedderConfig | None = None
    keep_versions: int = 2  # library versions served to pinned requests: the current one and the last replaced
    keep_grace_s: float = 600.0  # how long a replaced version stays


@dataclass(frozen=True)
class Pipeline:
    """What one library version serves with. Take it once per request."""
    library: Library
    router: Router
    scorer: Scorer


@dataclass
class Engine:
    config: PipelineConfig
    embedder: Embedder
    judge: Judge
    pipeline: Pipeline
    gaps: GapSample
    static_embedder: Embedder | None = None
    cluster_embedder: Embedder | None = None
    loaded: bool = False
    load_error: str | None = None
    _retired: list[tuple[Pipeline, float]] = field(default_factory=list)  # replaced snapshots, newest first
    _reload_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _cluster_load_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _fingerprint: tuple = ()

    @classmethod
    def build(cls, config: PipelineConfig, judge: Judge | None = None) -> "Engine":
        library = config.library.load()
        for message in library.skipped:
            log.warning("card skipped: %s", message)
        embedder = Embedder(config.embedder)
        static = make_embedder(config.static_embedder) if config.static_embedder else None
        cluster = Embedder(config.cluster_embedder) if config.cluster_embedder else None
        judge = judge or make_judge(config.judge)
        gaps = GapSample(config.gaps.size, config.gaps.margin, config.gaps.seed)
        engine = cls(config, embedder, judge, _pipeline(config, library, embedder, judge, gaps, static), gaps, static,
                     cluster)
        engine._fingerprint = config.library.fingerprint()
        return engine

    # the current snapshot's parts (a request that needs two of them takes `pipeline` once instead)
    @property
    def library(self) -> Library:
        return self.pipeline.library

    @property
    def router(self) -> Router:
        return self.pipeline.router

    async def clustering_embedder(self) -> Embedder:
        """The embedder induction and the coverage gaps cluster with: the router's, or the whole model where
        the router runs fewer layers, loaded on first use (most replicas never cluster)."""
        if self.cluster_embedder is None:
            return self.embedder
        async with self._cluster_load_lock:
            if not self.cluster_embedder.loaded:
                await asyncio.get_running_loop().run_in_executor(None, self.cluster_embedder.load)
        return self.cluster_embedder

    @property
    def _routing_embedders(self) -> list[Embedder]:
        return [self.embedder] + ([self.static_embedder] if self.static_embedder else [])

    @property
    def scorer(self) -> Scorer:
        return self.pipeline.scorer

    # ---------- life cycle ----------

    async def load(self, with_judge: bool = True) -> None:
        try:
            loop = asyncio.get_running_loop()
            for embedder in self._routing_embedders:
                await loop.run_in_executor(None, embedder.load)
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

    def require_ready(self) -> None:
        if not self.loaded:
            raise NotReady(self.load_error or "the service is still loading models")

    async def readiness(self) -> tuple[bool, dict]:
        checks = {"embedder": all(e.loaded for e in self._routing_embedders), "router": self.router.ready,
                  "judge": self.loaded and await self.judge.ready()}
        return all(checks.values()), {"checks": checks, "error": self.load_error}

    async def aclose(self) -> None:
        await self.judge.aclose()
        for embedder in self._routing_embedders + ([self.cluster_embedder] if self.cluster_embedder else []):
            embedder.close()

    # ---------- library versions ----------

    def pipeline_for(self, version: str | None) -> Pipeline:
        """The snapshot of a pinned version (None: the current one). Raises UnknownLibraryVersion."""
        current = self.pipeline
        if version is None or version == current.library.version:
            return current
        self._drop_expired()
        for pipeline, _ in self._retired:
            if pipeline.library.version == version:
                return pipeline
        raise UnknownLibraryVersion(version, [current.library.version] + [p.library.version for p, _ in self._retired])

    def versions(self) -> LibraryVersions:
        self._drop_expired()
        now = time.monotonic()
        return LibraryVersions(current=self.library.version, keep_versions=self.config.keep_versions,
                               grace_s=self.config.keep_grace_s,
                               kept=[KeptVersion(version=p.library.version, replaced_s_ago=round(now - at, 1),
                                                 expires_in_s=round(max(0.0, at + self.config.keep_grace_s - now), 1))
                                     for p, at in self._retired])

    def _retire(self, old: Pipeline) -> None:
        self._retired = [(p, at) for p, at in self._retired if p.library.version != self.pipeline.library.version]
        self._retired.insert(0, (old, time.monotonic()))
        del self._retired[max(0, self.config.keep_versions - 1):]
        self._drop_expired()

    def _drop_expired(self) -> None:
        deadline = time.monotonic() - self.config.keep_grace_s
        self._retired = [(p, at) for p, at in self._retired if at >= deadline]
        metrics.LIBRARY_VERSIONS_KEPT.set(1 + len(self._retired))

    # ---------- entry points ----------

    async def score(self, request: ScoreRequest) -> ScoreResponse:
        scorer = self.pipeline_for(request.library_version).scorer  # one library version for the whole request
        prepared = scorer.prepare(request)  # a bad request is told so before "not ready"
        self.require_ready()
        return await scorer.score(request, prepared)

    async def route(self, request: RouteRequest) -> RouteResponse:
        pipeline = self.pipeline_for(request.library_version)  # one library version for the whole request
        pipeline.scorer.config.limits.check_route_texts([q.text for q in request.items])
        explicit = {i: pipeline.router.explicit(q.prototype_id) for i, q in enumerate(request.items) if q.prototype_id}
        self.require_ready()
        todo = [i for i in range(len(request.items)) if i not in explicit]
        routed = await pipeline.router.route_items([RoutingItem([request.items[i].text], request.items[i].domain)
                                                    for i in todo])
        for i, item in zip(todo, routed):
            if not isinstance(item.routes[0], Route):
                raise InvalidRequest(f"item {i}: the text could not be embedded ({item.routes[0]})")
        results = {i: route_result(route) for i, route in explicit.items()}
        results.update({i: route_result(item.routes[0], item.scope, item.scope_source) for i, item in zip(todo, routed)})
        return RouteResponse(library_version=pipeline.library.version,
                             results=[results[i] for i in range(len(request.items))])

    async def reload(self) -> ReloadResponse:
        """Load the library directory again and, if it is valid, swap in a pipeline built on it (anchors from
        the anchor cache). Raises InvalidLibrary, and the old pipeline keeps serving, if any card is invalid."""
        self.require_ready()
        async with self._reload_lock:
            loop = asyncio.get_running_loop()
            old = self.pipeline
            fingerprint = self.config.library.fingerprint()
            try:
                library = await loop.run_in_executor(None, self.config.library.load)
            except CardError as exc:
                metrics.LIBRARY_RELOADS.labels("invalid").inc()
                raise InvalidLibrary(f"library not reloaded, {old.library.version} keeps serving: {exc}") from exc
            self._fingerprint = fingerprint
            if library.version == old.library.version:
                metrics.LIBRARY_RELOADS.labels("unchanged").inc()
                return ReloadResponse(previous_version=old.library.version, library_version=library.version,
                                      cards=len(library.cards), changed=False)
            kept = [p for p, _ in self._retired if p.library.version == library.version]
            pipeline = kept[0] if kept else _pipeline(self.config, library, self.embedder, self.judge, self.gaps,
                                                      self.static_embedder)
            if not kept:
                await loop.run_in_executor(None, pipeline.router.build_sync)
            self.pipeline = pipeline  # the swap: requests from now on take the new snapshot
            self._retire(old)  # pinned requests may still name it
            self._publish_build_info(old.library.version)
            metrics.LIBRARY_RELOADS.labels("changed").inc()
            log.info("library reloaded: %s -> %s (%d cards)", old.library.version, library.version, len(library.cards))
            return ReloadResponse(previous_version=old.library.version, library_version=library.version,
                                  cards=len(library.cards), changed=True)

    async def watch_library(self, interval_s: float) -> None:
        """Reload when the library directory's files change (a mounted ConfigMap is updated in place)."""
        while True:
            await asyncio.sleep(interval_s)
            if not self.loaded:
                continue
            fingerprint = await asyncio.get_running_loop().run_in_executor(None, self.config.library.fingerprint)
            if fingerprint == self._fingerprint:
                continue
            try:
                await self.reload()
            except Exception as exc:  # the old library keeps serving; the metric and the log say why
                self._fingerprint = fingerprint  # do not retry the same broken files every interval
                log.error("library change not applied: %s", exc)

    def _publish_build_info(self, previous_version: str | None) -> None:
        labels = (self.judge.model_name, self.judge.backend)
        if previous_version is not None:
            try:
                metrics.BUILD.remove(previous_version, *labels)
            except KeyError:
                pass
        metrics.BUILD.labels(self.library.version, *labels).set(1)


def route_result(route: Route, scope: str | None = None, scope_source: str | None = None) -> RouteResult:
    return RouteResult(
        prototype_id=route.card.id, prototype_name=route.card.name, domain=route.card.domain,
        similarity=route.similarity, fallback=route.fallback,
        alternatives=[Alternative(prototype_id=c.card_id, similarity=c.similarity) for c in route.alternatives],
        scope=scope, scope_source=scope_source)


def _pipeline(config: PipelineConfig, library: Library, embedder: Embedder, judge: Judge, gaps: GapSample,
              static_embedder: Embedder | None) -> Pipeline:
    router = Router(library, embedder, config.router, gaps, static_embedder,
                    gap_vectors=config.cluster_embedder is None)
    return Pipeline(library, router, Scorer(config.scorer, library, router, judge))
