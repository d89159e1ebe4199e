"""The static tier's supervised part: per routing scope, a correction to the static model's vector of every
token its anchors use, fitted together with the scope's card vectors.

The distilled static model embeds each vocabulary token alone, so its vectors know nothing of the cards:
"wait", "OK" or "customer" weigh as they did in the transformer's view of the lone token. Fitting a correction
per anchor token (cosine-softmax regression as in spaces.fit_card_vectors, full batch, with an L2 pull towards
the distilled vectors so that a token seen once moves little) lets the static tier learn what tells the
cards' examples apart; tokens no anchor uses keep their distilled vector. On the cards' examples this raised
the static tier's cross-validated top-1 from 0.72 to 0.77 and made its margin a far better guide to when the
transformer must decide (bench/routing_cv.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

LEARNING_RATE = 0.01  # Adam, full batch
TEMPERATURE = 10.0  # as fit_card_vectors


@dataclass(frozen=True)
class TokenTuning:
    """One scope's corrections: `rows[token]` is the token's row in `deltas`, whose last row (zeros) serves every
    token the scope's anchors do not use."""
    rows: np.ndarray  # int32, one per vocabulary token
    deltas: np.ndarray  # float32, (tokens corrected + 1, dim)


def mean_vectors(table: np.ndarray, token_ids: list[np.ndarray], tuning: TokenTuning | None = None) -> np.ndarray:
    """Each text's normalized mean token vector, with the scope's corrections if given (a text without tokens:
    the zero vector)."""
    out = np.zeros((len(token_ids), table.shape[1]), dtype=np.float32)
    for i, ids in enumerate(token_ids):
        if len(ids):
            vectors = table[ids] if tuning is None else table[ids] + tuning.deltas[tuning.rows[ids]]
            out[i] = vectors.mean(axis=0)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(norms, 1e-12)


def fit_token_tuning(table: np.ndarray, token_ids: list[np.ndarray], labels: np.ndarray, n_cards: int, steps: int,
                     l2: float) -> tuple[np.ndarray, TokenTuning]:
    """The scope's unit card vectors and token corrections, fitted on its anchors (`token_ids`, `labels`).
    Blocking, ~2 s a scope of the bundled library on 2 cores; deterministic (full batch, started from the
    anchors' centroids)."""
    import torch
    from torch.nn import functional

    flat = np.concatenate([*token_ids, np.zeros(0, dtype=np.int64)]).astype(np.int64)
    vocabulary, local = np.unique(flat, return_inverse=True)
    offsets = torch.tensor(np.cumsum([0] + [len(ids) for ids in token_ids[:-1]]), dtype=torch.long)
    base = torch.from_numpy(np.ascontiguousarray(table[vocabulary], dtype=np.float32))
    bags = torch.from_numpy(local.astype(np.int64))
    target = torch.from_numpy(labels.astype(np.int64))
    delta = torch.zeros_like(base, requires_grad=True)

    def anchors() -> torch.Tensor:
        return functional.normalize(functional.embedding_bag(bags, base + delta, offsets, mode="mean"), dim=1)

    with torch.no_grad():
        start = anchors()
        centroids = torch.stack([start[target == k].mean(dim=0) for k in range(n_cards)])
    cards = functional.normalize(centroids, dim=1).clone().requires_grad_(True)
    optimizer = torch.optim.Adam([delta, cards], lr=LEARNING_RATE)
    for _ in range(steps):
        optimizer.zero_grad()
        logits = TEMPERATURE * anchors() @ functional.normalize(cards, dim=1).T
        loss = functional.cross_entropy(logits, target) + l2 * (delta ** 2).sum()
        loss.backward()
        optimizer.step()
    rows = np.full(len(table), len(vocabulary), dtype=np.int32)
    rows[vocabulary] = np.arange(len(vocabulary), dtype=np.int32)
    deltas = np.vstack([delta.detach().numpy(), np.zeros((1, table.shape[1]), dtype=np.float32)])
    card_vectors = functional.normalize(cards.detach(), dim=1).numpy()
    return np.ascontiguousarray(card_vectors, dtype=np.float32), TokenTuning(rows, deltas.astype(np.float32))


def cached_token_tuning(cache_dir: Path | None, key_parts: list,
                        fit: Callable[[], tuple[np.ndarray, TokenTuning]]) -> tuple[np.ndarray, TokenTuning]:
    """`fit()`'s result, kept in `cache_dir` under a hash of `key_parts` (the model, the settings, the scope's
    anchors and labels) so that restarts and replicas of the same library skip the fitting."""
    if cache_dir is None:
        return fit()
    key = hashlib.sha256(json.dumps([LEARNING_RATE, TEMPERATURE, *key_parts]).encode()).hexdigest()[:32]
    path = cache_dir / f"tuning-{key}.npz"
    try:
        with np.load(path) as kept:
            return kept["cards"], TokenTuning(kept["rows"], kept["deltas"])
    except (OSError, ValueError, KeyError) as exc:
        if path.exists():
            log.warning("ignoring unreadable token-correction cache %s: %s", path, exc)
    cards, tuning = fit()
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, cards=cards, rows=tuning.rows, deltas=tuning.deltas)
        tmp.replace(path)  # atomic: concurrent starts never read a half-written file
    except OSError as exc:
        log.warning("cannot write token-correction cache %s: %s", path, exc)
    return cards, tuning
