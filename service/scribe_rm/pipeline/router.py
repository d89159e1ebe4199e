"""Route a subgoal to its skill card: FAISS inner product against one learned vector per card.

Every card contributes anchors (its example subgoals, its name, its when_to_use). At load the router fits
one unit vector per card on those anchors (softmax regression started from the anchors' centroid, full
batch, so it is deterministic). A lexical part is appended: the card's TF-IDF centroid over its anchors,
because sentence embedders read notation-heavy steps poorly while words such as "mod", "divisor" or "retry" are
telling. Card vectors are [semantic ; w * lexical] / (1 + w), queries likewise, so one FAISS inner product
gives the weighted mean of the two cosines. Both parts were chosen by cross-validation on the cards'
examples (bench/routing_cv.py) and generalize far better than nearest-anchor lookup (`scribe-rm eval
routing`). Below the threshold the fallback card judges the step and the miss is flagged.

Concurrent requests are micro-batched: embedding, the lexical part and the search run for a whole batch
at once in the embedder's worker thread, so the event loop only ranks the results. Only distinct texts
are embedded (GRPO rollouts of one prompt share steps), and a bounded LRU keeps each text's card
similarities, keyed by (library version, embedder fingerprint, text), so that rollouts repeated across
training steps are not embedded again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from ..blocks.lru import LRUCache
from ..blocks.microbatch import ItemFailed, MicroBatcher
from ..library import BUILTIN_DOMAINS, Card, Domain, Library, admits, scope_of
from . import metrics
from .embedder import Embedder
from .errors import UnknownCard
from .gap_sample import GapSample, GapStep


@dataclass(frozen=True)
class RouterConfig:
    threshold: float = 0.09  # joint similarity below which the fallback card judges the step
    # for texts of domain "agent" and of a library's own domains, whose scopes rank fewer cards (settings.py)
    agent_threshold: float = 0.073
    top_k: int = 3
    fallback_id: str = "general.step_validity"
    train_steps: int = 300  # 0: plain anchor centroids
    lexical_weight: float = 0.8  # weight of the TF-IDF part of the similarity (0: off)
    text_chars: int = 600  # long steps are cut to their beginning before routing
    batch_size: int = 64  # micro-batch across requests
    window_ms: float = 5.0
    anchor_cache_dir: Path | None = None
    cache_size: int = 100_000  # texts whose card similarities are kept


@dataclass(frozen=True)
class Candidate:
    card_id: str
    similarity: float


@dataclass(frozen=True)
class Route:
    card: Card
    similarity: float | None  # None when the caller named the card explicitly
    fallback: bool
    alternatives: tuple[Candidate, ...]  # top-k by similarity, best first


@dataclass
class RoutingCounts:
    """How one call's texts were answered."""
    hits: int = 0  # from the routing cache
    misses: int = 0  # distinct texts embedded
    deduplicated: int = 0  # repeats of another text of the same call

    def add(self, other: "RoutingCounts") -> None:
        self.hits += other.hits
        self.misses += other.misses
        self.deduplicated += other.deduplicated


@dataclass(frozen=True)
class Scope:
    """The cards one routing scope ranks, their FAISS index, the fitted TF-IDF (None: lexical part off), and
    where the scope's similarities sit in a text's row (all scopes side by side, one array per text)."""
    card_ids: list[str]
    index: faiss.IndexFlatIP
    tfidf: TfidfVectorizer | None
    start: int


def fit_card_vectors(anchors: np.ndarray, labels: np.ndarray, n_cards: int, steps: int,
                     temperature: float = 10.0, learning_rate: float = 0.5) -> np.ndarray:
    """One unit vector per card: cosine-softmax regression on the anchors, from their centroids."""
    centroids = np.stack([anchors[labels == k].mean(axis=0) for k in range(n_cards)])
    weights = centroids / np.linalg.norm(centroids, axis=1, keepdims=True)
    for _ in range(steps):
        unit = weights / np.linalg.norm(weights, axis=1, keepdims=True)
        logits = temperature * anchors @ unit.T
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        probs[np.arange(len(labels)), labels] -= 1.0
        weights -= learning_rate * temperature * (probs.T @ anchors) / len(labels)
    return np.ascontiguousarray(weights / np.linalg.norm(weights, axis=1, keepdims=True), dtype=np.float32)


def anchor_texts(card: Card) -> tuple[str, ...]:
    return (*card.examples, card.name, card.when_to_use)


def joint_vectors(semantic: np.ndarray, lexical: np.ndarray, lexical_weight: float) -> np.ndarray:
    joint = np.hstack([semantic, lexical_weight * lexical]) / (1 + lexical_weight)
    return np.ascontiguousarray(joint, dtype=np.float32)


