"""The skill-prototype library: one YAML rubric card per skill, validated at load, versioned by hash."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

log = logging.getLogger(__name__)

# "agent": skills of policy-bound agent dialogues (authenticate, check the policy, troubleshoot, close). A
# text routes to them only when its item says domain "agent", which also admits the tool-use cards.
Domain = Literal["math", "tool_use", "agent", "general"]
DOMAINS: tuple[Domain, ...] = ("math", "tool_use", "agent", "general")


def scope_of(domain: Domain | None) -> str:
    """The routing scope of a text's domain. The router fits card vectors per scope, so a card set that
    only one scope admits (the agent cards) never moves routing in the other."""
    return "agent" if domain == "agent" else "default"


def admits(domain: Domain | None, card_domain: Domain) -> bool:
    """Whether a text of `domain` (None: not given) may route to a card of `card_domain`."""
    if card_domain == "general":
        return True
    if domain == "agent":
        return card_domain in ("agent", "tool_use")
    return card_domain != "agent" and domain in (None, card_domain)


SCORE_LEVELS = (0, 1, 2, 3)


class FailureMode(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    description: str = Field(min_length=1)
    score: int = Field(ge=0, le=3)


class Card(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z][a-z_]*\.[a-z0-9_]+$")
    name: str = Field(min_length=1)
    domain: Domain
    when_to_use: str = Field(min_length=1)
    procedure: list[str] = Field(min_length=1)
    rubric: dict[int, str]
    failure_modes: list[FailureMode] = Field(default_factory=list)
    examples: list[str] = Field(min_length=4)

    @field_validator("rubric")
    @classmethod
    def _exact_levels(cls, rubric: dict[int, str]) -> dict[int, str]:
        if sorted(rubric) != list(SCORE_LEVELS):
            raise ValueError(f"must have exactly the levels 0, 1, 2, 3 (got {sorted(rubric)})")
        if not all(text.strip() for text in rubric.values()):
            raise ValueError("every level needs a description")
        return dict(sorted(rubric.items()))

    @field_validator("examples")
    @classmethod
    def _distinct_examples(cls, examples: list[str]) -> list[str]:
        normalized = {e.strip().lower() for e in examples}
        if len(normalized) != len(examples) or "" in normalized:
            raise ValueError("examples must be non-empty and distinct")
        return examples


class CardError(ValueError):
    """A card file that cannot be used; the message names the file and the field."""


def _describe(path: Path, err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        where = ".".join(str(x) for x in e["loc"]) or "(card)"
        parts.append(f"field '{where}': {e['msg']}")
    return f"{path}: " + "; ".join(parts)


def load_card(path: Path) -> Card:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise CardError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise CardError(f"{path}: a card must be a YAML mapping, got {type(data).__name__}")
    try:
        return Card.model_validate(data)
    except ValidationError as exc:
        raise CardError(_describe(path, exc)) from exc


@dataclass(frozen=True)
class Library:
    cards: dict[str, Card]
    version: str
    skipped: list[str] = field(default_factory=list)  # messages for cards left out (on_invalid="skip")

    def get(self, card_id: str) -> Card | None:
        return self.cards.get(card_id)

    @staticmethod
    def content_version(cards: dict[str, Card]) -> str:
        canonical = json.dumps([cards[k].model_dump(mode="json") for k in sorted(cards)], sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def load_library(directory: Path, fallback_id: str, on_invalid: Literal["fail", "skip"] = "fail") -> Library:
    """Load every `*.yaml` card below `directory`. Invalid cards fail the load or are skipped and reported."""
    paths = sorted(directory.rglob("*.yaml")) + sorted(directory.rglob("*.yml"))
    if not paths:
        raise CardError(f"{directory}: no *.yaml cards found")
    cards: dict[str, Card] = {}
    sources: dict[str, Path] = {}
    skipped: list[str] = []
    for path in paths:
        try:
            card = load_card(path)
            if card.id in cards:
                raise CardError(f"{path}: field 'id': '{card.id}' is already defined in {sources[card.id]}")
        except CardError as exc:
            if on_invalid == "fail":
                raise
            log.warning("skipping card: %s", exc)
            skipped.append(str(exc))
            continue
        cards[card.id] = card
        sources[card.id] = path
    if fallback_id not in cards:
        raise CardError(f"{directory}: the fallback card '{fallback_id}' is missing")
    return Library(cards=cards, version=Library.content_version(cards), skipped=skipped)
