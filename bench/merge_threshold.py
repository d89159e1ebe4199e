"""Measure the merge threshold of library induction on the shipped cards: when a cluster of steps is close
enough to an existing card to become new anchors for it rather than a new card.

For each card (fallback excluded), half of its examples play an induced cluster: their unit centroid is
compared with (a) the card's centroid over its other anchors (other half, name, when_to_use): the
"same skill" similarity, and (b) every other card's full anchor centroid, the nearest one being the
"different skill" similarity. Both halves of every card are used. Prints both distributions and the
threshold with the best balanced accuracy. Run: .venv/bin/python bench/merge_threshold.py"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "service"))

from scribe_rm.pipeline.embedder import Embedder  # noqa: E402
from scribe_rm.library import load_library  # noqa: E402
from scribe_rm.induction.merge import CardCentroids  # noqa: E402
from scribe_rm.pipeline.router import anchor_texts  # noqa: E402
from scribe_rm.settings import Settings  # noqa: E402

RESULTS = Path(__file__).with_name("results") / "merge_threshold.json"


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def main() -> None:
    settings = Settings()
    library = load_library(settings.library_dir, settings.fallback_card_id)
    embedder = Embedder(settings.clustering_embedder_config())  # the space induction clusters and merges in
    embedder.load()
    centroids = CardCentroids(library, embedder, settings.anchor_cache_dir, settings.fallback_card_id)
    same, other = [], []
    for k, card_id in enumerate(centroids.card_ids):
        card = library.cards[card_id]
        half = len(card.examples) // 2
        for cluster, rest in ((card.examples[:half], card.examples[half:]), (card.examples[half:], card.examples[:half])):
            c = unit(embedder.encode_sync(list(cluster)).mean(axis=0))
            own = unit(embedder.encode_sync(list(rest) + list(anchor_texts(card))[len(card.examples):]).mean(axis=0))
            same.append(float(c @ own))
            others = np.delete(centroids.matrix, k, axis=0) @ c
            other.append(float(others.max()))
    same_a, other_a = np.array(same), np.array(other)
    best = max((float(t) for t in np.arange(0.40, 0.95, 0.01)),
               key=lambda t: ((same_a >= t).mean() + (other_a < t).mean()) / 2)
    report = {"cards": len(centroids.card_ids), "clusters": len(same),
              "same_median": round(float(np.median(same_a)), 3), "other_median": round(float(np.median(other_a)), 3),
              "best_threshold": round(best, 2), "same_above": round(float((same_a >= best).mean()), 3),
              "other_below": round(float((other_a < best).mean()), 3)}
    print(json.dumps(report, indent=2))
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    embedder.close()


if __name__ == "__main__":
    main()
