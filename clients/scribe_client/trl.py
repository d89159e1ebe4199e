"""TRL: an async reward function for `GRPOTrainer(reward_funcs=[...])` (TRL >= 0.27 runs async ones).

Failed items give None, which TRL treats as "no reward from this function for this sample". TRL calls it
once per training step (each rank with its batch): each call is a step boundary for the library version pin,
so the whole batch is scored with one library version."""

from __future__ import annotations

import logging
from typing import Any, Callable, List, Optional

from .adapters import make_item, step_stats
from .client import AsyncScribeClient, ScribeError

log = logging.getLogger(__name__)
OutcomeFn = Callable[..., Optional[float]]


def make_trl_reward(client: AsyncScribeClient, *, outcome_fn: Optional[OutcomeFn] = None,
                    field: str = "reward", name: str = "scribe", domain: Optional[str] = None,
                    raise_on_error: bool = False, on_results: Optional[Callable[..., None]] = None,
                    **score_options: Any):
    """`outcome_fn(prompt, completion, **row)` may return the outcome reward (e.g. 1.0 if the final answer
    is right). `field` picks "reward" (outcome mixed in) or "process_reward". `on_results(results, **kwargs)`
    sees every batch's full results (per-step scores, prototypes) for logging. `score_options` go to
    /score (aggregation, weights, split)."""

    async def reward(prompts: List[Any], completions: List[Any], **kwargs: Any) -> List[Optional[float]]:
        version = await client.begin_step()  # one library version for this step's batch
        rows = [{k: v[i] for k, v in kwargs.items() if isinstance(v, list) and len(v) == len(prompts)}
                for i in range(len(prompts))]
        outcomes = [outcome_fn(p, c, **row) if outcome_fn else None for p, c, row in zip(prompts, completions, rows)]
        items = [make_item(str(i), p, c, o, domain, tools=row.get("tools"))  # a dataset's `tools` column
                 for i, (p, c, o, row) in enumerate(zip(prompts, completions, outcomes, rows))]
        try:
            results = await client.score_batch(items, **score_options)
        except ScribeError as exc:
            if raise_on_error:
                raise
            log.warning("SCRIBE-RM call failed, no process reward for %d samples: %s", len(items), exc)
            return [None] * len(items)
        values = [r[field] if r["status"] == "ok" else None for r in results]
        _log_stats(kwargs.get("log_metric"), results)
        if client.library_version != version:
            log.warning("SCRIBE-RM library moved from %s to %s during this step (the old one was gone)", version,
                        client.library_version)
        log.info("SCRIBE-RM batch scored with library %s", client.library_version)
        if on_results is not None:
            on_results(results, library_version=client.library_version, **kwargs)
        return values

    reward.__name__ = name  # TRL names the logged metric after the function
    return reward


def _log_stats(log_metric: Any, results: List[dict]) -> None:
    failed = sum(r["status"] != "ok" for r in results)
    ok = [step_stats(r) for r in results if r["status"] == "ok"]
    stats = {"scribe/failed_fraction": failed / max(1, len(results))}
    if ok:
        stats["scribe/step_mean"] = sum(s["prm_mean"] for s in ok) / len(ok)
        stats["scribe/step_min"] = sum(s["prm_min"] for s in ok) / len(ok)
    if callable(log_metric):
        for key, value in stats.items():
            log_metric(key, value)
    else:
        log.info("SCRIBE-RM batch: %s", stats)
