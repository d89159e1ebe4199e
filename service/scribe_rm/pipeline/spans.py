"""The LLM span splitter: the judge model cuts a free-form response into verbatim consecutive spans, each with
a one-line subgoal, as JSON under a schema (constrained decoding on either backend). A reply is used only if
its spans are verbatim, in order and cover the response. Split mode `llm` on /score and library induction's
`--decompose llm` both use it."""

from __future__ import annotations

import json
import re

from .judges import Judge
from .segment import Segment

SPAN_SCHEMA = {
    "type": "object",
    "properties": {"spans": {"type": "array", "minItems": 1, "maxItems": 16, "items": {
        "type": "object",
        "properties": {"subgoal": {"type": "string", "minLength": 3, "maxLength": 120},
                       "text": {"type": "string", "minLength": 1}},
        "required": ["subgoal", "text"], "additionalProperties": False}}},
    "required": ["spans"], "additionalProperties": False,
}
DECOMPOSE_INSTRUCTIONS = (
    "Split the assistant's response into its consecutive steps. Copy each step's text exactly, character for "
    "character, without changing, dropping or reordering anything; together the steps must cover the whole "
    "response. For each step write a one-line subgoal: what the step is meant to achieve, in general terms "
    "(no numbers or answers). Reply with JSON only: {\"spans\": [{\"subgoal\": ..., \"text\": ...}, ...]}."
)


class SpanError(ValueError):
    """A decomposition that is not verbatim, out of order, or leaves part of the response out."""


def verbatim_segments(response: str, spans: list[dict]) -> list[Segment]:
    """The spans as segments with offsets, if each is a verbatim piece of the response, in order, with only
    whitespace between and around them. Raises SpanError naming the first span that breaks this."""
    position, segments = 0, []
    for k, span in enumerate(spans):
        text = span["text"].strip()
        if not text:
            raise SpanError(f"span {k} is empty")
        start = response.find(text, position)
        if start < 0:
            raise SpanError(f"span {k} is not a verbatim piece of the response after span {k - 1}: {text[:60]!r}")
        if response[position:start].strip():
            raise SpanError(f"span {k} skips text before it: {response[position:start].strip()[:60]!r}")
        end = start + len(text)
        segments.append(Segment(text, start, end, subgoal=span["subgoal"].strip() or None))
        position = end
    if response[position:].strip():
        raise SpanError(f"the spans leave the end of the response out: {response[position:].strip()[:60]!r}")
    return segments


def decompose_messages(response: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": DECOMPOSE_INSTRUCTIONS}, {"role": "user", "content": response}]


def span_schema(response: str) -> dict:
    """SPAN_SCHEMA bounded by the response, so that a model that rambles still closes the JSON: each span
    no longer than the response, and no more spans than the response has lines and sentence ends (steps
    end there; a finer cut is not wanted)."""
    schema = json.loads(json.dumps(SPAN_SCHEMA))
    spans = schema["properties"]["spans"]
    spans["items"]["properties"]["text"]["maxLength"] = max(1, len(response))
    spans["maxItems"] = max(1, min(spans["maxItems"], len(re.findall(r"[.!?](?:\s|$)|\n+", response.strip())) + 1))
    return schema


async def llm_segments(judge: Judge, response: str, max_tokens: int) -> list[Segment]:
    """The judge model's verbatim decomposition. Raises SpanError or JudgeError when it cannot be used."""
    reply = await judge.generate_json(decompose_messages(response), span_schema(response), max_tokens)
    return verbatim_segments(response, reply["spans"])
