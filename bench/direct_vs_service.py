"""Issue 8c: steps/s through the service against the same prompts sent straight to vLLM by an optimal async
client (aiohttp, the same concurrency, the same request bodies the service's judge backend sends).
Target: service / direct >= 0.9. Runs go in the order direct, service, service, direct (repeated --rounds
times) so that drift in the server's speed hits both alike; every run has its own task texts (so no run
reuses another's prompts from vLLM's prefix cache) routed to the same cards, after a warm-up that caches
every card once.
    python bench/direct_vs_service.py --vllm-url http://127.0.0.1:8011 --items 8 --json-out bench/results/direct_vs_service.json"""

from __future__ import annotations

import argparse
import asyncio
import time

import aiohttp

from common import in_process_engine, post_json, prompts_for, report, run_bounded, service, trajectories


async def direct(engine, prompts, url: str, concurrency: int, timeout_s: float) -> float:
    """Seconds to judge `prompts` with bare aiohttp calls carrying the judge backend's own request bodies."""
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
        calls = [post_json(session, f"{url}/v1/chat/completions", engine.judge.request_body(m)) for m in prompts]
        _, seconds = await run_bounded(calls, concurrency)
        return seconds


async def through_service(service_url: str, items, per_request: int, timeout_s: float) -> tuple[float, int]:
    """Seconds to score `items` through POST /score, sent as concurrent requests of `per_request` items."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
        batches = [items[i:i + per_request] for i in range(0, len(items), per_request)]
        started = time.perf_counter()
        replies = await asyncio.gather(*(post_json(session, f"{service_url}/score",
                                                   {"items": batch, "deadline_s": timeout_s}) for batch in batches))
        elapsed = time.perf_counter() - started
    ok = sum(r["status"] == "ok" for reply in replies for r in reply["results"])
    return elapsed, ok


async def main_async(args: argparse.Namespace, service_url: str) -> None:
    engine = await in_process_engine(args.vllm_url, judge_model=args.model, judge_timeout_s=args.timeout_s)
    runs: list[dict] = []
    try:
        warm_prompts = await prompts_for(engine, trajectories(args.items, args.steps, tag="warm", seed=2))
        warm = {m[0]["content"]: m for m in warm_prompts}  # one prompt per card: caches every card prefix
        await direct(engine, list(warm.values()), args.vllm_url, args.concurrency, args.timeout_s)
        for r in range(args.rounds):
            for arm in ("direct", "service", "service", "direct"):
                items = trajectories(args.items, args.steps, tag=f"{arm}-{len(runs)}", seed=2)  # same steps, new task
                if arm == "direct":
                    prompts = await prompts_for(engine, items)
                    seconds = await direct(engine, prompts, args.vllm_url, args.concurrency, args.timeout_s)
                    steps = len(prompts)
                else:
                    seconds, ok = await through_service(service_url, items, args.per_request, args.timeout_s)
                    assert ok == len(items), f"only {ok} of {len(items)} items scored through the service"
                    steps = sum(len(item["steps"]) for item in items)
                runs.append({"arm": arm, "steps": steps, "seconds": seconds})
                print(f"round {r + 1} {arm:8} {steps} steps in {seconds:.1f}s = {steps / seconds:.3f} steps/s")
    finally:
        await engine.aclose()

    def rate(arm: str) -> float:
        return sum(x["steps"] for x in runs if x["arm"] == arm) / sum(x["seconds"] for x in runs if x["arm"] == arm)

    rows = [
        ("runs per arm x steps per run", f"{2 * args.rounds} x {runs[0]['steps']}", None),
        ("direct to vLLM, steps/s", round(rate("direct"), 3), None),
        ("through the service, steps/s", round(rate("service"), 3), None),
        ("ratio service / direct", round(rate("service") / rate("direct"), 3), ">= 0.9"),
    ]
    report(f"8c through the service vs direct on {args.vllm_url}, concurrency {args.concurrency}", rows,
           {"args": vars(args), "runs": runs}, args.json_out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vllm-url", default="http://127.0.0.1:8011")
    parser.add_argument("--model", default="judge", help="the served model name")
    parser.add_argument("--items", type=int, default=8, help="items per run")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of direct, service, service, direct")
    parser.add_argument("--steps", type=int, default=3, help="steps per item")
    parser.add_argument("--per-request", type=int, default=4, help="items per POST /score")
    parser.add_argument("--concurrency", type=int, default=16, help="judge calls in flight, both runs")
    parser.add_argument("--timeout-s", type=float, default=1800)
    parser.add_argument("--json-out")
    args = parser.parse_args()
    settings = {"SCRIBE_JUDGE_BACKEND": "openai", "SCRIBE_JUDGE_BASE_URLS": args.vllm_url,
                "SCRIBE_JUDGE_MODEL": args.model, "SCRIBE_CACHE_SIZE": "0",
                "SCRIBE_JUDGE_MAX_CONCURRENCY": str(args.concurrency), "SCRIBE_JUDGE_TIMEOUT_S": str(args.timeout_s),
                "SCRIBE_MAX_DEADLINE_S": str(args.timeout_s)}
    with service(**settings) as (url, _):
        asyncio.run(main_async(args, url))


if __name__ == "__main__":
    main()
