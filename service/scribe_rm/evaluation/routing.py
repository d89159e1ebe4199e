"""Routing accuracy on a labelled set of subgoal phrasings (JSONL: text, expected, optional domain)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..blocks.resources import heldout_set
from ..pipeline.router import Router

DEFAULT_SET = heldout_set("routing_heldout.jsonl")
AGENT_SET = heldout_set("routing_heldout_agent.jsonl")  # policy-bound dialogue steps


@dataclass
class RoutingReport:
    n: int
    top1: float
    top3: float
    fallback_rate: float
    confusions: Counter = field(default_factory=Counter)  # (expected, got) -> count

    def as_dict(self) -> dict:
        return {"n": self.n, "top1": round(self.top1, 4), "top3": round(self.top3, 4),
                "fallback_rate": round(self.fallback_rate, 4),
                "confusions": [{"expected": e, "got": g, "count": c} for (e, g), c in self.confusions.most_common()]}


def load_labelled(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for i, row in enumerate(rows):
        if not {"text", "expected"} <= row.keys():
            raise ValueError(f"{path}:{i + 1}: each line needs 'text' and 'expected'")
    return rows


async def evaluate_routing(router: Router, rows: list[dict], use_domain: bool = False) -> RoutingReport:
    domains = [row.get("domain") if use_domain else None for row in rows]
    routes = await router.route([row["text"] for row in rows], domains)
    top1 = top3 = fallbacks = 0
    confusions: Counter = Counter()
    for row, route in zip(rows, routes):
        expected = row["expected"]
        fallbacks += route.fallback
        if route.card.id == expected:
            top1 += 1
            top3 += 1
            continue
        confusions[(expected, route.card.id)] += 1
        # a wrongly routed fallback phrase cannot be rescued by alternatives: the fallback is never ranked
        top3 += any(c.card_id == expected for c in route.alternatives[:3])
    n = len(rows)
    return RoutingReport(n=n, top1=top1 / n, top3=top3 / n, fallback_rate=fallbacks / n, confusions=confusions)
