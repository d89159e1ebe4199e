"""A chat turn that does two things is two subgoals: "Your return date is now 16 June and 96.00 was charged.
Drive safely!" reports a result and then closes the conversation, and each part has its own card.

A plain assistant turn (text only, no tool calls) of a few sentences is cut at each sentence boundary in
turn; both parts of every cut are routed in the item's scope, in the first tier's space. A cut qualifies where
the two parts go to different cards, neither falls back, and each leads its own runner-up by at least
`min_margin`; of several, the one whose weaker part leads by most. Its two parts are then routed through every
tier, and the turn splits if they still reach two cards. Otherwise it stays one step. The bound was chosen by
cross-validation on pairs of the cards' own examples (bench/turn_split_cv.py)."""

from __future__ import annotations

import re
from collections.abc import Hashable
from dataclasses import dataclass, replace
from typing import TypeVar

from ..blocks.microbatch import ItemFailed
from ..library import Domain, domain_of_scope
from .router import Route, Router, RoutingCounts
from .segment import Segment

# a sentence ends at . ! or ? (closing quotes or brackets may follow) before whitespace and a capital or digit
SENTENCE_BREAK = re.compile(r"(?<=[.!?])[\"'\u201d)\]]*\s+(?=[\"'\u201c(]?[A-Z0-9])")
MIN_PART_WORDS = 2  # "Dr." or "No." before a break is an abbreviation or a fragment, not a subgoal
# Turns often open with a few words of courtesy ("I can help with that.", "Sorry about that!") that are no
# subgoal of their own, yet come close to the closing card; a head shorter than this is never cut off.
MIN_HEAD_WORDS = 8
K = TypeVar("K", bound=Hashable)  # how a caller keys its turns


@dataclass(frozen=True)
class Cut:
    """One way of cutting a turn, its parts routed: the head is text[:at] (trimmed), the tail text[at:]."""
    at: int
    head: Route
    tail: Route


@dataclass(frozen=True)
class TurnSplit:
    head_end: int  # the head is text[:head_end]
    tail_start: int  # the tail is text[tail_start:]
    head: Route
    tail: Route


def split_segment(segment: Segment, split: TurnSplit) -> tuple[Segment, Segment]:
    """The two steps of a split turn; `start`/`end` place each in its message's text."""
    text = segment.text
    return (replace(segment, text=text[:split.head_end], start=0, end=split.head_end),
            replace(segment, text=text[split.tail_start:], start=split.tail_start, end=len(text)))


def sentence_cuts(text: str, max_sentences: int) -> list[int]:
    """Where each sentence after the first begins; none for one sentence or more than `max_sentences`."""
    cuts = [m.end() for m in SENTENCE_BREAK.finditer(text)]
    if not cuts or len(cuts) + 1 > max_sentences:
        return []
    return [cut for cut in cuts
            if len(text[:cut].split()) >= MIN_HEAD_WORDS and len(text[cut:].split()) >= MIN_PART_WORDS]


def choose(text: str, cuts: list[Cut], min_margin: float) -> TurnSplit | None:
    """The cut whose parts are clearly different subgoals, the one whose weaker part leads by most."""
    best, best_lead = None, -1.0
    for cut in cuts:
        if not _two_cards(cut.head, cut.tail):
            continue
        lead = min(_lead(cut.head), _lead(cut.tail))
        if lead >= min_margin and lead > best_lead:
            best, best_lead = cut, lead
    if best is None:
        return None
    return TurnSplit(len(text[:best.at].rstrip()), best.at, best.head, best.tail)


def _two_cards(head: Route, tail: Route) -> bool:
    """Whether the parts reach two different cards, neither by falling back."""
    return not head.fallback and not tail.fallback and head.card.id != tail.card.id


def _lead(route: Route) -> float:
    margin = route.margin
    return float("inf") if margin is None else margin  # a scope of one card: nothing to confuse it with


def confirmed(split: TurnSplit, head: Route | ItemFailed, tail: Route | ItemFailed) -> TurnSplit | None:
    """A cut chosen in the first tier, kept if its parts, routed through every tier, still reach two cards."""
    if isinstance(head, ItemFailed) or isinstance(tail, ItemFailed) or not _two_cards(head, tail):
        return None
    return replace(split, head=head, tail=tail)


async def routed_cuts(router: Router, texts: list[str], domains: list[Domain | None],
                      counts: RoutingCounts | None = None, first_tier_only: bool = True) -> list[list[Cut]]:
    """Every cut of every text with both parts routed in the text's scope (domain as given, None: default)."""
    positions = [sentence_cuts(text, router.config.turn_split_max_sentences) for text in texts]
    parts, part_domains = [], []
    for text, ats, domain in zip(texts, positions, domains):
        for at in ats:
            parts += [text[:at].rstrip(), text[at:]]
            part_domains += [domain, domain]
    routes = iter(await router.route_in(parts, part_domains, counts, first_tier_only) if parts else [])
    found = []
    for ats in positions:
        cuts = []
        for at in ats:
            head, tail = next(routes), next(routes)
            if not isinstance(head, ItemFailed) and not isinstance(tail, ItemFailed):
                cuts.append(Cut(at, head, tail))
        found.append(cuts)
    return found


async def split_turns(router: Router, turns: dict[K, tuple[str, str]], counts: RoutingCounts | None = None
                      ) -> dict[K, TurnSplit]:
    """Of plain turns keyed by the caller, each given as (text, the scope its item was routed in), the ones that
    split into two subgoals under the router's settings (none when the split is turned off). Every cut is tried
    in the first tier's space (the static model: next to free); only the chosen cut's two parts go through the
    second tier."""
    if not router.config.turn_split or not turns:
        return {}
    keys = list(turns)
    texts = [turns[key][0] for key in keys]
    domains = [domain_of_scope(turns[key][1]) for key in keys]
    found = await routed_cuts(router, texts, domains, counts)
    picked = {k: split for k, (text, cuts) in enumerate(zip(texts, found))
              if (split := choose(text, cuts, router.config.turn_split_margin)) is not None}
    parts = [part for k, split in picked.items() for part in (texts[k][:split.head_end], texts[k][split.tail_start:])]
    routes = await router.route_in(parts, [domains[k] for k in picked for _ in (0, 1)], counts) if parts else []
    confirmed_splits = {keys[k]: confirmed(split, routes[2 * n], routes[2 * n + 1])
                        for n, (k, split) in enumerate(picked.items())}
    return {key: split for key, split in confirmed_splits.items() if split is not None}
