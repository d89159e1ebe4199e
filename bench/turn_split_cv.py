"""Cross-validated choice of the turn split's bound (service/scribe_rm/pipeline/turn_split.py) on the cards' own
examples, never on the held-out sets.

Each card's prose examples (tool calls are never plain turns) are dealt into K folds. For each fold, a router
with the service's settings is fitted on a library whose cards keep only the other folds' examples, and the
fold's examples are joined into chat turns, per routing scope (default and agent):
- two examples of two different cards: a turn of two subgoals. Right when it splits at the join with each
  part on its own card.
- two examples of one card, and each example of more than one sentence: one subgoal. Right when it stays
  one step.
Every bound is tried on the same routes; the one chosen has the best mean of the two rates (each kind of turn
counts alike, whatever their numbers), the smallest on a tie.

    .venv/bin/python bench/turn_split_cv.py --json-out bench/results/turn_split_cv.json
"""

from __future__ import annotations

import argparse
import asyncio
import re
import time

import numpy as np

from common import report
from scribe_rm.library import Library, admits, load_library
from scribe_rm.pipeline.embedder import make_embedder
from scribe_rm.pipeline.router import Router
from scribe_rm.pipeline.turn_split import candidates_of, choose, sentence_cuts
from scribe_rm.settings import Settings

BOUNDS = tuple(round(b, 3) for b in np.arange(0.0, 0.0801, 0.005))
SCOPES = {"default": None, "agent": "agent"}


def as_sentence(text: str) -> str:
    return text if re.search(r"[.!?][\"')\]]*$", text) else text + "."


def fold_library(library: Library, fold_of: dict[tuple[str, str], int], fold: int) -> Library:
    cards = {card_id: card.model_copy(update={"examples": [t for t in card.examples if fold_of.get((card_id, t)) != fold]})
             for card_id, card in library.cards.items()}
    return Library(cards, f"{library.version}-fold{fold}")


def fold_turns(library: Library, fold_of: dict[tuple[str, str], int], fold: int, scope: str | None,
               pairs: int, rng: np.random.Generator) -> list[tuple[str, tuple[str, str] | None, int | None]]:
    """(turn, (head card, tail card) or None for one subgoal, where the two-card turn's tail begins)."""
    held = [(card_id, text) for (card_id, text), f in fold_of.items()
            if f == fold and admits(scope, library.cards[card_id].domain)]
    turns: list[tuple[str, tuple[str, str] | None, int | None]] = []
    for _ in range(pairs):
        (a_card, a), (b_card, b) = (held[i] for i in rng.choice(len(held), 2, replace=False))
        if a_card != b_card:
            head = as_sentence(a)
            turns.append((f"{head} {b}", (a_card, b_card), len(head) + 1))
    by_card: dict[str, list[str]] = {}
    for card_id, text in held:
        by_card.setdefault(card_id, []).append(text)
    for card_id, texts in by_card.items():
        for a, b in zip(texts, texts[1:]):
            turns.append((f"{as_sentence(a)} {b}", None, None))
    turns += [(text, None, None) for _, text in held if sentence_cuts(text, 20)]
    return turns


async def run(args: argparse.Namespace) -> dict:
    settings = Settings()
    library = load_library(settings.library_dir, settings.fallback_card_id)
    embedder = make_embedder(settings.embedder_config())
    static = make_embedder(settings.static_embedder_config())
    embedder.load()
    static.load()
    config = settings.router_config()
    right = {(kind, bound): [] for kind in ("two", "one") for bound in BOUNDS}
    per_scope = {(scope, kind, bound): [] for scope in SCOPES for kind in ("two", "one") for bound in BOUNDS}
    for seed in args.seeds:
        rng = np.random.default_rng(seed)
        fold_of = {(card.id, text): int(rng.integers(args.folds)) for card in library.cards.values()
                   if card.id != settings.fallback_card_id for text in card.examples
                   if not text.startswith("Tool call:")}
        for fold in range(args.folds):
            router = Router(fold_library(library, fold_of, fold), embedder, config, static_embedder=static)
            await asyncio.to_thread(router.build_sync)
            for scope_name, scope in SCOPES.items():
                turns = fold_turns(library, fold_of, fold, scope, args.pairs, rng)
                found = await candidates_of(router, [t for t, _, _ in turns], [scope] * len(turns))
                for (text, cards, join), candidates in zip(turns, found):
                    kind = "one" if cards is None else "two"
                    for bound in BOUNDS:
                        split = choose(text, candidates, bound)
                        ok = (split is None if cards is None else split is not None and split.tail_start == join
                              and (split.head.card.id, split.tail.card.id) == cards)
                        right[(kind, bound)].append(ok)
                        per_scope[(scope_name, kind, bound)].append(ok)
    rates = {bound: {kind: float(np.mean(right[(kind, bound)])) for kind in ("two", "one")} for bound in BOUNDS}
    chosen = max(BOUNDS, key=lambda b: (rates[b]["two"] + rates[b]["one"], -b))
    return {"bounds": {str(b): rates[b] for b in BOUNDS}, "chosen": chosen,
            "per_scope": {f"{s}/{k}/{b}": float(np.mean(v)) for (s, k, b), v in per_scope.items() if v},
            "turns": {kind: len(right[(kind, BOUNDS[0])]) for kind in ("two", "one")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--pairs", type=int, default=120, help="random pairs drawn per fold and scope")
    parser.add_argument("--json-out")
    args = parser.parse_args()
    started = time.monotonic()
    results = asyncio.run(run(args))
    b = results["chosen"]
    rates = results["bounds"][str(b)]
    rows = [(f"bound {bound}: two-subgoal turns split right / one-subgoal turns kept", f"{r['two']:.3f} / {r['one']:.3f}",
             None) for bound, r in results["bounds"].items()]
    rows += [("chosen bound", b, None), ("two-subgoal turns split right at it", round(rates["two"], 3), None),
             ("one-subgoal turns kept whole at it", round(rates["one"], 3), None),
             ("turns (two / one subgoals)", f"{results['turns']['two']} / {results['turns']['one']}", None),
             ("wall time s", round(time.monotonic() - started, 1), None)]
    report("Turn split bound by cross-validation on the cards' examples", rows, results, args.json_out)


if __name__ == "__main__":
    main()
