"""A bounded LRU of finished judgements, keyed by everything that determines one."""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from typing import Generic, TypeVar

V = TypeVar("V")


def judgement_key(library_version: str, card_id: str, judge_model: str, messages: list[dict[str, str]]) -> str:
    payload = json.dumps([library_version, card_id, judge_model, messages], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


class LRUCache(Generic[V]):
    def __init__(self, capacity: int):
        self.capacity = capacity
        self._data: OrderedDict[str, V] = OrderedDict()

    def get(self, key: str) -> V | None:
        if key in self._data:
            self._data.move_to_end(key)
            return self._data[key]
        return None

    def put(self, key: str, value: V) -> None:
        if self.capacity <= 0:
            return
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.capacity:
            self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)
