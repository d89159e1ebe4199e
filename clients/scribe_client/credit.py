"""Step-level credit: from SCRIBE-RM's per-step scores to per-token rewards and advantages.

The service scores each step and gives its character span in the response (`start`, `end`) or, for chat
items, the messages it is made of (`message_indices`). Here those are placed on the policy's tokens:

- `decoded_token_bounds`: the characters each generated token covers in the decoded text (decoded as the
  trainer decodes it: special tokens skipped), so spans map onto exactly the tokens the policy produced. A
  truncated completion simply has fewer characters; a step that starts past its end maps to no token. For text
  a tokenizer encodes (a rendered chat), its offset mapping gives the same bounds.
- `message_char_spans`: for chat items, where each message sits in the text a chat template rendered.
- `step_token_spans`: character spans to (first, last) token indices, None for a step that maps to no token
  (callers report those; they are never dropped silently).
- `process_advantages`: DeepSeekMath's process supervision (Shao et al. 2024, 4.1.3): every step reward of a
  group is normalized by the group's mean and standard deviation, and each token's advantage is the sum of the
  normalized rewards of the steps that end at or after it.
- `outcome_advantages`: the outcome reward normalized within the group (added at the final step).
- `dense_rewards`: a reward per token for estimators that take token rewards (verl's GAE, REINFORCE++): each
  step's score, centered on the response's mean step score, at its last token, and the outcome with that mean
  at the last valid token, so that they sum to the scalar reward (`w_outcome * outcome + w_process * mean`).

Plain Python: the client's only dependency is httpx; trainers turn the lists into tensors."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

Span = Tuple[int, int]  # [start, end) in characters
TokenSpan = Tuple[int, int]  # first and last token index, inclusive
EPS = 1e-6


def decoded_token_bounds(decode: Callable[[Sequence[int]], str], token_ids: Sequence[int]) -> List[Span]:
    """The characters of the decoded text that each token adds. Decoding prefixes is the only way to agree with
    the trainer's own decode (byte-level BPE merges, SentencePiece spaces, skipped special tokens); a prefix
    whose last token ends inside a multi-byte character can decode shorter, so the ends never go back."""
    bounds, longest = [], 0
    for k in range(len(token_ids)):
        end = max(longest, len(decode(token_ids[: k + 1])))
        bounds.append((longest, end))
        longest = end
    return bounds


def step_token_spans(bounds: Sequence[Span], spans: Sequence[Optional[Span]]) -> List[Optional[TokenSpan]]:
    """Each character span's tokens: those whose characters overlap it. None for a span that no token covers
    (past the end of a truncated completion, on the prompt, or not given). A token with no characters (a
    special token) belongs to no step."""
    result: List[Optional[TokenSpan]] = []
    for span in spans:
        if span is None:
            result.append(None)
            continue
        start, end = span
        covering = [k for k, (a, b) in enumerate(bounds) if b > a and a < end and b > start]
        result.append((covering[0], covering[-1]) if covering else None)
    return result


def message_char_spans(rendered: str, messages: Sequence[Dict[str, Any]]) -> List[Optional[Span]]:
    """Where each message sits in `rendered` (what a chat template made of them): its content, found in order,
    and its tool calls (function names and argument values, however the template wrote them), found between its
    content and the next message's. None for a message none of whose pieces is found."""
    contents: List[Optional[Span]] = []
    cursor = 0
    for message in messages:
        text = _content(message)
        at = rendered.find(text, cursor) if text else -1
        contents.append((at, at + len(text)) if at >= 0 else None)
        if at >= 0:
            cursor = at + len(text)
    spans: List[Optional[Span]] = []
    previous_end = 0
    for i, message in enumerate(messages):
        limit = next((c[0] for c in contents[i + 1:] if c is not None), len(rendered))
        found = [contents[i]] if contents[i] is not None else []
        cursor = contents[i][1] if contents[i] is not None else previous_end
        for piece in _call_pieces(message):
            at = rendered.find(piece, cursor, limit)
            if at >= 0:
                found.append((at, at + len(piece)))
                cursor = at + len(piece)
        spans.append((min(a for a, _ in found), max(b for _, b in found)) if found else None)
        previous_end = spans[-1][1] if spans[-1] is not None else previous_end
    return spans


