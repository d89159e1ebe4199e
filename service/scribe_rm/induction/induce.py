"""Induction from trajectories to draft cards: decompose -> leave out covered steps -> group repeats of one
text -> embed -> cluster the distinct texts -> merge into an existing card (patch) or distill a new one (draft),
whose terms are checked against the data. Every count is of distinct texts: a tool call or sign-off repeated
across dialogues is one text, and a cluster with fewer distinct texts than a card needs is left out, never
drafted and refused. Every step gets a fate (covered, drafted, patched, refused, left out, and why). report.py
writes drafts, patches and the report."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Literal

import numpy as np
from sklearn.metrics import adjusted_rand_score
from sklearn.preprocessing import normalize

from ..blocks.clustering import Clustering, by_centrality, cluster_vectors
from ..blocks.microbatch import ItemFailed
from ..library import MIN_EXAMPLES, Card, CardError, Provenance
from ..pipeline.engine import Engine
from ..pipeline.judges import JudgeError
from ..pipeline.router import Route, Router, RoutingItem
from ..pipeline.schemas import ScoreItem, SplitOptions
from ..pipeline.segment import policy_of
from .decompose import DecomposeCounts, Unit, decompose
from .distill import as_example, distill, example_texts
from .grounding import generic_vocabulary, ungrounded_terms
from .merge import MERGE_THRESHOLD, CardCentroids, Nearest, Patch


@dataclass
class InduceOptions:
    source: str  # where the trajectories came from (provenance)
    domain: str | None = None  # of the steps (routing) and of the drafted cards
    decompose: Literal["rule", "llm"] = "rule"
    split: SplitOptions = field(default_factory=SplitOptions)
    include_covered: bool = False  # also cluster steps that already route to a card
    min_cluster_size: int = MIN_EXAMPLES  # distinct texts; clusters under what a card needs are never drafted
    max_clusters: int = 12
    clusters: int | None = None  # fixed k instead of the silhouette choice
    merge_threshold: float = MERGE_THRESHOLD
    examples_per_card: int = 6
    seed: int = 0
    max_tokens: int = 1000
    # for the drafts: SmolLM2-135M loops ("1.1.1...") until max_tokens without it; a strong judge wants 1.0-1.1
    repetition_penalty: float = 1.3
    center_trajectories: bool = True  # cluster what a step does, not its trajectory's topic (centered_by_item)


@dataclass
class Proposal:
    cluster: int
    member_ids: list[str]  # every step of the cluster, repeats of one text included
    distinct: int  # distinct texts among them: what a card's examples (and the minimum size) count
    nearest: Nearest | None
    action: Literal["card", "patch", "refused", "left_out"]
    card: Card | None = None
    patch: Patch | None = None
    error: str | None = None  # why it was refused (the field) or left out
    review: str | None = None  # why a draft needs a careful look (terms with no source in the data)
    majority_label: str | None = None  # the most common skill label among members, when labelled

    @property
    def title(self) -> str:
        if self.card is not None:
            return self.card.id
        if self.patch is not None:
            return f"patch {self.patch.card_id}"
        return f"cluster {self.cluster} ({self.action.replace('_', ' ')})"


@dataclass(frozen=True)
class StepFate:
    """What induction did with one step."""
    unit: int
    fate: Literal["covered", "drafted", "patched", "refused", "left_out"]
    detail: str


@dataclass(frozen=True)
class DistinctStep:
    """One distinct text among the steps clustered, with the steps (units) that repeat it."""
    text: str
    units: tuple[int, ...]


@dataclass
class Induction:
    domain: str
    units: list[Unit]
    covered: list[str | None]  # per unit: the card it routes to (left out unless include_covered), or None
    distinct: list[DistinctStep]  # what was clustered
    vectors: np.ndarray  # each distinct step's features
    clustering: Clustering  # over the distinct steps
    proposals: list[Proposal]
    fates: list[StepFate]  # one per unit
    decomposition: DecomposeCounts
    merge_threshold: float

    @property
    def clustered(self) -> list[int]:
        return [unit for step in self.distinct for unit in step.units]

    def quality(self) -> dict | None:
        """Purity and adjusted Rand index of the clusters against the units' skill labels (when given)."""
        pairs = [(self.units[u].label, int(c)) for step, c in zip(self.distinct, self.clustering.labels)
                 for u in step.units if self.units[u].label is not None]
        if not pairs:
            return None
        labels, clusters = zip(*pairs)
        grouped = [c for c in clusters if c >= 0]
        purity = sum(Counter(l for l, c in pairs if c == k).most_common(1)[0][1] for k in set(grouped)) / len(pairs)
        # left-out units count as singletons, so leaving units out is not rewarded
        singletons = [c if c >= 0 else -1 - i for i, c in enumerate(clusters)]
        return {"n": len(pairs), "purity": round(purity, 4), "ari": round(adjusted_rand_score(labels, singletons), 4),
                "clustered_share": round(len(grouped) / len(pairs), 4)}


