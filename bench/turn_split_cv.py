"""Cross-validated choice of the turn split's bound (service/scribe_rm/pipeline/turn_split.py) on the cards' own
examples, never on the held-out sets.

Each card's prose examples (tool calls are never plain turns) are dealt into K folds. For each fold, a router
with the service's settings is fitted on a library whose cards keep only the other folds' examples, and the
fold's examples are joined into chat turns, per routing scope (default and agent):
- two examples of two different cards: a turn of two subgoals. Right when it splits at the join with each
  part on its own card.
- two examples of one card, and each example of more than one sentence: one subgoal. Right when it stays
  one step.
Two ways of routing the cuts are compared, each at every bound on the same routes: every cut's parts through
every tier (static, then the transformer where the static space is unclear), or every cut in the first tier
(static) alone and only the chosen cut's two parts through every tier, kept if they still reach two cards
(what split_turns does: the transformer sees 2 texts per split turn instead of 2 per cut). For each way the
best bound has the best mean of the two rates (each kind of turn counts alike, whatever their numbers), the
smallest on a tie; the cheap way is chosen unless its best mean is more than a point below the other's.

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
from scribe_rm.pipeline.router import Router, RoutingCounts
from scribe_rm.pipeline.turn_split import routed_cuts, choose, confirmed, sentence_cuts
from scribe_rm.settings import Settings

BOUNDS = tuple(round(b, 3) for b in np.arange(0.0, 0.0801, 0.005))
SCOPES = {"default": None, "agent": "agent"}
WAYS = ("every tier", "first tier, confirmed")  # how the cuts are routed (see split_turns)


def as_sentence(text: str) -> str:
    return text if re.search(r"[.!?][\"')\]]*$", text) else text + "."


def fold_library(library: Library, fold_of: dict[tuple[str, str], int], fold: int) -> Library:
    cards = {card_id: card.model_copy(update={"examples": [
                 t for t in card.examples if fold_of.get((card_id, t)) != fold]})
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


def outcome(split, cards: tuple[str, str] | None, join: int | None) -> bool:
    """A one-subgoal turn is right kept whole; a two-subgoal turn, split at the join with each part on its card."""
    if cards is None:
        return split is None
    return split is not None and split.tail_start == join and (split.head.card.id, split.tail.card.id) == cards


async def run(args: argparse.Namespace) -> dict:
    settings = Settings()
    library = load_library(settings.library_dir, settings.fallback_card_id)
    embedder = make_embedder(settings.embedder_config())
    static = make_embedder(settings.static_embedder_config())
    embedder.load()
    static.load()
    config = settings.router_config()
    right = {(way, kind, bound): [] for way in WAYS for kind in ("two", "one") for bound in BOUNDS}
    every_cut_second_tier = n_turns = 0  # texts the second tier took when every cut went through every tier
    for seed in args.seeds:
        rng = np.random.default_rng(seed)
        fold_of = {(card.id, text): int(rng.integers(args.folds)) for card in library.cards.values()
                   if card.id != settings.fallback_card_id for text in card.examples
                   if not text.startswith("Tool call:")}
        for fold in range(args.folds):
            router = Router(fold_library(library, fold_of, fold), embedder, config, static_embedder=static)
            await asyncio.to_thread(router.build_sync)
            for scope in SCOPES.values():
                turns = fold_turns(library, fold_of, fold, scope, args.pairs, rng)
                texts, domains = [t for t, _, _ in turns], [scope] * len(turns)
                counts = RoutingCounts()
                every_tier = await routed_cuts(router, texts, domains, counts, first_tier_only=False)
                first_tier = await routed_cuts(router, texts, domains)
                every_cut_second_tier += counts.second_tier
                n_turns += len(turns)
                for (text, cards, join), full, cheap in zip(turns, every_tier, first_tier):
                    kind = "one" if cards is None else "two"
                    full_by_cut = {c.at: c for c in full}
                    for bound in BOUNDS:
                        right[("every tier", kind, bound)].append(outcome(choose(text, full, bound), cards, join))
                        picked = choose(text, cheap, bound)
                        if picked is not None:  # the chosen cut's parts through every tier, as split_turns does
                            both = full_by_cut.get(picked.tail_start)
                            picked = confirmed(picked, both.head, both.tail) if both else None
                        right[("first tier, confirmed", kind, bound)].append(outcome(picked, cards, join))
    rates = {(way, bound): {kind: float(np.mean(right[(way, kind, bound)])) for kind in ("two", "one")}
             for way in WAYS for bound in BOUNDS}
    best = {way: max(BOUNDS, key=lambda b: (rates[(way, b)]["two"] + rates[(way, b)]["one"], -b)) for way in WAYS}
    mean = {way: (rates[(way, best[way])]["two"] + rates[(way, best[way])]["one"]) / 2 for way in WAYS}
    # the cheap way unless it costs more than a point: it sends 2 texts per split turn to the transformer, not 2 per cut
    way = WAYS[1] if mean[WAYS[1]] >= mean[WAYS[0]] - 0.01 else WAYS[0]
    return {"bounds": {w: {str(b): rates[(w, b)] for b in BOUNDS} for w in WAYS}, "best": best, "mean": mean,
            "chosen": {"way": way, "bound": best[way]},
            "turns": {kind: len(right[(WAYS[0], kind, BOUNDS[0])]) for kind in ("two", "one")},
            "second_tier_texts_per_turn_every_cut": every_cut_second_tier / n_turns}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--pairs", type=int, default=120, help="random pairs drawn per fold and scope")
    parser.add_argument("--json-out")
    args = parser.parse_args()
    started = time.monotonic()
    results = asyncio.run(run(args))
    rows = [(f"{way}, bound {bound}: two-subgoal turns split right / one-subgoal turns kept",
             f"{r['two']:.3f} / {r['one']:.3f}", None)
            for way, by_bound in results["bounds"].items() for bound, r in by_bound.items()]
    rows += [(f"{way}: best bound, mean of the two rates", f"{results['best'][way]}, {results['mean'][way]:.3f}", None)
             for way in WAYS]
    rows += [("chosen", f"{results['chosen']['way']}, bound {results['chosen']['bound']}", None),
             ("texts the second tier takes per turn when every cut goes through every tier",
              round(results["second_tier_texts_per_turn_every_cut"], 2), None),
             ("turns (two / one subgoals)", f"{results['turns']['two']} / {results['turns']['one']}", None),
             ("wall time s", round(time.monotonic() - started, 1), None)]
    report("Turn split bound by cross-validation on the cards' examples", rows, results, args.json_out)


if __name__ == "__main__":
    main()
