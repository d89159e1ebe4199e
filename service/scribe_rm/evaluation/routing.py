"""Routing accuracy on labelled held-out data: JSONL of subgoal phrasings (text, expected, optional domain), each
a one-step item, or of /score items (steps, response or messages) whose metadata.expected lists each step's card.
Without --use-domain every item's scope is chosen from its steps, as for an item sent without a domain."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..blocks.resources import heldout_set
from ..pipeline.router import Router, RoutingItem
from ..pipeline.schemas import ScoreItem, SplitOptions
from ..pipeline.segment import segment_item
from ..pipeline.turn_split import split_turns

DEFAULT_SET = heldout_set("routing_heldout.jsonl")
AGENT_SET = heldout_set("routing_heldout_agent.jsonl")  # policy-bound dialogue steps
# 47 more of them from eight other services (bank, insurer, energy, food delivery, hotel, streaming, pharmacy,
# broadband), written after the routing it measures was chosen and never used to choose anything
AGENT_SET_2 = heldout_set("routing_heldout_agent2.jsonl")
DIALOGUE_SET = heldout_set("agent_dialogues_heldout.jsonl")  # whole agent dialogues of kinds the cards lack


@dataclass(frozen=True)
class LabelledItem:
    texts: list[str]  # each step's routing text
    expected: list[str]  # each step's card
    domain: str | None = None
    plain_turns: tuple[bool, ...] = ()  # which steps are chat turns of text alone (they may split in two)

    def is_plain(self, j: int) -> bool:
        return j < len(self.plain_turns) and self.plain_turns[j]


@dataclass
class RoutingReport:
    n: int
    top1: float
    top3: float
    fallback_rate: float
    confusions: Counter = field(default_factory=Counter)  # (expected, got) -> count
    scopes: Counter = field(default_factory=Counter)  # the scope each item was routed in
    last_step_top1: float | None = None  # items of several steps: their last step (a dialogue's sign-off)
    split_steps: int = 0  # turns scored as two steps (turn_split.py); right when either part has the card

    def as_dict(self) -> dict:
        return {"n": self.n, "top1": round(self.top1, 4), "top3": round(self.top3, 4),
                "fallback_rate": round(self.fallback_rate, 4), "scopes": dict(self.scopes),
                "last_step_top1": None if self.last_step_top1 is None else round(self.last_step_top1, 4),
                "split_steps": self.split_steps,
                "confusions": [{"expected": e, "got": g, "count": c} for (e, g), c in self.confusions.most_common()]}


def load_labelled(path: Path) -> list[dict]:
    """Rows of a phrasing file (text, expected[, domain])."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for i, row in enumerate(rows):
        if not {"text", "expected"} <= row.keys():
            raise ValueError(f"{path}:{i + 1}: each line needs 'text' and 'expected'")
    return rows


def load_cases(path: Path) -> list[LabelledItem]:
    """Either kind of file as labelled items."""
    cases = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        if not line.strip():
            continue
        row = json.loads(line)
        if "text" in row:
            cases.append(as_item(row))
            continue
        item = ScoreItem.model_validate(row)
        segments = segment_item(item, SplitOptions()).segments
        expected = item.metadata.get("expected")
        if not isinstance(expected, list) or len(expected) != len(segments):
            raise ValueError(f"{path}:{i + 1}: metadata.expected must name the card of each of its {len(segments)} steps")
        cases.append(LabelledItem([s.subgoal or s.text for s in segments], expected, item.domain,
                                  tuple(s.plain_turn for s in segments)))
    return cases


def as_item(row: dict | LabelledItem) -> LabelledItem:
    if isinstance(row, LabelledItem):
        return row
    if not {"text", "expected"} <= row.keys():
        raise ValueError(f"a labelled phrasing needs 'text' and 'expected': {row}")
    return LabelledItem([row["text"]], [row["expected"]], row.get("domain"))


async def evaluate_routing(router: Router, rows: list[dict] | list[LabelledItem],
                           use_domain: bool = False) -> RoutingReport:
    items = [as_item(row) for row in rows]
    routed = await router.route_items([RoutingItem(item.texts, item.domain if use_domain else None) for item in items])
    plain = {(i, j): (text, result.scope) for i, (item, result) in enumerate(zip(items, routed))
             for j, text in enumerate(item.texts) if item.is_plain(j)}
    splits = await split_turns(router, plain)  # as /score splits them
    top1 = top3 = fallbacks = n = 0
    last_steps: list[bool] = []
    confusions: Counter = Counter()
    for i, (item, result) in enumerate(zip(items, routed)):
        for j, (expected, route) in enumerate(zip(item.expected, result.routes)):
            n += 1
            split = splits.get((i, j))
            if split is not None:  # judged as two steps: the part with the expected card is the one that counts
                route = split.tail if split.tail.card.id == expected else split.head
            fallbacks += route.fallback
            right = route.card.id == expected
            if len(item.texts) > 1 and j == len(item.texts) - 1:
                last_steps.append(right)
            if right:
                top1 += 1
                top3 += 1
                continue
            confusions[(expected, route.card.id)] += 1
            # a wrongly routed fallback phrase cannot be rescued by alternatives: the fallback is never ranked
            top3 += any(c.card_id == expected for c in route.alternatives[:3])
    return RoutingReport(n=n, top1=top1 / n, top3=top3 / n, fallback_rate=fallbacks / n, confusions=confusions,
                         scopes=Counter(result.scope for result in routed),
                         last_step_top1=sum(last_steps) / len(last_steps) if last_steps else None,
                         split_steps=len(splits))
