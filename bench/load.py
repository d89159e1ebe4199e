"""A bounded load test for a SCRIBE-RM deployment: N one-trajectory requests at concurrency C, stopped
after --max-seconds. Every item is accounted for: by its result status, or by how its request failed.
503/429 answers are retried after Retry-After (the client's behaviour), at most --retries times.
The generator uses aiohttp so that, on a small machine, its own CPU takes as little as possible from the
service it measures.
    python bench/load.py --url http://127.0.0.1:8000 --items 2000 --concurrency 32 --json-out load.json"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections import Counter
from collections.abc import Callable
from typing import Any


def trajectory(i: int, steps: int, distinct: int) -> dict[str, Any]:
    k = i % distinct  # repeats, like the rollouts of a GRPO group
    return {"id": f"load-{i}", "question": f"Compute {k} + {k + 1}.", "steps": [
        {"text": f"Step {j + 1}: add {k} and {k + 1} carefully, partial result {k + j}."} for j in range(steps)]}


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


async def run_load(url: str, items: int = 2000, concurrency: int = 32, steps: int = 3, distinct: int = 500,
                   max_seconds: float = 300.0, deadline_s: float = 30.0, retries: int = 5,
                   api_key: str | None = None, offset: int = 0, until: Callable[[], bool] | None = None,
                   on_result: Callable[[str], None] | None = None) -> dict[str, Any]:
    """`until`: the caller's condition to stop sending (the items not sent then are not counted); `on_result`:
    called with each item's status as it arrives (for a caller that acts on the load's progress)."""
    import aiohttp

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    item_status: Counter = Counter()
    http_status: Counter = Counter()
    latencies: list[float] = []
    started = time.monotonic()
    queue: asyncio.Queue[int] = asyncio.Queue()
    stop_requested = until or (lambda: False)

    def record(result: str) -> None:
        item_status[result] += 1
        if on_result is not None:
            on_result(result)

    for i in range(offset, offset + items):
        queue.put_nowait(i)

    async def one(client: aiohttp.ClientSession, i: int) -> None:
        body = {"items": [trajectory(i, steps, distinct)], "deadline_s": deadline_s}
        t0 = time.monotonic()
        for _ in range(retries + 1):
            try:
                async with client.post(f"{url}/score", json=body) as response:
                    status, retry_after = response.status, response.headers.get("Retry-After", "1")
                    payload = await response.json() if status == 200 else None
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                http_status[type(exc).__name__] += 1
                record("transport_error")
                return
            http_status[status] += 1
            if status in (429, 503):
                await asyncio.sleep(float(retry_after))
                continue
            break
        latencies.append(time.monotonic() - t0)
        record(payload["results"][0]["status"] if payload else f"http_{status}")

    async def worker(client: aiohttp.ClientSession) -> None:
        while not queue.empty() and time.monotonic() - started < max_seconds and not stop_requested():
            await one(client, queue.get_nowait())

    async with aiohttp.ClientSession(headers=headers, connector=aiohttp.TCPConnector(limit=concurrency),
                                     timeout=aiohttp.ClientTimeout(total=deadline_s + 30)) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    elapsed = time.monotonic() - started
    stopped = stop_requested()
    item_status["not_sent"] = 0 if stopped else queue.qsize()
    return {"items": items - queue.qsize() if stopped else items, "concurrency": concurrency,
            "steps_per_item": steps, "seconds": round(elapsed, 2),
            "items_per_s": round(sum(item_status.values()) / elapsed, 2) if elapsed else None,
            "item_status": dict(item_status), "http_status": {str(k): v for k, v in http_status.items()},
            "latency_p50_s": percentile(latencies, 50), "latency_p99_s": percentile(latencies, 99),
            "latency_mean_s": statistics.fmean(latencies) if latencies else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--distinct", type=int, default=500, help="Distinct trajectories (repeats hit the cache).")
    parser.add_argument("--max-seconds", type=float, default=300.0)
    parser.add_argument("--deadline-s", type=float, default=30.0)
    parser.add_argument("--api-key")
    parser.add_argument("--json-out")
    args = parser.parse_args()
    report = asyncio.run(run_load(args.url, args.items, args.concurrency, args.steps, args.distinct,
                                  args.max_seconds, args.deadline_s, api_key=args.api_key))
    for key, value in report.items():
        print(f"{key:16} {value}")
    if args.json_out:
        with open(args.json_out, "w") as sink:
            json.dump(report, sink, indent=2)


if __name__ == "__main__":
    main()
