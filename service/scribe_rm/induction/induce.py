"""Induction from trajectories to draft cards: decompose -> leave out covered steps -> embed -> cluster ->
merge into an existing card (patch) or distill a new one (draft). report.py writes drafts, patches and the
report."""

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
from ..library import Card, CardError, Provenance
from ..pipeline.engine import Engine
from ..pipeline.judges import JudgeError
from ..pipeline.schemas import ScoreItem, SplitOptions
from .decompose import DecomposeCounts, Unit, decompose
from .distill import distill, example_texts
from .merge import MERGE_THRESHOLD, CardCentroids, Nearest, Patch


@dataclass
class InduceOptions:
    source: str  # where the trajectories came from (provenance)
    domain: str | None = None  # of the steps (routing) and of the drafted cards
    decompose: Literal["rule", "llm"] = "rule"
    split: SplitOptions = field(default_factory=SplitOptions)
    include_covered: bool = False  # also cluster steps that already route to a card
    min_cluster_size: int = 4  # a card needs 4 distinct examples
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
    member_ids: list[str]
    nearest: Nearest | None
    action: Literal["card", "patch", "refused"]
    card: Card | None = None
    patch: Patch | None = None
    error: str | None = None
    majority_label: str | None = None  # the most common skill label among members, when labelled

    @property
    def title(self) -> str:
        if self.card is not None:
            return self.card.id
        if self.patch is not None:
            return f"patch {self.patch.card_id}"
        return f"cluster {self.cluster} (refused)"


@dataclass
class Induction:
    domain: str
    units: list[Unit]
    covered: list[bool]  # per unit: routed to an existing card (left out unless include_covered)
    clustered: list[int]  # unit indices that were clustered
    vectors: np.ndarray  # the clustered units' features
    clustering: Clustering
    proposals: list[Proposal]
    decomposition: DecomposeCounts
    merge_threshold: float

    def quality(self) -> dict | None:
        """Purity and adjusted Rand index of the clusters against the units' skill labels (when given)."""
        pairs = [(self.units[i].label, int(c)) for i, c in zip(self.clustered, self.clustering.labels)
                 if self.units[i].label is not None]
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


async def induce(engine: Engine, items: list[ScoreItem], options: InduceOptions) -> Induction:
    loop = asyncio.get_running_loop()
    units, counts = await decompose(items, options.decompose, engine.judge, options.split, options.domain)
    if not units:
        raise ValueError("the trajectories have no steps to induce from")
    domain = options.domain or Counter(u.domain for u in units).most_common(1)[0][0] or "induced"
    router = engine.router
    routes = await router.route([u.routing_text for u in units], [u.domain for u in units])
    covered = [not getattr(route, "fallback", True) for route in routes]
    chosen = [i for i, c in enumerate(covered) if options.include_covered or not c]
    embedder = engine.embedder
    texts = [units[i].routing_text[: router.text_chars] for i in chosen]
    vectors = await loop.run_in_executor(embedder.executor, embedder.encode_sync, texts) if texts else np.zeros((0, 1))
    features = centered_by_item(vectors, [units[i].item_id for i in chosen]) if options.center_trajectories else vectors
    clustering = cluster_vectors(features, options.min_cluster_size, options.max_clusters, options.clusters, options.seed)
    centroids = await loop.run_in_executor(embedder.executor, CardCentroids, engine.library, embedder,
                                           router.config.anchor_cache_dir, router.config.fallback_id)
    taken = set(engine.library.cards)
    proposals = []
    for cluster in clustering.clusters:
        order = by_centrality(features, clustering.members(cluster))
        central = [units[chosen[i]] for i in order]
        centroid = normalize(vectors[order].mean(axis=0, keepdims=True))[0]  # in the cards' (uncentered) space
        proposal = await _propose(engine, cluster, central, centroid, centroids, domain, taken, options)
        if proposal.card is not None:
            taken.add(proposal.card.id)
        proposals.append(proposal)
    return Induction(domain, units, covered, chosen, features, clustering, proposals, counts, options.merge_threshold)


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


async def _propose(engine: Engine, cluster: int, central: list[Unit], centroid: np.ndarray,
                   centroids: CardCentroids, domain: str, taken: set[str], options: InduceOptions) -> Proposal:
    member_ids = [u.id for u in central]
    nearest = centroids.nearest(centroid)
    base = dict(cluster=cluster, member_ids=member_ids, nearest=nearest, majority_label=_majority(central))
    if nearest is not None and nearest.similarity >= options.merge_threshold:
        provenance = Provenance(source=options.source, cluster_size=len(central), member_ids=member_ids,
                                model="(none: anchors only)", created_at=datetime.now(timezone.utc).replace(microsecond=0))
        patch = Patch(card_id=nearest.card_id, add_examples=example_texts(central, options.examples_per_card),
                      similarity=nearest.similarity, provenance=provenance)
        return Proposal(action="patch", patch=patch, **base)
    try:
        card = await distill(engine.judge, central, domain, taken, options.source, len(central), member_ids,
                             n_examples=options.examples_per_card, max_tokens=options.max_tokens,
                             repetition_penalty=options.repetition_penalty)
    except (JudgeError, CardError) as exc:
        return Proposal(action="refused", error=str(exc), **base)
    return Proposal(action="card", card=card, **base)
