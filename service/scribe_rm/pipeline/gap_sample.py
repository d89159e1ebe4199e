"""Coverage gaps from live traffic: a bounded sample of the routing texts that no card fits well (they fell
back, or the best card beat the runner-up by less than `margin`), one reservoir per domain. Only the routing
text, its domain and the routing outcome are kept, never request metadata; `SCRIBE_GAP_SAMPLE_SIZE=0` keeps
nothing. induction/gaps.py clusters the sample for `GET /library/gaps`."""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import numpy as np

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

    def remember(self, vectors: dict[str, np.ndarray]) -> None:
        """Keep the vectors GET /library/gaps computed for kept texts: each is embedded once, not per call."""
        with self._lock:
            for kept in self._kept.values():
                for j, (step, vector) in enumerate(kept):
                    if vector is None and step.text in vectors:
                        kept[j] = (step, vectors[step.text])

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