def _majority(units: list[Unit]) -> str | None:
    labels = Counter(u.label for u in units if u.label is not None)
    return labels.most_common(1)[0][0] if labels else None


def distinct_steps(units: list[Unit], chosen: list[int]) -> list[DistinctStep]:
    """The chosen units grouped by their routing text as a card would hold it (repeats share one group)."""
    groups: dict[str, list[int]] = {}
    for i in chosen:
        groups.setdefault(as_example(units[i].routing_text).lower(), []).append(i)
    return [DistinctStep(units[members[0]].routing_text, tuple(members)) for members in groups.values()]


async def route_by_item(router: Router, units: list[Unit]) -> list[Route | ItemFailed]:
    """Each unit's route as /score would route its step: together with its item's other steps, whose votes
    choose the item's scope when it names no domain."""
    by_item: dict[str, list[int]] = {}
    for i, unit in enumerate(units):
        by_item.setdefault(unit.item_id, []).append(i)
    routed = await router.route_items([RoutingItem([units[i].routing_text for i in members], units[members[0]].domain)
                                       for members in by_item.values()])
    routes: dict[int, Route | ItemFailed] = {}
    for members, item in zip(by_item.values(), routed):
        routes.update(zip(members, item.routes))
    return [routes[i] for i in range(len(units))]


async def induce(engine: Engine, items: list[ScoreItem], options: InduceOptions) -> Induction:
    loop = asyncio.get_running_loop()
    units, counts = await decompose(items, options.decompose, engine.judge, options.split, options.domain)
    if not units:
        raise ValueError("the trajectories have no steps to induce from")
    domain = options.domain or Counter(u.domain for u in units).most_common(1)[0][0] or "induced"
    router = engine.router
    routes = await route_by_item(router, units)
    covered = [route.card.id if isinstance(route, Route) and not route.fallback else None for route in routes]
    distinct = distinct_steps(units, [i for i, c in enumerate(covered) if options.include_covered or c is None])
    embedder = await engine.clustering_embedder()
    texts = [step.text[: router.text_chars] for step in distinct]
    vectors = await loop.run_in_executor(embedder.executor, embedder.encode_sync, texts) if texts else np.zeros((0, 1))
    features = centered_distinct(vectors, distinct, units) if options.center_trajectories else vectors
    clustering = cluster_vectors(features, options.min_cluster_size, options.max_clusters, options.clusters, options.seed)
    centroids = await loop.run_in_executor(embedder.executor, CardCentroids, engine.library, embedder,
                                           router.config.anchor_cache_dir, router.config.fallback_id)
    evidence = evidence_by_item(items, domain)
    generic = generic_vocabulary(engine.library.cards.values())
    taken = set(engine.library.cards)
    proposals = []
    for cluster in clustering.clusters:
        order = by_centrality(features, clustering.members(cluster))
        central = [units[distinct[i].units[0]] for i in order]  # one unit per distinct text, most central first
        centroid = normalize(vectors[order].mean(axis=0, keepdims=True))[0]  # in the cards' (uncentered) space
        members = [units[u] for i in order for u in distinct[i].units]
        proposal = await _propose(engine, cluster, central, members, centroid, centroids, domain, taken, options)
        if proposal.card is not None:
            taken.add(proposal.card.id)
            proposal.review = _review(proposal.card, members, evidence, generic)
        proposals.append(proposal)
    for cluster, indices in clustering.dropped.items():
        members = [units[u] for i in indices for u in distinct[i].units]
        proposals.append(Proposal(cluster, [u.id for u in members], len(indices), None, "left_out",
                                  error=too_few(len(indices), len(members), options),
                                  majority_label=_majority(members)))
    fates = step_fates(units, covered, distinct, clustering, proposals)
    return Induction(domain, units, covered, distinct, features, clustering, proposals, fates, counts,
                     options.merge_threshold)


def too_few(distinct: int, steps: int, options: InduceOptions) -> str:
    """Why a cluster is left out: fewer distinct texts than a card's examples need."""
    return f"{distinct} distinct texts ({steps} steps); a card needs {max(options.min_cluster_size, MIN_EXAMPLES)}"


def centered_distinct(vectors: np.ndarray, distinct: list[DistinctStep], units: list[Unit]) -> np.ndarray:
    """centered_by_item per step, then each distinct text the mean of its steps' centered vectors."""
    rows = [k for k, step in enumerate(distinct) for _ in step.units]
    item_ids = [units[u].item_id for step in distinct for u in step.units]
    centered = centered_by_item(vectors[rows], item_ids)
    owners = np.array(rows)
    return np.stack([centered[owners == k].mean(axis=0) for k in range(len(distinct))])


