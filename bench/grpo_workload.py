"""Issue 8d: a GRPO-shaped workload through the service on a real vLLM judge. Each training step scores
G prompts x 8 rollouts in one POST /score (as a TRL reward function does). Rollouts of a group share
prefixes like sampled continuations: step 1 is common to all 8, step 2 to 4, step 3 to 2, step 4 is each
rollout's own. In the second training step half of every group repeats a rollout of the first (a policy
settling on an answer) and half is new. Prints the judge calls saved by in-request dedup and by the cache,
and vLLM's prefix-cache hit rate over the workload (from its /metrics).
    python bench/grpo_workload.py --vllm-url http://127.0.0.1:8011 --groups 2 --json-out bench/results/grpo_workload.json"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time

import aiohttp

from common import post_json, report, service, step_rows, vllm_counters

ROLLOUTS = 8
STEPS = 4


def step_text(pool: list[str], key: tuple) -> str:
    return random.Random(json.dumps(key)).choice(pool)


def rollout(pools: dict[str, list[str]], group: int, r: int, generation: int) -> dict:
    """Step j of rollout r is shared with the rollouts in its block of 8 >> j (1, 2, 4 or 8 variants)."""
    domain = "math" if group % 2 == 0 else "tool_use"
    keys = [(group, 0)] + [(group, j, generation, r // (ROLLOUTS >> j)) for j in range(1, STEPS)]
    return {"id": f"g{group}-gen{generation}-r{r}", "domain": domain,
            "question": f"Training prompt {group}: solve it step by step.",
            "steps": [{"text": step_text(pools[domain], key)} for key in keys]}


def training_step(pools: dict[str, list[str]], groups: int, step: int) -> list[dict]:
    """Step 0: fresh rollouts. Later steps: rollouts 0-3 repeat step 0's, rollouts 4-7 are new."""
    return [rollout(pools, g, r, 0 if step == 0 or r < ROLLOUTS // 2 else step)
            for g in range(groups) for r in range(ROLLOUTS)]


async def run(service_url: str, batches: list[list[dict]], timeout_s: float) -> list[dict]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
        replies = []
        for n, items in enumerate(batches):
            started = time.perf_counter()
            reply = await post_json(session, f"{service_url}/score", {"items": items, "deadline_s": timeout_s})
            seconds = time.perf_counter() - started
            statuses = [r["status"] for r in reply["results"]]
            assert statuses.count("ok") == len(items), f"training step {n + 1}: statuses {statuses}"
            replies.append({"steps": sum(len(i["steps"]) for i in items), "seconds": seconds, **reply["cache"]})
            print(f"training step {n + 1}: {replies[-1]}")
        return replies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vllm-url", default="http://127.0.0.1:8011")
    parser.add_argument("--model", default="judge", help="the served model name")
    parser.add_argument("--groups", type=int, default=2, help="prompts per training step (8 rollouts each)")
    parser.add_argument("--training-steps", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--timeout-s", type=float, default=1800)
    parser.add_argument("--json-out")
    args = parser.parse_args()
    rows = step_rows()
    pools = {d: [r["text"] for r in rows if r["domain"] == d] for d in ("math", "tool_use")}
    batches = [training_step(pools, args.groups, s) for s in range(args.training_steps)]
    settings = {"SCRIBE_JUDGE_BACKEND": "openai", "SCRIBE_JUDGE_BASE_URLS": args.vllm_url,
                "SCRIBE_JUDGE_MODEL": args.model, "SCRIBE_JUDGE_MAX_CONCURRENCY": str(args.concurrency),
                "SCRIBE_JUDGE_TIMEOUT_S": str(args.timeout_s), "SCRIBE_MAX_DEADLINE_S": str(args.timeout_s)}
    with service(**settings) as (url, _):
        before = vllm_counters(args.vllm_url)
        replies = asyncio.run(run(url, batches, args.timeout_s))
        after = vllm_counters(args.vllm_url)
    delta = {k: after[k] - before[k] for k in after}
    steps = sum(r["steps"] for r in replies)
    calls = sum(r["misses"] for r in replies)
    dedup = sum(r["deduplicated"] for r in replies)
    hits = sum(r["hits"] for r in replies)
    seconds = sum(r["seconds"] for r in replies)
    table = [
        ("training steps x rollouts", f"{args.training_steps} x {args.groups * ROLLOUTS}", None),
        ("steps scored", steps, None),
        ("judge calls made", calls, None),
        ("saved by in-request dedup", dedup, None),
        ("saved by the cache", hits, None),
        ("judge calls saved", f"{(dedup + hits) / steps:.1%}", None),
        ("vLLM requests (from its /metrics)", int(delta["request_success"]), None),
        ("vLLM prefix-cache hit rate (tokens)",
         f"{delta['prefix_cache_hits'] / delta['prefix_cache_queries']:.1%}" if delta["prefix_cache_queries"] else "n/a",
         None),
        ("scored steps/s", round(steps / seconds, 3), None),
    ]
    report(f"8d GRPO-shaped workload on {args.vllm_url}", table,
           {"args": vars(args), "training_steps": replies, "vllm_delta": delta}, args.json_out)


if __name__ == "__main__":
    main()
