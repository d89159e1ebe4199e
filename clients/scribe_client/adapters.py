"""What the trainer adapters share: turning trainer inputs into SCRIBE items and results into numbers."""

from __future__ import annotations

from typing import Any, Dict, List, Optional


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


def _messages(value: Any) -> List[Dict[str, Any]]:
    """A chat prompt as messages: the list itself, or one user message holding the text."""
    if isinstance(value, (list, tuple)) and all(isinstance(m, dict) and "role" in m for m in value):
        return list(value)
    return [{"role": "user", "content": as_text(value)}]


def make_item(item_id: str, question: Any, response: Any, outcome: Optional[float] = None,
              domain: Optional[str] = None, tools: Optional[List[Dict[str, Any]]] = None,
              policy: Optional[str] = None) -> Dict[str, Any]:
    """A /score item. A conversational prompt keeps its system message (the judge sees it as the agent's
    policy) and `tools` (OpenAI function schemas) lets the judge see the schema of each tool a step calls."""
    prompt = _messages(question)
    if isinstance(response, (list, tuple)) and response and isinstance(response[0], dict) and any(
            m.get("tool_calls") for m in response):
        trajectory: Dict[str, Any] = {"messages": [*prompt, *response]}
    else:
        trajectory = {"response": as_text(response, "assistant"), "question": as_text(question, "user")}
        system = "\n\n".join(as_text(m) for m in prompt if m.get("role") in ("system", "developer"))
        policy = policy if policy is not None else (system or None)
    item = {"id": item_id, **trajectory}
    if outcome is not None:
        item["outcome"] = float(outcome)
    if domain:
        item["domain"] = domain
    if tools:
        item["tools"] = list(tools)
    if policy is not None:
        item["policy"] = policy
    return item


def step_stats(result: Dict[str, Any]) -> Dict[str, float]:
    """min/mean/last of the normalized step scores of one result (zeros when there are none)."""
    scores = [s["score_normalized"] for s in result.get("steps", []) if s.get("score_normalized") is not None]
    if not scores:
        return {"prm_min": 0.0, "prm_mean": 0.0, "prm_last": 0.0}
    return {"prm_min": min(scores), "prm_mean": sum(scores) / len(scores), "prm_last": scores[-1]}
