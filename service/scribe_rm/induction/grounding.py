"""Whether a drafted card talks about its cluster: the salient terms of its name and when_to_use must occur in
the member steps, their trajectories' policy and tool schemas, or the domain's name. A small judge drafts
fluent text about things the data never mentions (a "minecraft user profile" for customer-service steps);
such a draft is kept but marked for review, with the terms that have no source.

Salient terms are words of four letters or more that are neither English stop words nor the method's own
vocabulary: the words used by at least a fifth of the library's cards (step, check, correct, error, ...).
A term counts as found when a word of the evidence shares its first five letters (verify ~ verification)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from ..library import Card

WORD = re.compile(r"[a-z]{4,}")
STEM = 5
GENERIC_SHARE = 0.2  # a word in at least this share of the library's cards is the method's vocabulary


def words(text: str) -> set[str]:
    return set(WORD.findall(text.lower()))


def card_text(card: Card) -> str:
    return " ".join([card.name, card.when_to_use, *card.procedure, *card.rubric.values(),
                     *(f"{fm.name} {fm.description}" for fm in card.failure_modes)])


def generic_vocabulary(cards: Iterable[Card]) -> set[str]:
    cards = list(cards)
    counts = Counter(word for card in cards for word in words(card_text(card)))
    return {word for word, n in counts.items() if n >= GENERIC_SHARE * len(cards)}


def ungrounded_terms(card: Card, evidence: Iterable[str], generic: set[str]) -> list[str]:
    """The salient terms of the card's name and when_to_use that no evidence text supports, sorted."""
    stems = {word[:STEM] for text in evidence for word in words(text)}
    salient = words(f"{card.name} {card.when_to_use}") - ENGLISH_STOP_WORDS - generic
    return sorted(term for term in salient if term[:STEM] not in stems)
