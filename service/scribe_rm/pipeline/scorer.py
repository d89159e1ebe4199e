"""The scoring pipeline: segment -> route -> judge -> aggregate, under one deadline.

Identical judgements are computed once: served from the LRU cache, shared within a request, and shared
with other requests while in flight. Work nobody waits for any more is cancelled. Every item comes back
`ok` with a reward, or with an explicit status (`judge_error`, `timeout`, `invalid`) and no reward.

`score` serves a request; `score_step` judges one step of a trajectory in its context (evaluations use it),
through the same routing, prompts, cache and metrics."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Literal

from ..blocks.lru import LRUCache
from ..blocks.microbatch import ItemFailed
from ..library import Library
from . import metrics
from .aggregate import combine, process_reward
from .errors import InvalidRequest, Overloaded
from .judges import Judge, JudgeError, ScoreDistribution
from .limits import RequestLimits
from .prompt import PromptBuilder, PromptLimits
from .router import Route, Router, RoutingCounts, RoutingItem
from .schemas import (Aggregation, Alternative, CacheStats, ItemResult, ScoreItem, ScoreRequest, ScoreResponse,
                      StepScore, Weights)
from .segment import Segment, SegmentationError, Trajectory, compile_user_pattern, segment_item
from .spans import SpanError, llm_segments
from .turn_split import split_segment, split_turns

DEADLINE_MARGIN_S = 0.05  # time kept back to assemble and send the response
NO_CARD = "-"  # the card id of a judgement made without a card (the no-rubric baseline)


@dataclass(frozen=True)
class ScorerConfig:
    limits: RequestLimits = field(default_factory=RequestLimits)
    prompt: PromptLimits = field(default_factory=PromptLimits)
    aggregation: Aggregation = "mean"
    weight_outcome: float = 0.7
    weight_process: float = 0.3
    first_error_threshold: float = 0.5  # normalized step score below this is an error (aggregation first_error)
    default_deadline_s: float = 120.0
    max_deadline_s: float = 900.0
    cache_size: int = 100_000  # judgements kept
    judge_max_pending: int = 4096  # bound on queued judge calls (backpressure)
    split_llm_max_tokens: int = 1024  # budget of one split-mode-llm decomposition


def judgement_key(library_version: str, card_id: str, judge_model: str, messages: list[dict[str, str]]) -> str:
    """Everything that determines one judgement."""
    payload = json.dumps([library_version, card_id, judge_model, messages], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass
class PreparedItem:
    item: ScoreItem
    trajectory: Trajectory | None = None
    invalid: str | None = None
    split_note: str | None = None
    scope: str | None = None  # the routing scope its steps were routed in (None: no step was routed)
    scope_source: Literal["given", "auto"] | None = None


@dataclass(frozen=True)
class RewardPolicy:
    aggregation: Aggregation
    weights: Weights
    budget_s: float
    explain: bool = False  # return each step's judge prompt


@dataclass
class StepJob:
    route: Route
    key: str
    messages: list[dict[str, str]]
    cached: ScoreDistribution | None = None


@dataclass(frozen=True)
class StepJudgement:
    distribution: ScoreDistribution
    card_id: str  # NO_CARD when judged without a card


class Scorer:
    def __init__(self, config: ScorerConfig, library: Library, router: Router, judge: Judge):
        self.config = config
        self.library = library
        self.router = router
        self.judge = judge
        self.prompts = PromptBuilder(config.prompt)
        self.cache: LRUCache[ScoreDistribution] = LRUCache(config.cache_size)
        self._inflight: dict[str, asyncio.Task[ScoreDistribution]] = {}
        self._waiters: dict[str, int] = {}

    @property
    def pending_judgements(self) -> int:
        return len(self._inflight)

    # ---------- validation ----------

    def prepare(self, request: ScoreRequest) -> list[PreparedItem]:
        """Segment every item and check the request against the limits. Raises InvalidRequest for a problem
        of the whole request; an item that cannot be segmented is prepared as invalid (it fails alone)."""
        self.config.limits.check_items(len(request.items))
        if request.split.mode == "regex":
            try:
                compile_user_pattern(request.split.pattern or "")
            except SegmentationError as exc:
                raise InvalidRequest(str(exc)) from exc
        return [self._prepare_item(item, request) for item in request.items]

    def _prepare_item(self, item: ScoreItem, request: ScoreRequest) -> PreparedItem:
        try:
            trajectory = segment_item(item, request.split)
        except SegmentationError as exc:
            return PreparedItem(item, invalid=str(exc))
        segments = trajectory.segments
        if not segments:
            return PreparedItem(item, invalid="nothing to score: the trajectory has no non-empty step")
        self.config.limits.check_steps(item.id, [segment.text for segment in segments])
        for index, segment in enumerate(segments):
            if segment.prototype_id is not None and self.library.get(segment.prototype_id) is None:
                raise InvalidRequest(f"item '{item.id}' step {index}: unknown prototype_id '{segment.prototype_id}'")
        return PreparedItem(item, trajectory)

    # ---------- scoring ----------

    async def score(self, request: ScoreRequest, prepared: list[PreparedItem] | None = None) -> ScoreResponse:
        """Score every item; `prepared` is `prepare(request)` when the caller already ran it."""
        started = time.monotonic()
        c = self.config
        policy = RewardPolicy(
            aggregation=request.aggregation or c.aggregation,
            weights=request.weights or Weights(outcome=c.weight_outcome, process=c.weight_process),
            budget_s=min(request.deadline_s or c.default_deadline_s, c.max_deadline_s),
            explain=request.explain,
        )
        deadline = started + policy.budget_s
        prepared = prepared if prepared is not None else self.prepare(request)
        if request.split.mode == "llm":
            await self._split_by_llm(prepared, deadline)
        jobs: dict[tuple[int, int], StepJob] = {}
        tasks: dict[str, asyncio.Task[ScoreDistribution]] = {}
        routing = RoutingCounts()
        try:
            routes = await asyncio.wait_for(self._route(prepared, routing),
                                            timeout=max(0.0, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            routes = None
        stats = CacheStats(hits=0, misses=0, deduplicated=0, route_hits=routing.hits, route_misses=routing.misses,
                           route_deduplicated=routing.deduplicated, route_second_tier=routing.second_tier)
        try:
            if routes is not None:
                jobs = self._plan(prepared, routes, stats)
                tasks = self._launch({job.key: job.messages for job in jobs.values() if job.cached is None})
                remaining = deadline - time.monotonic() - DEADLINE_MARGIN_S
                if tasks and remaining > 0:
                    await asyncio.wait(tasks.values(), timeout=remaining)
            results = [self._result(i, p, jobs, tasks, routes is None, policy) for i, p in enumerate(prepared)]
        finally:
            self._release(list(tasks))
        self._record(results, jobs, stats)
        return ScoreResponse(
            request_id=request.request_id or uuid.uuid4().hex,
            library_version=self.library.version,
            judge_model=self.judge.model_name,
            aggregation=policy.aggregation,
            weights=policy.weights,
            results=results,
            cache=stats,
            latency_ms=round((time.monotonic() - started) * 1000, 2),
        )

    async def _split_by_llm(self, prepared: list[PreparedItem], deadline: float) -> None:
        """Replace the rule-based split of each free-form response with the judge model's verbatim spans.
        Takes at most half the remaining budget, so that judging keeps the other half."""
        budget = max(0.0, (deadline - time.monotonic()) / 2)

        async def split(p: PreparedItem) -> None:
            assert p.trajectory is not None and p.item.response is not None
            try:
                segments = await asyncio.wait_for(
                    llm_segments(self.judge, p.item.response, self.config.split_llm_max_tokens), timeout=budget)
                if len(segments) > self.config.limits.max_steps_per_item:
                    raise SpanError(f"{len(segments)} spans > max_steps_per_item")
                p.trajectory = replace(p.trajectory, segments=segments)
            except asyncio.TimeoutError:
                p.split_note = f"the llm split took longer than {budget:.1f}s; split by rule (auto)"
            except (SpanError, JudgeError, KeyError, TypeError) as exc:
                p.split_note = f"the llm split was not used ({exc}); split by rule (auto)"

        await asyncio.gather(*(split(p) for p in prepared if p.trajectory is not None and p.item.response is not None))

    async def judge_prompts(self, request: ScoreRequest) -> list[list[dict[str, str]]]:
        """The distinct judge prompts that scoring `request` sends, in step order, without sending them
        (benchmarks replay them against the judge server directly)."""
        prepared = self.prepare(request)
        jobs = self._plan(prepared, await self._route(prepared), CacheStats(hits=0, misses=0, deduplicated=0))
        return list({job.key: job.messages for job in jobs.values()}.values())

    async def _route(self, prepared: list[PreparedItem], counts: RoutingCounts | None = None
                     ) -> dict[tuple[int, int], Route]:
        """The route of every step, each item in its scope (given, or chosen from its steps); an item with a
        step the router could not take becomes `invalid`."""
        routes: dict[tuple[int, int], Route] = {}
        items, where = [], []
        for i, p in enumerate(prepared):
            if p.trajectory is None:
                continue
            routed = []
            for j, segment in enumerate(p.trajectory.segments):
                if segment.prototype_id is not None:
                    routes[(i, j)] = self.router.explicit(segment.prototype_id)
                else:
                    routed.append(j)
            if routed:
                segments = p.trajectory.segments
                items.append(RoutingItem([segments[j].subgoal or segments[j].text for j in routed], p.item.domain))
                where.append((i, routed))
        for (i, steps), item in zip(where, await self.router.route_items(items, counts)):
            prepared[i].scope, prepared[i].scope_source = item.scope, item.scope_source
            for j, route in zip(steps, item.routes):
                if isinstance(route, ItemFailed):
                    prepared[i].invalid = prepared[i].invalid or f"step {j} could not be routed: {route}"
                else:
                    routes[(i, j)] = route
        await self._split_turns(prepared, routes, counts)
        return {(i, j): route for (i, j), route in routes.items() if prepared[i].invalid is None}

    async def _split_turns(self, prepared: list[PreparedItem], routes: dict[tuple[int, int], Route],
                           counts: RoutingCounts | None) -> None:
        """Score a plain chat turn that holds two subgoals as two steps (turn_split.py): the item's segments
        and `routes` are replaced in place."""
        turns = {(i, j): (segment.text, prepared[i].scope or "default") for (i, j) in routes
                 if prepared[i].trajectory is not None and prepared[i].invalid is None
                 and (segment := prepared[i].trajectory.segments[j]).plain_turn}
        found = await split_turns(self.router, turns, counts)
        for i in sorted({i for i, _ in found}):
            trajectory = prepared[i].trajectory
            assert trajectory is not None
            segments: list[Segment] = []
            renumbered: dict[tuple[int, int], Route] = {}
            for j, segment in enumerate(trajectory.segments):
                route = routes.pop((i, j), None)
                split = found.get((i, j))
                parts = ([(segment, route)] if split is None
                         else list(zip(split_segment(segment, split), (split.head, split.tail))))
                for part, route in parts:
                    if route is not None:
                        renumbered[(i, len(segments))] = route
                    segments.append(part)
            routes.update(renumbered)
            prepared[i].trajectory = replace(trajectory, segments=segments)

    def _plan(self, prepared: list[PreparedItem], routes: dict[tuple[int, int], Route],
              stats: CacheStats) -> dict[tuple[int, int], StepJob]:
        jobs: dict[tuple[int, int], StepJob] = {}
        cached: dict[str, ScoreDistribution | None] = {}  # one cache look-up per distinct judgement
        for (i, j), route in routes.items():
            trajectory = prepared[i].trajectory
            assert trajectory is not None
            messages = self._messages(route, trajectory, j)
            key = judgement_key(self.library.version, route.card.id, self.judge.model_name, messages)
            if key in cached:
                stats.deduplicated += 1
            else:
                cached[key] = self.cache.get(key)
                if cached[key] is not None:
                    stats.hits += 1
                else:
                    stats.misses += 1
            jobs[(i, j)] = StepJob(route, key, messages, cached[key])
        return jobs

    async def score_step(self, trajectory: Trajectory, index: int, domain: str | None = None,
                         with_card: bool = True) -> StepJudgement:
        """Judge step `index` of a trajectory in its context: routed to its card (or, `with_card=False`, the
        no-rubric baseline prompt), prompted as /score prompts it, and judged through the judgement cache and
        in-flight sharing. Raises JudgeError when the judge fails, InvalidRequest when the step cannot be routed."""
        if with_card:
            segment = trajectory.segments[index]
            (route,) = await self.router.route([segment.subgoal or segment.text], [domain])
            if isinstance(route, ItemFailed):
                raise InvalidRequest(f"step {index} could not be routed: {route}")
            card_id, messages = route.card.id, self._messages(route, trajectory, index)
        else:
            card_id = NO_CARD
            messages = self.prompts.baseline_messages(trajectory.question, trajectory.segments, index)
        key = judgement_key(self.library.version, card_id, self.judge.model_name, messages)
        distribution = self.cache.get(key)
        if distribution is None:
            task = self._launch({key: messages})[key]
            try:
                distribution = await task
            finally:
                self._release([key])
        return StepJudgement(distribution, card_id)

    def _messages(self, route: Route, trajectory: Trajectory, index: int) -> list[dict[str, str]]:
        segment = trajectory.segments[index]
        schemas = tuple(trajectory.tools[name] for name in trajectory.tools_called(segment))
        return self.prompts.messages(route.card, trajectory.question, trajectory.segments, index, trajectory.policy,
                                     schemas)

    def _launch(self, needed: dict[str, list[dict[str, str]]]) -> dict[str, asyncio.Task[ScoreDistribution]]:
        """Start (or join) one task per distinct judgement (key -> messages); returns the tasks to wait on."""
        new = [key for key in needed if key not in self._inflight]
        limit = self.config.judge_max_pending
        if len(self._inflight) + len(new) > limit:
            raise Overloaded(f"judge queue is full ({len(self._inflight)} pending, judge_max_pending={limit}); "
                             "retry later")
        for key in new:
            task = asyncio.get_running_loop().create_task(self._judge_once(key, needed[key]))
            self._inflight[key] = task
            task.add_done_callback(lambda _t, k=key: self._forget(k))
        for key in needed:
            self._waiters[key] = self._waiters.get(key, 0) + 1
        return {key: self._inflight[key] for key in needed}

    async def _judge_once(self, key: str, messages: list[dict[str, str]]) -> ScoreDistribution:
        backend = self.judge.backend
        started = time.monotonic()
        metrics.JUDGE_INFLIGHT.inc()
        try:
            distribution = ScoreDistribution.from_logprobs(await self.judge.label_logprobs(messages))
        except asyncio.CancelledError:
            raise
        except Exception:
            metrics.JUDGE_ERRORS.labels(backend).inc()
            raise
        finally:
            metrics.JUDGE_INFLIGHT.dec()
        metrics.JUDGE_LATENCY.labels(backend).observe(time.monotonic() - started)
        self.cache.put(key, distribution)
        return distribution

    @staticmethod
    def _record(results: list[ItemResult], jobs: dict[tuple[int, int], StepJob], stats: CacheStats) -> None:
        for result in results:
            metrics.ITEMS.labels(result.status).inc()
            for step in result.steps:
                if step.score is not None:
                    metrics.STEP_SCORE.labels(step.prototype_id).observe(step.score)
                    metrics.LABEL_MASS.observe(step.label_mass or 0.0)
        metrics.STEPS.inc(len(jobs))
        for job in jobs.values():
            if job.route.similarity is not None:
                metrics.ROUTE_SIMILARITY.observe(job.route.similarity)
            if job.route.fallback:
                metrics.ROUTE_FALLBACK.inc()
        metrics.CACHE.labels("hit").inc(stats.hits)
        metrics.CACHE.labels("miss").inc(stats.misses)
        metrics.DEDUPLICATED.inc(stats.deduplicated)

    def _forget(self, key: str) -> None:
        self._inflight.pop(key, None)
        self._waiters.pop(key, None)

    def _release(self, keys: list[str]) -> None:
        for key in keys:
            if key not in self._waiters:
                continue
            self._waiters[key] -= 1
            task = self._inflight.get(key)
            if self._waiters[key] <= 0 and task is not None and not task.done():
                task.cancel()  # nobody waits for it any more: free the judge for live requests

    # ---------- assembly ----------

    @staticmethod
    def _outcome_of(job: StepJob, task: asyncio.Task[ScoreDistribution] | None
                    ) -> tuple[ScoreDistribution | None, str | None, bool]:
        """(distribution, error, finished) for one step."""
        if job.cached is not None:
            return job.cached, None, True
        if task is None or not task.done():
            return None, None, False
        if task.cancelled():
            return None, "judge call was cancelled", True
        error = task.exception()
        if error is None:
            return task.result(), None, True
        message = str(error) if isinstance(error, JudgeError) else f"{type(error).__name__}: {error}"
        return None, message, True

    def _result(self, i: int, prepared: PreparedItem, jobs: dict[tuple[int, int], StepJob],
                tasks: dict[str, asyncio.Task[ScoreDistribution]], routing_timed_out: bool,
                policy: RewardPolicy) -> ItemResult:
        item = prepared.item
        if prepared.invalid is not None:
            return ItemResult(id=item.id, status="invalid", error=prepared.invalid, outcome=item.outcome)
        assert prepared.trajectory is not None
        segments = prepared.trajectory.segments
        if routing_timed_out:
            return ItemResult(id=item.id, status="timeout", outcome=item.outcome, n_steps=len(segments),
                              error=f"deadline of {policy.budget_s:g}s reached while routing")
        steps, errors, unfinished = [], [], 0
        for j, segment in enumerate(segments):
            job = jobs[(i, j)]
            distribution, error, finished = self._outcome_of(job, tasks.get(job.key))
            unfinished += not finished
            if error:
                errors.append(f"step {j}: {error}")
            steps.append(self._step_score(j, segment, job, distribution, error, policy.explain))
        base = dict(id=item.id, outcome=item.outcome, n_steps=len(segments), steps=steps, split_note=prepared.split_note,
                    scope=prepared.scope, scope_source=prepared.scope_source)
        if errors:
            return ItemResult(status="judge_error", error="; ".join(errors[:3]), **base)
        if unfinished:
            return ItemResult(status="timeout", error=f"deadline of {policy.budget_s:g}s reached with {unfinished} "
                              f"of {len(segments)} steps unjudged", **base)
        normalized = [s.score_normalized for s in steps]
        process = process_reward(normalized, policy.aggregation, self.config.first_error_threshold)  # type: ignore[arg-type]
        reward = combine(process, item.outcome, policy.weights.outcome, policy.weights.process)
        return ItemResult(status="ok", reward=round(reward, 6), process_reward=round(process, 6), **base)

    @staticmethod
    def _step_score(j: int, segment, job: StepJob, distribution: ScoreDistribution | None,
                    error: str | None, explain: bool = False) -> StepScore:
        route = job.route
        scored = distribution is not None
        return StepScore(
            index=j, start=segment.start, end=segment.end,
            message_indices=list(segment.message_indices) if segment.message_indices else None,
            subgoal=segment.subgoal,
            prototype_id=route.card.id, prototype_name=route.card.name,
            similarity=route.similarity, fallback=route.fallback,
            alternatives=[Alternative(prototype_id=c.card_id, similarity=c.similarity) for c in route.alternatives],
            score=round(distribution.expected, 6) if scored else None,
            score_normalized=round(distribution.expected / 3, 6) if scored else None,
            label=distribution.label if scored else None,
            probabilities=[round(p, 6) for p in distribution.probabilities] if scored else None,
            confidence=round(distribution.confidence, 6) if scored else None,
            label_mass=round(distribution.label_mass, 6) if scored else None,
            cache_hit=job.cached is not None,
            error=error,
            judge_messages=job.messages if explain else None,
        )
