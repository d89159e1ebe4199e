"""Split a trajectory into steps: given steps, a response cut by a splitter, or chat tool turns."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import regex  # user patterns run with a timeout, so a pathological regex cannot stall the server

from .schemas import Message, ScoreItem, SplitOptions

USER_REGEX_TIMEOUT_S = 1.0
STEP_MARKER = re.compile(r"(?im)^[ \t]*(?:#+[ \t]*)?(?:\*\*)?step[ \t]*\d+[ \t]*(?:\*\*)?[ \t]*[:.)]")
SUBGOAL_TAG = re.compile(r"(?is)<subgoal(?P<attrs>\s[^>]*)?>(?P<body>.*?)</subgoal>")
SUBGOAL_ATTR = re.compile(r"""(?i)\b(?:name|title|desc|description)\s*=\s*["']([^"']*)["']""")


class SegmentationError(ValueError):
    """The trajectory cannot be split as asked (bad pattern, nothing to score)."""


@dataclass(frozen=True)
class Segment:
    text: str
    start: int | None = None
    end: int | None = None
    subgoal: str | None = None
    prototype_id: str | None = None
    message_indices: tuple[int, ...] | None = None
    user_turn: str | None = None  # the latest user message before this step, in multi-turn dialogues
    tool_names: tuple[str, ...] = ()  # the tools this step calls (from messages' tool_calls)

    @property
    def plain_turn(self) -> bool:
        """One assistant message of text alone (no tool calls): it may hold two subgoals (turn_split.py)."""
        return self.message_indices is not None and len(self.message_indices) == 1 and not self.tool_names


@dataclass(frozen=True)
class Trajectory:
    question: str
    segments: list[Segment]
    policy: str = ""  # the rules the agent follows (its system prompt)
    tools: dict[str, str] = field(default_factory=dict)  # tool name -> its schema as compact JSON

    def tools_called(self, segment: Segment) -> list[str]:
        """The tools a step calls: its tool_calls, else the known tool names written as calls in its text."""
        if segment.tool_names:
            return [name for name in dict.fromkeys(segment.tool_names) if name in self.tools]
        return [name for name in self.tools if re.search(rf"(?<![\w.]){re.escape(name)}\s*\(", segment.text)]


def _trimmed(text: str, start: int, end: int) -> tuple[int, int] | None:
    """Shrink [start, end) to exclude surrounding whitespace; None when nothing is left."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if end > start else None


