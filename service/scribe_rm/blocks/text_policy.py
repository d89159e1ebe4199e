"""The text policy at the API boundary, and JSON-safe error bodies.

Policy: in every request body, each lone UTF-16 surrogate (U+D800-U+DFFF, which JSON can carry as an
escape but no UTF-8 encoder or tokenizer accepts) and each NUL (U+0000) in any string, dictionary keys
included, becomes U+FFFD REPLACEMENT CHARACTER before validation. Everything else is kept as sent. So a
rollout with a broken character is still scored (on the replaced text) instead of failing its request."""

from __future__ import annotations

import math
import re
from typing import Any

UNENCODABLE = re.compile("[\x00\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def clean_text(text: str) -> str:
    return UNENCODABLE.sub(REPLACEMENT, text) if UNENCODABLE.search(text) else text


def clean_tree(value: Any) -> Any:
    """`clean_text` applied to every string in decoded JSON."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_tree(k): clean_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean_tree(v) for v in value]
    return value


def json_safe(value: Any) -> Any:
    """Decoded JSON that strict JSON can encode: strings cleaned, NaN and infinities written as text
    (an error body must be able to show the offending value)."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # 'nan', 'inf', '-inf'
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {json_safe(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
