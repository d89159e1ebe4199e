"""Decompose trajectories into induction units: (item, step, subgoal) with the step's text.

Rule-based: the scoring pipeline's own segmentation. LLM: the pipeline's span splitter (pipeline/spans.py) cuts
each free-form response; a reply that fails its verbatim check falls back to the rule-based split and the miss
is counted."""

from __future__ import annotations

from dataclasses import dataclass

from ..pipeline.judges import Judge, JudgeError
from ..pipeline.schemas import ScoreItem, SplitOptions
from ..pipeline.segment import segment_item
from ..pipeline.spans import SpanError, llm_segments


@dataclass(frozen=True)
class Unit:
    """One step to induce from."""
    id: str  # "<item id>#<step index>"
    text: str
    subgoal: str | None
    domain: str | None
    label: str | None = None  # the skill the step was written to exercise (metadata.skills), for evaluation only

    @property
    def routing_text(self) -> str:
        return self.subgoal or self.text

    @property
    def item_id(self) -> str:
        return self.id.rsplit("#", 1)[0]


@dataclass
class DecomposeCounts:
    items: int = 0
    llm_used: int = 0  # responses cut by the model
    llm_rejected: int = 0  # model replies that failed the verbatim check or the call: rule-based split used
    rejections: list[str] | None = None


async def decompose(items: list[ScoreItem], mode: str, judge: Judge | None, split: SplitOptions,
                    domain: str | None, max_tokens: int = 1024) -> tuple[list[Unit], DecomposeCounts]:
    """Units of every item, in order. `mode` "rule" uses `split`; "llm" asks the judge for free-form responses."""
    units: list[Unit] = []
    counts = DecomposeCounts(items=len(items), rejections=[])
    for item in items:
        segments = segment_item(item, split).segments
        if mode == "llm" and item.response is not None and judge is not None:
            try:
                segments = await llm_segments(judge, item.response, max_tokens)
                counts.llm_used += 1
            except (SpanError, JudgeError, KeyError, TypeError) as exc:
                counts.llm_rejected += 1
                counts.rejections.append(f"{item.id}: {exc}")
        labels = item.metadata.get("skills")
        if not isinstance(labels, list) or len(labels) != len(segments):
            labels = [None] * len(segments)  # labels name the steps of the item as written
        for j, (segment, label) in enumerate(zip(segments, labels)):
            units.append(Unit(f"{item.id}#{j}", segment.text, segment.subgoal, domain or item.domain,
                              None if label is None else str(label)))
    return units, counts
