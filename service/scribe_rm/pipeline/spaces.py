"""One embedding space of the router: an embedder, the card vectors fitted in it per routing scope, a
micro-batcher and an LRU of each text's similarity row.

Every card contributes anchors (its example subgoals, its name, its when_to_use). The space fits one unit
vector per card on those anchors (softmax regression started from the anchors' centroid, full batch, so it
is deterministic). A static space can also fit, per scope, corrections to the vectors of the tokens its
anchors use (token_tuning.py). A lexical part is appended: the card's TF-IDF centroid over its anchors,
because sentence embedders read notation-heavy steps poorly while words such as "mod", "divisor" or "retry"
are telling. Card vectors are [semantic ; w * lexical] / (1 + w), queries likewise, so one FAISS inner product gives the
weighted mean of the two cosines. Both parts were chosen by cross-validation on the cards' examples
(bench/routing_cv.py), in each space.

A text's row holds its similarity to every card of every scope, scope after scope in card order; every
space lays its rows out the same way, so rows of two spaces can be combined card by card. Concurrent
requests are micro-batched: embedding, the lexical part and the search run for a whole batch in the
embedder's worker thread. Only distinct texts are embedded, and a bounded LRU keeps each text's row, keyed
by (library version, embedder fingerprint, text), so that rollouts repeated across training steps are not
embedded again.
"""

from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from ..blocks.lru import LRUCache
from ..blocks.microbatch import ItemFailed, MicroBatcher
from ..library import Card
from . import metrics
from .embedder import Embedder, StaticEmbedder
from .token_tuning import TokenTuning, cached_token_tuning, fit_token_tuning, mean_vectors

RECENT_VECTORS = 4096


@dataclass(frozen=True)
class Scope:
    """The cards one routing scope ranks, their FAISS index, the fitted TF-IDF (None: lexical part off), where
    the scope's similarities sit in a text's row, and its token corrections (static spaces that fit them)."""
    card_ids: list[str]
    index: faiss.IndexFlatIP
    tfidf: TfidfVectorizer | None
    start: int
    tuning: TokenTuning | None = None


@dataclass
class Lookup:
    """How one call's distinct texts were answered in one space."""
    rows: dict[str, np.ndarray | ItemFailed]
    hits: int = 0  # from the row cache
    misses: int = 0  # embedded


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


def fit_index_vectors(embedded: np.ndarray | None, texts: list[str], labels: np.ndarray, n_cards: int,
                      train_steps: int, lexical_weight: float, card_vectors: np.ndarray | None = None
                      ) -> tuple[np.ndarray, TfidfVectorizer | None]:
    """The indexed vector of each card, [semantic ; w * lexical] / (1 + w), and the fitted TF-IDF (None if w == 0).
    The semantic part is fitted on the anchors' vectors `embedded`, unless given as `card_vectors`."""
    vectors = card_vectors if card_vectors is not None else fit_card_vectors(embedded, labels, n_cards, train_steps)
    if lexical_weight <= 0:
        return vectors, None
    tfidf = TfidfVectorizer(sublinear_tf=True, token_pattern=r"(?u)\b\w+\b")
    terms = tfidf.fit_transform(texts)
    centroids = np.vstack([np.asarray(terms[labels == k].mean(axis=0)) for k in range(n_cards)])
    return joint_vectors(vectors, normalize(centroids), lexical_weight), tfidf