def _content(message: Dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content.strip() if isinstance(content, str) else ""


def _call_pieces(message: Dict[str, Any]) -> List[str]:
    pieces = []
    for call in message.get("tool_calls") or []:
        function = call.get("function", {})
        pieces.append(str(function.get("name", "")))
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except ValueError:
                arguments = {"raw": arguments}
        pieces += [value if isinstance(value, str) else json.dumps(value) for value in (arguments or {}).values()]
    return [piece for piece in pieces if piece]


def step_char_spans(steps: Sequence[Dict[str, Any]], message_spans: Optional[Sequence[Optional[Span]]] = None
                    ) -> List[Optional[Span]]:
    """The character span of each scored step: its `start`/`end` in the response, the union of its messages'
    spans, or for part of one message (a turn scored as two steps) its `start`/`end` within that message."""
    spans: List[Optional[Span]] = []
    for step in steps:
        has_offsets = step.get("start") is not None and step.get("end") is not None
        if has_offsets and step.get("message_indices"):
            index = step["message_indices"][0]
            located = message_spans[index] if message_spans is not None and index < len(message_spans) else None
            spans.append((located[0] + int(step["start"]), located[0] + int(step["end"])) if located else None)
        elif has_offsets:
            spans.append((int(step["start"]), int(step["end"])))
        elif step.get("message_indices") and message_spans is not None:
            located = [message_spans[i] for i in step["message_indices"] if i < len(message_spans)]
            located = [s for s in located if s is not None]
            spans.append((min(a for a, _ in located), max(b for _, b in located)) if located else None)
        else:
            spans.append(None)
    return spans


@dataclass
class ScoredOutput:
    """One completion of a group: its scored steps on its tokens."""
    length: int  # tokens of the completion (valid, not padding)
    step_rewards: List[float] = field(default_factory=list)  # the steps that map onto tokens
    step_ends: List[int] = field(default_factory=list)  # their last token's index
    outcome: Optional[float] = None
    unmapped_steps: int = 0  # scored steps that map to no token (reported by the caller)
    scored: bool = True  # False: the service gave no step scores (failed item): advantage 0


def _mean_std(values: Sequence[float]) -> Tuple[float, float]:
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def process_advantages(group: Sequence[ScoredOutput]) -> List[List[float]]:
    """DeepSeekMath process supervision: per token, the sum of the group-normalized rewards of the steps that end
    at or after it. A group whose step rewards are all equal gets zero; unscored outputs get zero."""
    rewards = [r for output in group if output.scored for r in output.step_rewards]
    if not rewards:
        return [[0.0] * output.length for output in group]
    mean, std = _mean_std(rewards)
    advantages = []
    for output in group:
        token = [0.0] * output.length
        if output.scored:
            for reward, end in zip(output.step_rewards, output.step_ends):
                normalized = (reward - mean) / (std + EPS) if std > 0 else 0.0
                for t in range(min(end, output.length - 1) + 1):
                    token[t] += normalized
        advantages.append(token)
    return advantages


def outcome_advantages(group: Sequence[ScoredOutput]) -> List[float]:
    """Each output's outcome reward normalized within the group (0 where it has none or the group agrees)."""
    outcomes = [o.outcome for o in group if o.scored and o.outcome is not None]
    if len(outcomes) < 2:
        return [0.0] * len(group)
    mean, std = _mean_std(outcomes)
    return [(o.outcome - mean) / (std + EPS) if o.scored and o.outcome is not None and std > 0 else 0.0
            for o in group]


def group_token_advantages(group: Sequence[ScoredOutput], mode: str, w_outcome: float = 0.7,
                           w_process: float = 0.3) -> List[List[float]]:
    """Per-token advantages of one GRPO group. `process`: DeepSeekMath's process supervision; `process+outcome`:
    w_process times that plus w_outcome times the group-normalized outcome, which sits at the final step and so
    reaches every token."""
    process = process_advantages(group)
    if mode == "process":
        return process
    if mode != "process+outcome":
        raise ValueError(f"per-token credit modes are process and process+outcome, not {mode!r}")
    outcome = outcome_advantages(group)
    return [[w_process * a + w_outcome * o for a in tokens] for tokens, o in zip(process, outcome)]


def dense_rewards(length: int, step_scores: Sequence[float], step_ends: Sequence[Optional[int]],
                  outcome: Optional[float], w_outcome: float = 0.7, w_process: float = 0.3) -> List[float]:
    """A reward per token: w_process * (score - mean score) at each step's last token, and w_outcome * outcome +
    w_process * mean at the last token, so that they sum to the service's scalar reward (without an outcome:
    the mean step score, w_process taken as 1). Centering matters for estimators that sum rewards to go (GAE,
    REINFORCE++): the return of a step's tokens then exceeds the next step's by w_process * (score - mean), so a
    step scored below the response's average lowers its tokens' return wherever it stands, while raw scores would
    give a bad step followed by a good one the good one's return. Steps that map to no token (end None) add
    nothing (the caller counts them)."""
    rewards = [0.0] * length
    if length == 0:
        return rewards
    weight = w_process if outcome is not None else 1.0
    mean = sum(step_scores) / len(step_scores) if step_scores else 0.0
    for score, end in zip(step_scores, step_ends):
        if end is not None:
            rewards[min(end, length - 1)] += weight * (score - mean)
    rewards[length - 1] += weight * mean + (w_outcome * outcome if outcome is not None else 0.0)
    return rewards
