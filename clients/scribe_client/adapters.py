"""What the trainer adapters share: turning trainer inputs into SCRIBE items and results into numbers."""

from __future__ import annotations

from typing import Any, Dict, Optional


def as_text(value: Any, role: Optional[str] = None) -> str:
    """A string from a plain string, a message dict, or a chat message list (last message of `role`)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        content = value.get("content") or ""
        return content if isinstance(content, str) else "".join(p.get("text", "") for p in content)
    if isinstance(value, (list, tuple)):
        messages = [m for m in value if isinstance(m, dict) and (role is None or m.get("role") == role)]
        return as_text(messages[-1]) if messages else ""
    return "" if value is None else str(value)


def make_item(item_id: str, question: Any, response: Any, outcome: Optional[float] = None,
              domain: Optional[str] = None) -> Dict[str, Any]:
    if isinstance(response, (list, tuple)) and response and isinstance(response[0], dict) and any(
            m.get("tool_calls") for m in response):
        trajectory: Dict[str, Any] = {"messages": [{"role": "user", "content": as_text(question, "user")}, *response]}
    else:
        trajectory = {"response": as_text(response, "assistant"), "question": as_text(question, "user")}
    item = {"id": item_id, **trajectory}
    if outcome is not None:
        item["outcome"] = float(outcome)
    if domain:
        item["domain"] = domain
    return item


def step_stats(result: Dict[str, Any]) -> Dict[str, float]:
    """min/mean/last of the normalized step scores of one result (zeros when there are none)."""
    scores = [s["score_normalized"] for s in result.get("steps", []) if s.get("score_normalized") is not None]
    if not scores:
        return {"prm_min": 0.0, "prm_mean": 0.0, "prm_last": 0.0}
    return {"prm_min": min(scores), "prm_mean": sum(scores) / len(scores), "prm_last": scores[-1]}
