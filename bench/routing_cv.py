"""Cross-validated routing accuracy on the cards' own example subgoals: the measure used to choose the
embedder and the router's settings without ever reading the held-out sets (data/heldout/routing_heldout*.jsonl).
Per routing scope, as the router fits them: the default scope (every card but the agent ones) and the agent
scope (agent and tool-use cards), whose threshold is calibrated here to leave the same share of in-scope
examples below it as the default threshold does in the default scope.

Each card's examples are dealt into K folds. For each fold, the router's card vectors are fitted on the
other folds' examples plus every card's name and when_to_use, and the fold's examples are routed (top-1).
The embedder and the defaults come from the settings, e.g. SCRIBE_EMBEDDER_MODEL=all-MiniLM-L6-v2.

    .venv/bin/python bench/routing_cv.py --lexical-weights 0 0.5 0.8 1.2 --json-out bench/results/routing_cv_mpnet.json
"""

from __future__ import annotations

import argparse

import numpy as np

from common import report
from scribe_rm.pipeline.embedder import Embedder
from scribe_rm.library import admits, load_library
from scribe_rm.pipeline.router import anchor_texts, fit_index_vectors, joint_vectors
from scribe_rm.settings import Settings


def cross_validate(embedded: dict[str, np.ndarray], cards, folds: int, seed: int, train_steps: int,
                   lexical_weight: float) -> tuple[float, np.ndarray]:
    """(top-1 accuracy, each example's top similarity) of routing every example with the card vectors fitted
    on the other folds."""
    rng = np.random.default_rng(seed)
    examples = [(k, text, rng.integers(folds)) for k, card in enumerate(cards) for text in card.examples]
    always = [(k, text) for k, card in enumerate(cards) for text in (card.name, card.when_to_use)]
    correct, tops = 0, []
    for fold in range(folds):
        train = [(k, t) for k, t, f in examples if f != fold] + always
        test = [(k, t) for k, t, f in examples if f == fold]
        texts = [t for _, t in train]
        vectors, tfidf = fit_index_vectors(np.stack([embedded[t] for t in texts]), texts,
                                           np.array([k for k, _ in train]), len(cards), train_steps, lexical_weight)
        queries = np.stack([embedded[t] for _, t in test])
        if tfidf is not None:
            queries = joint_vectors(queries, tfidf.transform([t for _, t in test]).toarray(), lexical_weight)
        similarities = queries @ vectors.T
        correct += int((similarities.argmax(axis=1) == np.array([k for k, _ in test])).sum())
        tops.extend(similarities.max(axis=1))
    return correct / len(examples), np.array(tops)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lexical-weights", type=float, nargs="+", default=None,
                        help="TF-IDF weights to compare (default: SCRIBE_ROUTE_LEXICAL_WEIGHT only).")
    parser.add_argument("--json-out")
    args = parser.parse_args()

    settings = Settings()
    library = load_library(settings.library_dir, settings.fallback_card_id)
    cards = [card for card in library.cards.values() if card.id != settings.fallback_card_id]
    embedder = Embedder(settings.embedder_config())
    embedder.load()
    texts = [text for card in cards for text in anchor_texts(card)]  # the router's order: shares its cache
    embedded = dict(zip(texts, embedder.encode_cached_sync(texts, settings.anchor_cache_dir)))
    scopes = {"default": [c for c in cards if admits(None, c.domain)],
              "agent": [c for c in cards if admits("agent", c.domain)]}  # as the router fits them

    weights = args.lexical_weights or [settings.route_lexical_weight]
    runs = {w: cross_validate(embedded, scopes["default"], args.folds, args.seed, settings.route_train_steps, w)
            for w in weights}
    accuracy = {w: a for w, (a, _) in runs.items()}
    agent_accuracy, agent_tops = cross_validate(embedded, scopes["agent"], args.folds, args.seed,
                                                settings.route_train_steps, settings.route_lexical_weight)
    # the agent threshold that leaves as many of its scope's examples below it as route_threshold does
    _, default_tops = runs.get(settings.route_lexical_weight) or cross_validate(
        embedded, scopes["default"], args.folds, args.seed, settings.route_train_steps, settings.route_lexical_weight)
    below = float((default_tops < settings.route_threshold).mean())
    agent_threshold = float(np.quantile(agent_tops, below))
    n_examples = sum(len(card.examples) for card in scopes["default"])
    name = str(settings.embedder_model_dir or settings.embedder_model)
    rows = [(f"top-1, lexical weight {w}", round(a, 4), None) for w, a in accuracy.items()]
    rows += [("top-1, agent scope (agent + tool-use cards)", round(agent_accuracy, 4), None),
             (f"examples below route_threshold {settings.route_threshold}", round(below, 4), None),
             ("agent threshold leaving the same share below", round(agent_threshold, 4),
              f"setting: {settings.route_agent_threshold}")]
    report(f"Routing, {args.folds}-fold CV on {n_examples} card examples (default scope), embedder {name}", rows,
           {"embedder": name, "folds": args.folds, "seed": args.seed, "n_examples": n_examples,
            "top1_by_lexical_weight": {str(w): a for w, a in accuracy.items()},
            "agent_scope": {"n_examples": sum(len(c.examples) for c in scopes["agent"]), "top1": agent_accuracy,
                            "calibrated_threshold": agent_threshold},
            "share_below_route_threshold": below}, args.json_out)


if __name__ == "__main__":
    main()
