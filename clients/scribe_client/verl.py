"""verl: an async `compute_score` for `reward.custom_reward_function` (use the `naive` reward manager).

Every sample returns the same keys (verl takes the key set from sample 0). A failure gives
`score=fallback_score` with `judge_ok=0`, so it is visible and filterable, never silent.

verl calls this per sample and does not say where a training step ends, so the library version is pinned
at the first call and kept until a refresh names the next one (`client.set_next_version`, taken at the next
`client.begin_step()`) or no replica serves it any more (after its grace time): a step mixes versions only
then. The batch-level reward manager in verl_dense.py sees each step's batch and pins per step."""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Dict, Optional

from .adapters import make_item, step_stats
from .client import AsyncScribeClient, ScribeError

KEYS = ("score", "prm_min", "prm_mean", "prm_last", "n_steps", "judge_ok", "latency_ms")


def make_compute_score(client: AsyncScribeClient, *, outcome_fn: Optional[Callable[..., Optional[float]]] = None,
                       fallback_score: float = 0.0, field: str = "reward", **score_options: Any):
    async def compute_score(data_source: str, solution_str: str, ground_truth: Any,
                            extra_info: Optional[Dict[str, Any]] = None, **kwargs: Any) -> Dict[str, float]:
        extra_info = extra_info or {}
        outcome = outcome_fn(solution_str, ground_truth, **extra_info) if outcome_fn else None
        # verl passes the response only: put the question (and any tools, policy) in extra_info
        item = make_item("0", extra_info.get("question", ""), solution_str, outcome, extra_info.get("domain"),
                         tools=extra_info.get("tools"), policy=extra_info.get("policy"))
        started = time.monotonic()
        if client.library_version is None or client.pin.next is not None:
            await client.begin_step()
        try:
            result = await client.score_one(item, **score_options)
        except ScribeError:
            result = {"status": "error"}
        latency_ms = (time.monotonic() - started) * 1000
        ok = result["status"] == "ok"
        return {"score": float(result[field]) if ok else fallback_score, **step_stats(result),
                "n_steps": float(result.get("n_steps", 0)), "judge_ok": float(ok), "latency_ms": latency_ms}

    return compute_score


_default: Optional[Callable] = None


async def compute_score(data_source: str, solution_str: str, ground_truth: Any,
                        extra_info: Optional[Dict[str, Any]] = None, **kwargs: Any) -> Dict[str, float]:
    """Ready-made for verl config (`custom_reward_function.name=compute_score`), configured by SCRIBE_URL."""
    global _default
    if _default is None:
        client = AsyncScribeClient(os.environ.get("SCRIBE_URL", "http://127.0.0.1:8000"),
                                   timeout_s=float(os.environ.get("SCRIBE_TIMEOUT_S", "120")),
                                   api_key=os.environ.get("SCRIBE_API_KEY"))
        _default = make_compute_score(client)
    return await _default(data_source, solution_str, ground_truth, extra_info, **kwargs)
