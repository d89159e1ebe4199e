"""Request limits, checked in one place for every entry point (/score, /route, trainer routes)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .errors import InvalidRequest


@dataclass(frozen=True)
class RequestLimits:
    max_items: int = 512
    max_steps_per_item: int = 64
    max_step_chars: int = 20_000
    max_route_texts: int = 1024

    def check_items(self, count: int) -> None:
        if count > self.max_items:
            raise InvalidRequest(f"too many items: {count} > max_items={self.max_items}")

    def check_steps(self, item_id: str, texts: Sequence[str]) -> None:
        if len(texts) > self.max_steps_per_item:
            raise InvalidRequest(f"item '{item_id}' has {len(texts)} steps > max_steps_per_item={self.max_steps_per_item}")
        for index, text in enumerate(texts):
            if len(text) > self.max_step_chars:
                raise InvalidRequest(f"item '{item_id}' step {index} has {len(text)} characters "
                                     f"> max_step_chars={self.max_step_chars}")

    def check_route_texts(self, texts: Sequence[str]) -> None:
        if len(texts) > self.max_route_texts:
            raise InvalidRequest(f"too many items: {len(texts)} > max_route_texts={self.max_route_texts}")
        for index, text in enumerate(texts):
            if len(text) > self.max_step_chars:
                raise InvalidRequest(f"item {index} has {len(text)} characters > max_step_chars={self.max_step_chars}")