def evidence_by_item(items: list[ScoreItem], domain: str) -> dict[str, list[str]]:
    """What a draft for a cluster may name besides its members' texts: their trajectories' policy and tool
    schemas, and the domain."""
    evidence = {}
    for item in items:
        tools = " ".join(f"{t.function.name} {t.function.description or ''}" for t in item.tools or [])
        evidence[item.id] = [policy_of(item), tools.replace("_", " "), item.question, domain.replace("_", " ")]
    return evidence


def _review(card: Card, members: list[Unit], evidence: dict[str, list[str]], generic: set[str]) -> str | None:
    texts = [text for u in members for text in (u.text, u.subgoal or "", *evidence.get(u.item_id, []))]
    terms = ungrounded_terms(card, texts, generic)
    if not terms:
        return None
    return f"ungrounded: {', '.join(terms)} appear in no member step, policy, tool or the domain"


def step_fates(units: list[Unit], covered: list[str | None], distinct: list[DistinctStep], clustering: Clustering,
               proposals: list[Proposal]) -> list[StepFate]:
    by_cluster = {p.cluster: p for p in proposals}
    where = {u: k for k, step in enumerate(distinct) for u in step.units}
    fates = []
    for u in range(len(units)):
        if u not in where:
            fates.append(StepFate(u, "covered", f"routes to {covered[u]}"))
            continue
        k = where[u]
        repeats = f" (one of {len(distinct[k].units)} repeats of its text)" if len(distinct[k].units) > 1 else ""
        cluster = int((clustering.labels if clustering.assigned is None else clustering.assigned)[k])
        proposal = by_cluster.get(cluster)
        if proposal is None:
            fates.append(StepFate(u, "left_out", f"in no cluster{repeats}"))
        elif proposal.action == "card":
            fates.append(StepFate(u, "drafted", f"cluster {cluster} -> draft {proposal.card.id}{repeats}"))
        elif proposal.action == "patch":
            fates.append(StepFate(u, "patched", f"cluster {cluster} -> anchors for {proposal.patch.card_id}{repeats}"))
        elif proposal.action == "refused":
            fates.append(StepFate(u, "refused", f"cluster {cluster}: the draft was refused: {proposal.error}"))
        else:
            fates.append(StepFate(u, "left_out", f"cluster {cluster}: {proposal.error}{repeats}"))
    return fates


def centered_by_item(vectors: np.ndarray, item_ids: list[str]) -> np.ndarray:
    """Each step's embedding minus the mean of its trajectory's steps (items of two steps or more). What all
    steps of a trajectory share is its task and topic (the dataset, the product); what is left is what the
    step does, which is what a skill card is about. On examples/induce this lifts the adjusted Rand index of
    k-means from 0.12 to 0.97 (bench/induction.py)."""
    centered = np.array(vectors, dtype=np.float64)
    groups: dict[str, list[int]] = {}
    for i, item_id in enumerate(item_ids):
        groups.setdefault(item_id, []).append(i)
    for rows in groups.values():
        if len(rows) >= 2:
            centered[rows] -= centered[rows].mean(axis=0)
    return centered


async def _propose(engine: Engine, cluster: int, central: list[Unit], members: list[Unit], centroid: np.ndarray,
                   centroids: CardCentroids, domain: str, taken: set[str], options: InduceOptions) -> Proposal:
    """`central`: one step per distinct text, most central first; `members`: every step, repeats included."""
    member_ids = [u.id for u in members]
    nearest = centroids.nearest(centroid)
    base = dict(cluster=cluster, member_ids=member_ids, distinct=len(central), nearest=nearest,
                majority_label=_majority(members))
    if len(central) < max(options.min_cluster_size, MIN_EXAMPLES):  # only with --min-cluster-size below that
        return Proposal(action="left_out", error=too_few(len(central), len(members), options), **base)
    if nearest is not None and nearest.similarity >= options.merge_threshold:
        provenance = Provenance(source=options.source, cluster_size=len(members), member_ids=member_ids,
                                model="(none: anchors only)", created_at=datetime.now(timezone.utc).replace(microsecond=0))
        patch = Patch(card_id=nearest.card_id, add_examples=example_texts(central, options.examples_per_card),
                      similarity=nearest.similarity, provenance=provenance)
        return Proposal(action="patch", patch=patch, **base)
    try:
        card = await distill(engine.judge, central, domain, taken, options.source, len(members), member_ids,
                             n_examples=options.examples_per_card, max_tokens=options.max_tokens,
                             repetition_penalty=options.repetition_penalty)
    except (JudgeError, CardError) as exc:
        return Proposal(action="refused", error=str(exc), **base)
    return Proposal(action="card", card=card, **base)
