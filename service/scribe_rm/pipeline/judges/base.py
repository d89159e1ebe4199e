"""The judge interface: chat messages in, log-probabilities of the labels "0".."3" out."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Protocol

LABELS = ("0", "1", "2", "3")


class JudgeError(RuntimeError):
    """The judge could not produce a score (unreachable, bad reply, no label logprobs)."""


class Judge(Protocol):
    model_name: str
    backend: str  # "local", "openai", ...: labels the judge metrics

    async def start(self) -> None:
        """Load or connect. May be slow; the service is not ready until it returns."""

    async def ready(self) -> bool:
        """Whether a call made now is expected to succeed."""

    async def label_logprobs(self, messages: list[dict[str, str]]) -> list[float]:
        """Log-probabilities of the four labels as the next token (-inf where absent). Raises JudgeError."""

    async def generate_json(self, messages: list[dict[str, str]], schema: dict[str, Any], max_tokens: int,
                            repetition_penalty: float = 1.0) -> Any:
        """A reply decoded under `schema` (constrained decoding, greedy), parsed. Raises JudgeError, e.g.
        when the reply is cut at max_tokens before the JSON closes. Used by library induction."""

    async def aclose(self) -> None: ...


def parse_json_reply(text: str, max_tokens: int) -> Any:
    """The JSON a constrained decoder produced. Only truncation can make it invalid; it is not repaired."""
    try:
        return json.loads(text)
    except ValueError as exc:
        raise JudgeError(f"the reply is not complete JSON (cut at max_tokens={max_tokens}?): {text[-200:]!r}") from exc


@dataclass(frozen=True)
class ScoreDistribution:
    probabilities: tuple[float, float, float, float]
    label_mass: float  # total probability on the four labels before renormalizing

    @classmethod
    def from_logprobs(cls, logprobs: list[float]) -> "ScoreDistribution":
        if len(logprobs) != len(LABELS):
            raise JudgeError(f"expected {len(LABELS)} label logprobs, got {len(logprobs)}")
        if any(math.isnan(lp) or lp == math.inf for lp in logprobs):
            raise JudgeError(f"invalid label logprobs {logprobs}")
        top = max(logprobs)
        if top == -math.inf:
            raise JudgeError("the judge gave no probability to any of the labels 0-3")
        weights = [math.exp(lp - top) for lp in logprobs]
        total = sum(weights)
        probabilities = tuple(w / total for w in weights)
        mass = min(1.0, sum(math.exp(lp) for lp in logprobs))
        return cls(probabilities=probabilities, label_mass=mass)  # type: ignore[arg-type]

    @property
    def expected(self) -> float:
        return sum(i * p for i, p in enumerate(self.probabilities))

    @property
    def label(self) -> int:
        return max(range(len(LABELS)), key=lambda i: self.probabilities[i])

    @property
    def confidence(self) -> float:
        return self.probabilities[self.label]
