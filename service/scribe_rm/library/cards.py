"""The card model: one rubric card per skill, with the rules every card must meet (shipped or induced)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

# The shipped domains. A library may add its own (an induced "data_analysis", say): a domain is any short
# snake_case name, and texts of that domain route among its cards and the general ones.
BUILTIN_DOMAINS = ("math", "tool_use", "agent", "general")
Domain = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z_]{0,39}$")]
# "agent": skills of policy-bound agent dialogues (authenticate, check the policy, troubleshoot, close). A
# text routes to them only when its item says domain "agent", which also admits the tool-use cards.
DEFAULT_SCOPE_DOMAINS = ("math", "tool_use", "general")
# Not a domain anyone writes: the router's broadest scope, every card at once, for an item whose own scope is
# unclear. (Domains are snake_case words, so it cannot clash with one.)
EVERY_CARD = "*"


def scope_of(domain: str | None) -> str:
    """The routing scope of a text's domain. The router fits card vectors per scope, so a card set that only
    one scope admits (the agent cards, a user's own domain) never moves routing in another."""
    if domain == EVERY_CARD:
        return "all"
    if domain is None or domain in DEFAULT_SCOPE_DOMAINS:
        return "default"
    return domain


def domain_of_scope(scope: str) -> str | None:
    """The domain whose texts route in `scope`, every card of the scope admitted (None: the default scope)."""
    return {"default": None, "all": EVERY_CARD}.get(scope, scope)


def home_scope(card_domain: str) -> str | None:
    """The scope a step routed to a card of this domain points its item to; None for cards at home in several
    scopes (tool use serves plain tool calls and agent dialogues alike; the general card serves all)."""
    if card_domain in ("tool_use", "general"):
        return None
    return scope_of(card_domain)


def admits(domain: str | None, card_domain: str) -> bool:
    """Whether a text of `domain` (None: the default scope) may route to a card of `card_domain`."""
    if card_domain == "general" or domain == EVERY_CARD:
        return True
    if domain == "agent":
        return card_domain in ("agent", "tool_use")
    if scope_of(domain) != "default":
        return card_domain == domain
    return card_domain in DEFAULT_SCOPE_DOMAINS and domain in (None, card_domain)


SCORE_LEVELS = (0, 1, 2, 3)
MIN_EXAMPLES = 4  # distinct example subgoals (routing anchors) a card needs


class FailureMode(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    description: str = Field(min_length=1)
    score: int = Field(ge=0, le=3)


class Provenance(BaseModel):
    """Where an induced card came from."""
    model_config = ConfigDict(extra="forbid")
    source: str = Field(min_length=1)  # the trajectories file or gaps URL
    cluster_size: int = Field(ge=1)
    member_ids: list[str]  # "<item id>#<step index>" of the cluster's members
    model: str  # the judge model that drafted it
    created_at: datetime


class Card(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z][a-z_]*\.[a-z0-9_]+$")
    name: str = Field(min_length=1)
    domain: Domain
    when_to_use: str = Field(min_length=1)
    procedure: list[str] = Field(min_length=1)
    rubric: dict[int, str]
    failure_modes: list[FailureMode] = Field(default_factory=list)
    examples: list[str] = Field(min_length=MIN_EXAMPLES)
    status: Literal["active", "draft"] = "active"  # drafts load only with SCRIBE_LOAD_DRAFT_CARDS=true
    provenance: Provenance | None = None

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
    """A card that cannot be used; the message names the file (or draft) and the field."""


def describe(where: object, err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "(card)"
        parts.append(f"field '{loc}': {e['msg']}")
    return f"{where}: " + "; ".join(parts)


def validate_card(data: object, where: object) -> Card:
    """The one validator of shipped, edited and induced cards; CardError names `where` and the field."""
    if not isinstance(data, dict):
        raise CardError(f"{where}: a card must be a mapping, got {type(data).__name__}")
    try:
        return Card.model_validate(data)
    except ValidationError as exc:
        raise CardError(describe(where, exc)) from exc