def fit_index_vectors(embedded: np.ndarray, texts: list[str], labels: np.ndarray, n_cards: int, train_steps: int,
                      lexical_weight: float) -> tuple[np.ndarray, TfidfVectorizer | None]:
    """The indexed vector of each card, [semantic ; w * lexical] / (1 + w), and the fitted TF-IDF (None if w == 0)."""
    vectors = fit_card_vectors(embedded, labels, n_cards, train_steps)
    if lexical_weight <= 0:
        return vectors, None
    tfidf = TfidfVectorizer(sublinear_tf=True, token_pattern=r"(?u)\b\w+\b")
    terms = tfidf.fit_transform(texts)
    centroids = np.vstack([np.asarray(terms[labels == k].mean(axis=0)) for k in range(n_cards)])
    return joint_vectors(vectors, normalize(centroids), lexical_weight), tfidf


RECENT_VECTORS = 4096


class Router:
    def __init__(self, library: Library, embedder: Embedder, config: RouterConfig, gaps: GapSample | None = None):
        self.library = library
        self.config = config
        self.gaps = gaps  # where texts no card fits well are sampled (shared across library versions)
        self._known_domains = set(library.domains) | set(BUILTIN_DOMAINS)
        self.embedder = embedder
        self.fallback = library.cards[config.fallback_id]
        self._scopes: dict[str, Scope] = {}
        self._embedder_fingerprint = ""
        self._cache: LRUCache[np.ndarray] = LRUCache(config.cache_size)  # by text: its row of similarities
        # the embeddings of recently embedded texts, so that a text offered to the gap sample arrives with
        # its vector and GET /library/gaps need not embed it again (~3 KB each)
        self._recent_vectors: LRUCache[np.ndarray] = LRUCache(RECENT_VECTORS if gaps is not None and gaps.size else 0)
        self._batcher = MicroBatcher(self.search_sync, embedder.executor, config.batch_size, config.window_ms / 1000.0)

    @property
    def text_chars(self) -> int:
        return self.config.text_chars

    @property
    def ready(self) -> bool:
        return bool(self._scopes)

    def build_sync(self) -> None:
        """Embed every anchor, fit each scope's card vectors and index them. Blocking; call from a worker thread."""
        # the fallback is chosen by the threshold, never by similarity
        cards = [card for card in self.library.cards.values() if card.id != self.fallback.id]
        texts = [text for card in cards for text in anchor_texts(card)]
        # in chunks on the embedder's own thread (its tokenizer must not run on two threads at once), between
        # the batches of requests being routed while a reload builds
        vectors = self.embedder.encode_cached_sync(texts, self.config.anchor_cache_dir)
        embedded = dict(zip(texts, vectors))
        # one vector per card: OpenMP threads would spin for longer than the search itself takes
        faiss.omp_set_num_threads(1)
        scopes, start = {}, 0
        own_domains = sorted({scope_of(card.domain) for card in cards} - {"default"})
        for name, domain in [("default", None)] + [(d, d) for d in own_domains]:
            members = [card for card in cards if admits(domain, card.domain)]
            if members:
                scopes[name] = self._fit_scope(members, embedded, start)
                start += len(members)
        self._embedder_fingerprint = self.embedder.fingerprint()
        self._scopes = scopes

    def _fit_scope(self, cards: list[Card], embedded: dict[str, np.ndarray], start: int) -> Scope:
        texts, labels = [], []
        for k, card in enumerate(cards):
            card_texts = anchor_texts(card)
            texts.extend(card_texts)
            labels.extend([k] * len(card_texts))
        vectors, tfidf = fit_index_vectors(np.stack([embedded[t] for t in texts]), texts, np.array(labels),
                                           len(cards), self.config.train_steps, self.config.lexical_weight)
        index = faiss.IndexFlatIP(vectors.shape[1])
        index.add(vectors)
        return Scope([card.id for card in cards], index, tfidf, start)

    def explicit(self, card_id: str) -> Route:
        card = self.library.get(card_id)
        if card is None:
            raise UnknownCard(card_id)
        return Route(card=card, similarity=None, fallback=False, alternatives=())

    async def route(self, texts: list[str], domains: list[Domain | None] | None = None,
                    counts: RoutingCounts | None = None) -> list[Route | ItemFailed]:
        """One route per text, or the ItemFailed of a text the embedder could not take (its own failure only).
        Each distinct text is looked up once: in the cache, else embedded; `counts` tallies which."""
        keys = [(self.library.version, self._embedder_fingerprint, text[: self.text_chars]) for text in texts]
        rows: dict[tuple[str, str, str], np.ndarray | ItemFailed | None] = {}
        for key in keys:
            if key not in rows:
                rows[key] = self._cache.get(key)
        todo = [key for key, row in rows.items() if row is None]
        if todo:
            for key, row in zip(todo, await self._batcher.submit([text for _, _, text in todo])):
                rows[key] = row
                if not isinstance(row, ItemFailed):
                    self._cache.put(key, row)
        call = RoutingCounts(hits=len(rows) - len(todo), misses=len(todo), deduplicated=len(keys) - len(rows))
        for result, n in (("hit", call.hits), ("miss", call.misses), ("deduplicated", call.deduplicated)):
            metrics.ROUTE_LOOKUPS.labels(result).inc(n)
        if counts is not None:
            counts.add(call)
        domains = domains or [None] * len(texts)
        decided = [row if isinstance(row, ItemFailed) else self._decide(row, domain)  # type: ignore[arg-type]
                   for row, domain in zip((rows[key] for key in keys), domains)]
        self._observe(keys, domains, decided)
        return decided

    def _observe(self, keys: list[tuple[str, str, str]], domains: list[Domain | None],
                 decided: list[Route | ItemFailed]) -> None:
        """Count routing outcomes per domain and offer each distinct text no card fits well to the gap sample."""
        offered = set()
        for (_, _, text), domain, route in zip(keys, domains, decided):
            if isinstance(route, ItemFailed) or self.gaps is None:
                continue
            ranked = route.alternatives
            margin = ranked[0].similarity - ranked[1].similarity if len(ranked) > 1 else None
            outcome = self.gaps.outcome(route.fallback, margin)
            label = domain if domain is None or domain in self._known_domains else "other"  # bounded label set
            metrics.ROUTE_OUTCOMES.labels(label or "none", outcome).inc()
            if outcome != "confident" and (text, domain) not in offered:
                offered.add((text, domain))
                self.gaps.offer(GapStep(text, domain, outcome, ranked[0].card_id if ranked else None,
                                        route.similarity, None if margin is None else round(margin, 6)),
                                self._recent_vectors.get(text))

    def search_sync(self, texts: list[str]) -> list[np.ndarray]:
        """Each text's row: its similarity to every card of each scope, scope after scope in card order.
        Blocking: runs in the embedder's thread. Texts repeated within the batch (concurrent requests can
        share one) are embedded once."""
        assert self._scopes, "router index not built"
        distinct = list(dict.fromkeys(text[: self.text_chars] for text in texts))
        semantic = self.embedder.encode_sync(distinct)
        blocks = []
        for scope in self._scopes.values():
            vectors = semantic
            if scope.tfidf is not None:
                vectors = joint_vectors(semantic, scope.tfidf.transform(distinct).toarray(),
                                        self.config.lexical_weight)
            sims, ids = scope.index.search(vectors, scope.index.ntotal)  # exact: one vector per card
            by_card = np.empty_like(sims)
            np.put_along_axis(by_card, ids, sims, axis=1)
            blocks.append(by_card)
        # each row its own copy: a cached view would keep the whole batch's array alive
        row_of = {text: row.copy() for text, row in zip(distinct, np.hstack(blocks))}
        if self._recent_vectors.capacity:
            for text, vector in zip(distinct, semantic):
                self._recent_vectors.put(text, vector.copy())
        return [row_of[text[: self.text_chars]] for text in texts]

    def _decide(self, row: np.ndarray, domain: Domain | None) -> Route:
        name = scope_of(domain)
        scope = self._scopes.get(name)
        ranked: list[Candidate] = []  # top-k by similarity (best first), among the cards the domain admits
        if scope is not None:
            similarities = row[scope.start: scope.start + len(scope.card_ids)]
            for idx in np.argsort(-similarities, kind="stable").tolist():
                card_id = scope.card_ids[idx]
                if admits(domain, self.library.cards[card_id].domain):
                    ranked.append(Candidate(card_id, round(float(similarities[idx]), 6)))
                    if len(ranked) == self.config.top_k:
                        break
        alternatives = tuple(ranked)
        threshold = self.config.threshold if name == "default" else self.config.agent_threshold
        if not ranked or ranked[0].similarity < threshold:
            top = ranked[0].similarity if ranked else None
            return Route(card=self.fallback, similarity=top, fallback=True, alternatives=alternatives)
        return Route(card=self.library.cards[ranked[0].card_id], similarity=ranked[0].similarity,
                     fallback=False, alternatives=alternatives)
