"""Cross-validated routing accuracy on the cards' own example subgoals: the measure used to choose the
embedder and the router's settings without ever reading the held-out set (tests/data/routing_heldout.jsonl).

Each card's examples are dealt into K folds. For each fold, the router's card vectors are fitted on the
other folds' examples plus every card's name and when_to_use, and the fold's examples are routed (top-1).
The embedder and the defaults come from the settings, e.g. SCRIBE_EMBEDDER_MODEL=all-MiniLM-L6-v2.

    .venv/bin/python bench/routing_cv.py --lexical-weights 0 0.5 0.8 1.2 --json-out bench/results/routing_cv_mpnet.json
"""

from __future__ import annotations

import argparse

import numpy as np

from common import report
from scribe_rm.embedder import Embedder
from scribe_rm.prototypes import load_library
from scribe_rm.router import anchor_texts, fit_index_vectors, joint_vectors
from scribe_rm.settings import Settings


def cross_validate(embedded: dict[str, np.ndarray], cards, folds: int, seed: int, train_steps: int,
                   lexical_weight: float) -> float:
    rng = np.random.default_rng(seed)
    examples = [(k, text, rng.integers(folds)) for k, card in enumerate(cards) for text in card.examples]
    always = [(k, text) for k, card in enumerate(cards) for text in (card.name, card.when_to_use)]
    correct = 0
    for fold in range(folds):
        train = [(k, t) for k, t, f in examples if f != fold] + always
        test = [(k, t) for k, t, f in examples if f == fold]
        texts = [t for _, t in train]
        vectors, tfidf = fit_index_vectors(np.stack([embedded[t] for t in texts]), texts,
                                           np.array([k for k, _ in train]), len(cards), train_steps, lexical_weight)
        queries = np.stack([embedded[t] for _, t in test])
        if tfidf is not None:
            queries = joint_vectors(queries, tfidf.transform([t for _, t in test]).toarray(), lexical_weight)
        correct += int(((queries @ vectors.T).argmax(axis=1) == np.array([k for k, _ in test])).sum())
    return correct / len(examples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lexical-weights", type=float, nargs="+", default=None,
                        help="TF-IDF weights to compare (default: SCRIBE_ROUTE_LEXICAL_WEIGHT only).")
    parser.add_argument("--json-out")
    args = parser.parse_args()

    settings = Settings()
    library = load_library(settings.prototypes_dir, settings.fallback_prototype_id)
    cards = [card for card in library.cards.values() if card.id != settings.fallback_prototype_id]
    embedder = Embedder.from_settings(settings)
    embedder.load()
    texts = [text for card in cards for text in anchor_texts(card)]  # the router's order: shares its cache
    embedded = dict(zip(texts, embedder.encode_cached_sync(texts, settings.anchor_cache_dir)))

    weights = args.lexical_weights or [settings.route_lexical_weight]
    accuracy = {w: cross_validate(embedded, cards, args.folds, args.seed, settings.route_train_steps, w)
                for w in weights}
    n_examples = sum(len(card.examples) for card in cards)
    name = str(settings.embedder_model_dir or settings.embedder_model)
    rows = [(f"top-1, lexical weight {w}", round(a, 4), None) for w, a in accuracy.items()]
    report(f"Routing, {args.folds}-fold CV on {n_examples} card examples, embedder {name}", rows,
           {"embedder": name, "folds": args.folds, "seed": args.seed, "n_examples": n_examples,
            "top1_by_lexical_weight": {str(w): a for w, a in accuracy.items()}}, args.json_out)


if __name__ == "__main__":
    main()