class Space:
    def __init__(self, name: str, embedder: Embedder, train_steps: int, lexical_weight: float,
                 batch_size: int, window_s: float, cache_size: int, keep_vectors: bool = False,
                 token_tuning: tuple[int, float] = (0, 0.0)):
        """`token_tuning`: (steps, l2) of the token corrections fitted per scope; a static embedder only, 0 steps:
        none."""
        self.name = name
        self.embedder = embedder
        self.train_steps = train_steps
        self.lexical_weight = lexical_weight
        self.tuning_steps, self.tuning_l2 = token_tuning
        self._token_table = np.zeros((0, 0), dtype=np.float32)  # the static model's token vectors, read at build
        if self.tuning_steps and not isinstance(embedder, StaticEmbedder):
            raise ValueError("token corrections are fitted for a static embedder only")
        self.scopes: dict[str, Scope] = {}
        self.fingerprint = ""
        self._cache: LRUCache[np.ndarray] = LRUCache(cache_size)  # by text: its row of similarities
        # the embeddings of recently embedded texts, so that a text offered to the gap sample arrives with
        # its vector and GET /library/gaps need not embed it again (~3 KB each)
        self.recent_vectors: LRUCache[np.ndarray] = LRUCache(RECENT_VECTORS if keep_vectors else 0)
        self._batcher = MicroBatcher(self.search_sync, embedder.executor, batch_size, window_s)

    @property
    def ready(self) -> bool:
        return bool(self.scopes)

    def build_sync(self, scopes: dict[str, list[Card]], anchor_cache_dir) -> None:
        """Embed every anchor and fit each scope's card vectors. Blocking; call it from a worker thread."""
        cards = list({card.id: card for members in scopes.values() for card in members}.values())
        texts = [text for card in cards for text in anchor_texts(card)]
        if self.tuning_steps:  # token ids cost nothing to recompute; the vectors come from the fitted corrections
            self._token_table = self.embedder.token_table()  # type: ignore[attr-defined]
            embedded = dict(zip(texts, self._token_ids(texts)))
        else:  # in chunks on the embedder's own thread, between the batches of requests routed while a reload builds
            embedded = dict(zip(texts, self.embedder.encode_cached_sync(texts, anchor_cache_dir)))
        faiss.omp_set_num_threads(1)  # one vector per card: OpenMP threads would spin longer than the search
        fitted, start = {}, 0
        for name, members in scopes.items():
            fitted[name] = self._fit_scope(members, embedded, start, anchor_cache_dir)
            start += len(members)
        self.fingerprint = self.embedder.fingerprint()
        self.scopes = fitted

    def _fit_scope(self, cards: list[Card], embedded: dict[str, np.ndarray], start: int, cache_dir) -> Scope:
        """`embedded`: each anchor's vector, or its token ids where the space fits token corrections (kept in the
        anchor cache directory, as the anchors' vectors are)."""
        texts, labels = [], []
        for k, card in enumerate(cards):
            card_texts = anchor_texts(card)
            texts.extend(card_texts)
            labels.extend([k] * len(card_texts))
        tuning = card_vectors = None
        if self.tuning_steps:
            card_vectors, tuning = cached_token_tuning(
                cache_dir, [self.embedder.fingerprint(), self.tuning_steps, self.tuning_l2, texts, labels],
                lambda: fit_token_tuning(self._token_table, [embedded[t] for t in texts], np.array(labels), len(cards),
                                         self.tuning_steps, self.tuning_l2))
        vectors, tfidf = fit_index_vectors(None if tuning else np.stack([embedded[t] for t in texts]), texts,
                                           np.array(labels), len(cards), self.train_steps, self.lexical_weight,
                                           card_vectors)
        index = faiss.IndexFlatIP(vectors.shape[1])
        index.add(vectors)
        return Scope([card.id for card in cards], index, tfidf, start, tuning)

    def _token_ids(self, texts: list[str]) -> list[np.ndarray]:
        return self.embedder.token_ids_sync(texts)  # type: ignore[attr-defined]

    async def rows(self, texts: list[str], version: str) -> Lookup:
        """The row of each distinct text: from the cache, else embedded (micro-batched with other callers)."""
        keys = {text: (version, self.fingerprint, text) for text in texts}
        found: dict[str, np.ndarray | ItemFailed] = {}
        for text, key in keys.items():
            row = self._cache.get(key)
            if row is not None:
                found[text] = row
        todo = [text for text in keys if text not in found]
        if todo:
            metrics.ROUTE_EMBEDDED.labels(self.name).inc(len(todo))
            for text, row in zip(todo, await self._batcher.submit(todo)):
                found[text] = row
                if not isinstance(row, ItemFailed):
                    self._cache.put(keys[text], row)
        return Lookup(found, hits=len(keys) - len(todo), misses=len(todo))

    def search_sync(self, texts: list[str]) -> list[np.ndarray]:
        """Each text's row. Blocking: runs in the embedder's thread. Texts repeated within the batch (concurrent
        requests can share one) are embedded once."""
        assert self.scopes, "router index not built"
        distinct = list(dict.fromkeys(texts))
        if self.tuning_steps:
            token_ids, table = self._token_ids(distinct), self._token_table
        else:
            semantic = self.embedder.encode_sync(distinct)
        blocks = []
        for scope in self.scopes.values():
            if scope.tuning is not None:
                semantic = mean_vectors(table, token_ids, scope.tuning)
            vectors = semantic
            if scope.tfidf is not None:
                vectors = joint_vectors(semantic, scope.tfidf.transform(distinct).toarray(), self.lexical_weight)
            sims, ids = scope.index.search(vectors, scope.index.ntotal)  # exact: one vector per card
            by_card = np.empty_like(sims)
            np.put_along_axis(by_card, ids, sims, axis=1)
            blocks.append(by_card)
        # each row its own copy: a cached view would keep the whole batch's array alive
        row_of = {text: row.copy() for text, row in zip(distinct, np.hstack(blocks))}
        if self.recent_vectors.capacity:
            for text, vector in zip(distinct, semantic):
                self.recent_vectors.put(text, vector.copy())
        return [row_of[text] for text in texts]
