"""Merge, not duplicate: a cluster whose centroid lies close to an existing card's anchor centroid becomes
a patch (new anchors for that card) instead of a new card."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

from ..library import Library, Provenance
from ..pipeline.embedder import Embedder
from ..pipeline.router import anchor_texts

# Measured by bench/merge_threshold.py on the shipped cards, half of each card's examples playing a cluster:
# median cosine 0.85 to its own card's other anchors, 0.63 to the nearest other card; 0.73 has the best
# balanced accuracy (94.9% of own-card halves above it, 94.9% of nearest other cards below).
MERGE_THRESHOLD = 0.73


@dataclass(frozen=True)
class Nearest:
    card_id: str
    similarity: float


class Patch(BaseModel):
    """New anchors proposed for an existing card."""
    model_config = ConfigDict(extra="forbid")
    card_id: str
    add_examples: list[str]
    similarity: float
    provenance: Provenance


class CardCentroids:
    """Each card's unit anchor centroid in the embedder's space. The anchors are listed as the router lists
    them, so their embeddings come from the router's anchor cache file."""

    def __init__(self, library: Library, embedder: Embedder, cache_dir: Path | None, fallback_id: str):
        cards = [card for card in library.cards.values() if card.id != fallback_id]
        texts = [text for card in cards for text in anchor_texts(card)]
        embedded = embedder.encode_cached_sync(texts, cache_dir) if texts else np.zeros((0, 1))
        self.card_ids, rows, start = [], [], 0
        for card in cards:
            count = len(anchor_texts(card))
            centroid = embedded[start:start + count].mean(axis=0)
            self.card_ids.append(card.id)
            rows.append(centroid / np.linalg.norm(centroid))
            start += count
        self.matrix = np.vstack(rows) if rows else np.zeros((0, 1))

    def nearest(self, centroid: np.ndarray) -> Nearest | None:
        if not self.card_ids:
            return None
        similarities = self.matrix @ centroid
        best = int(np.argmax(similarities))
        return Nearest(self.card_ids[best], round(float(similarities[best]), 4))


def write_patches(patches: list[Patch], path: Path) -> None:
    """JSON, not YAML: a library directory loads every *.yaml below it as a card."""
    path.write_text(json.dumps([p.model_dump(mode="json") for p in patches], indent=2, ensure_ascii=False),
                    encoding="utf-8")


def read_patches(path: Path) -> list[Patch]:
    return [Patch.model_validate(entry) for entry in json.loads(path.read_text(encoding="utf-8"))]
