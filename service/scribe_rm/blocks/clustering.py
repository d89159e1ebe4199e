"""Cluster unit embeddings into candidate skills: scikit-learn k-means on unit vectors (cosine geometry).

k is chosen automatically by the mean silhouette (cosine) over k = 2 .. min(max_k, n // min_size), or
given. Clusters smaller than `min_size` are left out (label -1): too few members to distill a card from.
k-means++ seeding with `seed` and 10 restarts: the same inputs and seed give the same clusters. Callers that
answer live traffic (GET /library/gaps) pass fewer restarts and `search_points`: k is then chosen on a seeded
subsample of that many points and only the final k is fitted on all of them (time grows with n x max_k)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
from sklearn.preprocessing import normalize


@dataclass
class Clustering:
    labels: np.ndarray  # cluster of each unit, 0..k-1, or -1 when its cluster was too small
    k: int
    silhouette: float | None  # of the chosen k (None when it was given or there was one cluster)
    silhouettes: dict[int, float] = field(default_factory=dict)  # every k tried
    assigned: np.ndarray | None = None  # the cluster of each unit before the small ones were dropped

    def members(self, cluster: int) -> np.ndarray:
        return np.flatnonzero(self.labels == cluster)

    @property
    def clusters(self) -> list[int]:
        return sorted(int(c) for c in set(self.labels.tolist()) if c >= 0)

    @property
    def dropped(self) -> dict[int, np.ndarray]:
        """The clusters left out for their size, with their units."""
        if self.assigned is None:
            return {}
        small = sorted(set(self.assigned[self.labels < 0].tolist()))
        return {int(c): np.flatnonzero(self.assigned == c) for c in small}


def _kmeans(vectors: np.ndarray, k: int, seed: int, restarts: int = 10) -> np.ndarray:
    return KMeans(n_clusters=k, n_init=restarts, random_state=seed).fit_predict(vectors)


def cluster_vectors(vectors: np.ndarray, min_size: int = 3, max_k: int = 12, k: int | None = None,
                    seed: int = 0, restarts: int = 10, search_points: int | None = None) -> Clustering:
    unit = normalize(np.asarray(vectors, dtype=np.float64))
    n = len(unit)
    if n < min_size:
        return Clustering(np.full(n, -1), 0, None)
    silhouettes: dict[int, float] = {}
    if k is None:
        search = unit
        if search_points is not None and n > search_points:
            search = unit[np.random.default_rng(seed).choice(n, search_points, replace=False)]
        m = len(search)
        for candidate in range(2, min(max_k, m // min_size, m - 1) + 1):
            labels = _kmeans(search, candidate, seed, restarts)  # sampled past 2000 points: the score is quadratic in n
            silhouettes[candidate] = float(silhouette_score(search, labels, metric="cosine",
                                                            sample_size=min(m, 2000), random_state=seed))
        k = max(silhouettes, key=lambda c: (silhouettes[c], -c)) if silhouettes else 1
    assigned = _kmeans(unit, k, seed, restarts) if k > 1 else np.zeros(n, dtype=int)
    sizes = np.bincount(assigned, minlength=k)
    labels = np.where(sizes[assigned] >= min_size, assigned, -1)
    return Clustering(labels, k, silhouettes.get(k), silhouettes, assigned)


def by_centrality(vectors: np.ndarray, members: np.ndarray) -> np.ndarray:
    """The members ordered from the most central: cosine to the cluster's mean direction, ties in order."""
    unit = normalize(np.asarray(vectors[members], dtype=np.float64))
    order = np.argsort(-(unit @ unit.mean(axis=0)), kind="stable")
    return members[order]