def _spans_between(text: str, cuts: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The pieces of text between separator matches, trimmed, empties dropped."""
    spans, position = [], 0
    for sep_start, sep_end in cuts:
        spans.append((position, sep_start))
        position = sep_end
    spans.append((position, len(text)))
    return [s for s in (_trimmed(text, a, b) for a, b in spans) if s]


def _spans_from_starts(text: str, starts: list[int]) -> list[tuple[int, int]]:
    """Each piece runs from one start to the next; text before the first start is a step too."""
    bounds = ([0] if not starts or starts[0] > 0 else []) + starts + [len(text)]
    return [s for s in (_trimmed(text, a, b) for a, b in zip(bounds, bounds[1:])) if s]


def split_response(text: str, options: SplitOptions) -> list[Segment]:
    mode = options.mode
    if mode == "llm":  # the rule-based split first; the scorer replaces it with the judge model's if it passes
        mode = "auto"
    if mode == "auto":
        if SUBGOAL_TAG.search(text):
            mode = "subgoal_tags"
        elif len(STEP_MARKER.findall(text)) >= 2:
            mode = "step_markers"
        else:
            mode = "blank_lines"

    if mode == "subgoal_tags":
        segments = []
        for match in SUBGOAL_TAG.finditer(text):
            span = _trimmed(text, match.start("body"), match.end("body"))
            if span:
                attr = SUBGOAL_ATTR.search(match.group("attrs") or "")
                segments.append(Segment(text[span[0]:span[1]], span[0], span[1], subgoal=attr.group(1) if attr else None))
        return segments

    if mode == "step_markers":
        spans = _spans_from_starts(text, [m.start() for m in STEP_MARKER.finditer(text)])
    elif mode == "lines":
        spans = _spans_between(text, [(m.start(), m.end()) for m in re.finditer(r"\n", text)])
    elif mode == "blank_lines":
        spans = _spans_between(text, [(m.start(), m.end()) for m in re.finditer(r"\n[ \t]*\n\s*", text)])
    else:  # regex: the pattern matches the separators
        spans = _spans_between(text, _user_separators(options.pattern or "", text))
    return [Segment(text[a:b], a, b) for a, b in spans]


def compile_user_pattern(pattern: str) -> regex.Pattern:
    try:
        compiled = regex.compile(pattern)
    except regex.error as exc:
        raise SegmentationError(f"split.pattern is not a valid regex: {exc}") from exc
    if compiled.search(""):
        raise SegmentationError("split.pattern must not match the empty string")
    return compiled


def _user_separators(pattern: str, text: str) -> list[tuple[int, int]]:
    compiled = compile_user_pattern(pattern)
    try:
        return [(m.start(), m.end()) for m in compiled.finditer(text, timeout=USER_REGEX_TIMEOUT_S)]
    except TimeoutError as exc:
        raise SegmentationError(f"split.pattern took longer than {USER_REGEX_TIMEOUT_S}s on this response") from exc


def _render_call(call) -> str:
    args = call.function.arguments
    if isinstance(args, dict):
        args = json.dumps(args, ensure_ascii=False, sort_keys=True)
    return f"Tool call: {call.function.name}({args or ''})"


def split_messages(messages: list[Message]) -> tuple[str, list[Segment]]:
    """Tool turns: each assistant message, with the tool results answering it, is one step.
    Returns the first user message (the task) and the steps."""
    question = ""
    latest_user: str | None = None
    segments: list[Segment] = []
    lines: list[str] = []
    indices: list[int] = []
    names: list[str] = []  # tools called in the open step
    user_for_step: str | None = None

    def close_step() -> None:
        if lines:
            segments.append(Segment("\n".join(lines), message_indices=tuple(indices), user_turn=user_for_step,
                                    tool_names=tuple(names)))
        lines.clear()
        indices.clear()
        names.clear()

    for i, message in enumerate(messages):
        if message.role == "user":
            close_step()
            if not question:
                question = message.text()
            latest_user = message.text()
        elif message.role == "assistant":
            close_step()
            user_for_step = latest_user if latest_user != question else None
            if message.text().strip():
                lines.append(message.text().strip())
            lines.extend(_render_call(call) for call in message.tool_calls or [])
            names.extend(call.function.name for call in message.tool_calls or [])
            indices.append(i)
        elif message.role == "tool" and indices:
            label = f" ({message.name})" if message.name else ""
            lines.append(f"Tool result{label}: {message.text().strip()}")
            indices.append(i)
    close_step()
    return question, [s for s in segments if s.text.strip()]


def policy_of(item: ScoreItem) -> str:
    if item.policy is not None:
        return item.policy
    system = [m.text().strip() for m in item.messages or [] if m.role in ("system", "developer")]
    return "\n\n".join(text for text in system if text)


def tools_of(item: ScoreItem) -> dict[str, str]:
    return {tool.function.name: json.dumps(tool.function.model_dump(exclude_none=True), ensure_ascii=False,
                                           separators=(",", ":")) for tool in item.tools or []}


def segment_item(item: ScoreItem, options: SplitOptions) -> Trajectory:
    context = dict(policy=policy_of(item), tools=tools_of(item))
    if item.steps is not None:
        segments = [Segment(s.text, subgoal=s.subgoal, prototype_id=s.prototype_id) for s in item.steps]
        return Trajectory(item.question, segments, **context)
    if item.messages is not None:
        first_user, segments = split_messages(item.messages)
        return Trajectory(item.question or first_user, segments, **context)
    return Trajectory(item.question, split_response(item.response or "", options), **context)
