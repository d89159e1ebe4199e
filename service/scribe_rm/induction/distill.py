"""Distill a cluster of steps into a draft card: the judge model writes name, when_to_use, procedure, the
0-3 rubric and failure modes under the card's JSON schema (constrained decoding); the cluster's most central
members become the card's examples (its routing anchors). The draft then passes the same validator as
every shipped card."""

from __future__ import annotations

import re
from datetime import datetime, timezone

from ..library import Card, Provenance, validate_card
from ..pipeline.judges import Judge
from .decompose import Unit

# Lengths bound the reply, so that a model repeating itself still closes the JSON within max_tokens.
_TEXT = {"type": "string", "minLength": 3, "maxLength": 160}
DRAFT_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 3, "maxLength": 60},
        "when_to_use": _TEXT,
        "procedure": {"type": "array", "items": _TEXT, "minItems": 2, "maxItems": 3},
        "rubric": {"type": "object", "properties": {level: _TEXT for level in ("3", "2", "1", "0")},
                   "required": ["3", "2", "1", "0"], "additionalProperties": False},
        "failure_modes": {"type": "array", "minItems": 1, "maxItems": 2, "items": {
            "type": "object",
            "properties": {"name": {"type": "string", "minLength": 3, "maxLength": 40}, "description": _TEXT,
                           "score": {"type": "integer", "enum": [0, 1, 2]}},
            "required": ["name", "description", "score"], "additionalProperties": False}},
    },
    "required": ["name", "when_to_use", "procedure", "rubric", "failure_modes"],
    "additionalProperties": False,
}
DISTILL_INSTRUCTIONS = (
    "You write a skill card for a reward model that checks single steps of an agent's work. You are shown "
    "steps that all exercise the same skill. Write the card for the skill, not for these steps: abstract "
    "away numbers, names, files and answers, so that the card applies to any step of this kind; no "
    "reference answer is needed to use it. Give: a short name (a few words); when_to_use (what kind of step "
    "it applies to); a procedure (what a correct execution does); a rubric with one line per score, 3 "
    "fully correct, 2 correct with a minor flaw, 1 a significant error, 0 wrong or missing; and failure "
    "modes, each a typical mistake with the score it earns. Reply with JSON only."
)


def draft_messages(members: list[Unit], domain: str) -> list[dict[str, str]]:
    shown = "\n".join(f"- {unit.routing_text[:300]}" for unit in members)
    return [{"role": "system", "content": DISTILL_INSTRUCTIONS},
            {"role": "user", "content": f"Domain: {domain}\nSteps of one skill:\n{shown}"}]


def slug(name: str) -> str:
    words = re.findall(r"[a-z0-9]+", name.lower())
    return "_".join(words)[:48].strip("_") or "skill"


def unique_id(domain: str, name: str, taken: set[str]) -> str:
    """`<domain>.<slug of name>`, with _2, _3 ... when the id is taken."""
    base = f"{domain}.{slug(name)}"
    if not base.split(".", 1)[1][0].isalpha():
        base = f"{domain}.skill_{slug(name)}"
    card_id, n = base, 2
    while card_id in taken:
        card_id, n = f"{base}_{n}", n + 1
    return card_id


EXAMPLE_CHARS = 240


def as_example(text: str) -> str:
    """A routing text as a card example: whitespace collapsed, cut at EXAMPLE_CHARS. Two texts are the same
    example when these agree ignoring case (the card validator's test of distinct examples)."""
    return " ".join(text.split())[:EXAMPLE_CHARS]


def example_texts(central: list[Unit], count: int) -> list[str]:
    """Up to `count` distinct routing texts of the most central members."""
    seen, examples = set(), []
    for unit in central:
        text = as_example(unit.routing_text)
        if text.lower() not in seen:
            seen.add(text.lower())
            examples.append(text)
        if len(examples) == count:
            break
    return examples


def build_draft(reply: dict, central: list[Unit], domain: str, taken: set[str], provenance: Provenance,
                n_examples: int) -> Card:
    """The card from the model's reply and the cluster; CardError (naming `draft <id>` and the field) when
    it does not pass the card validator."""
    card_id = unique_id(domain, str(reply.get("name", "")), taken)
    data = {**reply, "id": card_id, "domain": domain, "examples": example_texts(central, n_examples),
            "status": "draft", "provenance": provenance.model_dump()}
    return validate_card(data, f"draft {card_id}")


async def distill(judge: Judge, central: list[Unit], domain: str, taken: set[str], source: str,
                  cluster_size: int, member_ids: list[str], n_prompt: int = 8, n_examples: int = 6,
                  max_tokens: int = 1000, repetition_penalty: float = 1.0) -> Card:
    """Draft one card from a cluster (members ordered most central first). Raises JudgeError or CardError."""
    reply = await judge.generate_json(draft_messages(central[:n_prompt], domain), DRAFT_SCHEMA, max_tokens,
                                      repetition_penalty)
    provenance = Provenance(source=source, cluster_size=cluster_size, member_ids=member_ids,
                            model=judge.model_name, created_at=datetime.now(timezone.utc).replace(microsecond=0))
    return build_draft(reply, central, domain, taken, provenance, n_examples)
