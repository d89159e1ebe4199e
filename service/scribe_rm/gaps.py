"""Coverage gaps from live traffic: a bounded sample of the routing texts that no card fits well (they fell
back, or the best card beat the runner-up by less than `margin`), one reservoir per domain, and their
clusters for `GET /library/gaps`. Only the routing text, its domain and the routing outcome are kept,
never request metadata; `SCRIBE_GAP_SAMPLE_SIZE=0` keeps nothing."""

from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import numpy as np

    from .embedder import Embedder

GAP_SEARCH_POINTS = 400  # texts on which GET /library/gaps chooses k (~2 s for 20 candidates on 2 cores)

Outcome = Literal["confident", "low_margin", "fallback"]


@dataclass(frozen=True)
class GapStep:
    text: str
    domain: str | None
    reason: Literal["low_margin", "fallback"]
    nearest: str | None  # the best-ranked card (the fallback judged it if reason is "fallback")
    similarity: float | None
    margin: float | None  # best minus runner-up similarity


class GapSample:
    """Reservoir sampling (Algorithm R) per domain: each gap seen so far is kept with equal probability,
    at most `size` per domain, whatever the traffic."""

    MAX_DOMAINS = 64  # reservoirs kept; texts of further domains share one under "other"

    def __init__(self, size: int, margin: float, seed: int = 0):
        self.size = size
        self.margin = margin
        self._rng = random.Random(seed)
        # each kept gap with its embedding from routing, when known (GET /library/gaps embeds the others)
        self._kept: dict[str, list[tuple[GapStep, np.ndarray | None]]] = {}
        self._seen: Counter[str] = Counter()
        self._lock = threading.Lock()

    def outcome(self, fallback: bool, margin: float | None) -> Outcome:
        if fallback:
            return "fallback"
        return "low_margin" if margin is not None and margin < self.margin else "confident"

    def offer(self, step: GapStep, vector: np.ndarray | None = None) -> None:
        if self.size <= 0:
            return
        key = step.domain or "none"  # texts sent without a domain
        with self._lock:
            if key not in self._seen and len(self._seen) >= self.MAX_DOMAINS:
                key = "other"
            self._seen[key] += 1
            kept = self._kept.setdefault(key, [])
            if len(kept) < self.size:
                kept.append((step, vector))
            else:
                slot = self._rng.randrange(self._seen[key])
                if slot < self.size:
                    kept[slot] = (step, vector)

    def entries(self, domain: str | None = None) -> list[tuple[GapStep, np.ndarray | None]]:
        with self._lock:
            if domain is not None:
                return list(self._kept.get(domain, []))
            return [entry for kept in self._kept.values() for entry in kept]

    def steps(self, domain: str | None = None) -> list[GapStep]:
        return [step for step, _ in self.entries(domain)]

    def seen(self) -> dict[str, int]:
        with self._lock:
            return dict(self._seen)


async def gap_clusters(sample: GapSample, embedder: "Embedder", domain: str | None, min_size: int, max_k: int,
                       max_texts: int, examples: int = 3) -> dict:
    """The sampled gaps clustered as induction clusters steps (same embedder, same k-means and k choice),
    at most `max_texts` of them (a seeded random subset), embedded once and clustered in worker threads."""
    import numpy as np

    from .library.cluster import by_centrality, cluster_vectors

    entries = sample.entries(domain)
    report: dict = {"seen": sample.seen(), "sampled": len(entries), "clusters": [], "unclustered": len(entries)}
    if len(entries) > max_texts:
        entries = random.Random(0).sample(entries, max_texts)
    if len(entries) < min_size:
        return report
    loop = asyncio.get_running_loop()
    steps = [step for step, _ in entries]
    found = {step.text: vector for step, vector in entries if vector is not None}  # embedded when routed, mostly
    missing = list(dict.fromkeys(step.text for step in steps if step.text not in found))
    if missing:
        found.update(zip(missing, await loop.run_in_executor(embedder.executor, embedder.encode_sync, missing)))
    vectors = np.stack([found[step.text] for step in steps])
    # bounded for an HTTP answer: k chosen on a subsample, 3 restarts instead of induction's 10
    clustering = await loop.run_in_executor(None, partial(cluster_vectors, vectors, min_size, max_k, restarts=3,
                                                          search_points=GAP_SEARCH_POINTS))
    for cluster in clustering.clusters:
        members = [steps[i] for i in by_centrality(vectors, clustering.members(cluster))]
        report["clusters"].append({
            "size": len(members),
            "domains": dict(Counter(m.domain or "none" for m in members)),
            "reasons": dict(Counter(m.reason for m in members)),
            "nearest_cards": [{"card_id": c, "count": n} for c, n in Counter(m.nearest for m in members).most_common(3)],
            "examples": [m.text for m in members[:examples]],
            "texts": [m.text for m in members],
        })
    report["clusters"].sort(key=lambda c: -c["size"])
    report["unclustered"] = int((clustering.labels < 0).sum())
    return report
