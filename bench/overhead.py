"""Issue 8a: service overhead. Steps/s through POST /score with an instantaneous judge (bench/fake_judge.py)
against the raw embedder throughput on the same machine in the same run (target ratio >= 0.8), and the
p50/p99 latency of one-trajectory requests sent one at a time. Rounds alternate the two measurements so
that a noisy neighbour on a shared machine hits both alike; the median round is reported. CPU time per
step (service process, its event-loop thread) and per embedded text shows where a small machine's cores go.
    python bench/overhead.py --items 1500 --rounds 3 --json-out bench/results/overhead.json"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import httpx
import psutil

from common import fake_judge, report, service
from load import percentile, run_load, trajectory


def cpu_seconds(proc: psutil.Process) -> tuple[float, float]:
    """(whole process, its main thread = the event loop) CPU seconds so far."""
    times = proc.cpu_times()
    main = next(t for t in proc.threads() if t.id == proc.pid)
    return times.user + times.system, main.user_time + main.system_time


def embedder_round(embedder, texts: list[str]) -> tuple[float, float]:
    """(texts/s, CPU ms per text) of sentence-transformers encode in batches of 64, alone in this process."""
    started, cpu_started = time.perf_counter(), time.process_time()
    for i in range(0, len(texts), 64):
        embedder.encode_sync(texts[i:i + 64])
    return len(texts) / (time.perf_counter() - started), (time.process_time() - cpu_started) * 1000 / len(texts)


def service_round(url: str, proc: psutil.Process, args: argparse.Namespace, offset: int) -> dict:
    before = cpu_seconds(proc)
    load = asyncio.run(run_load(url, items=args.items, concurrency=args.concurrency, steps=args.steps,
                                distinct=10**9, max_seconds=600, offset=offset))
    after = cpu_seconds(proc)
    steps = args.items * args.steps
    assert load["item_status"].get("ok") == args.items, load
    return {"steps_per_s": load["items_per_s"] * args.steps,
            "cpu_ms_per_step": (after[0] - before[0]) * 1000 / steps,
            "event_loop_cpu_ms_per_step": (after[1] - before[1]) * 1000 / steps,
            "latency_p50_s": load["latency_p50_s"], "latency_p99_s": load["latency_p99_s"]}


def single_latencies(url: str, n: int, steps: int) -> list[float]:
    latencies = []
    with httpx.Client(timeout=60) as client:
        for i in range(n):
            body = {"items": [trajectory(10**8 + i, steps, 10**9)]}
            started = time.perf_counter()
            client.post(f"{url}/score", json=body).raise_for_status()
            latencies.append(time.perf_counter() - started)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=1500, help="one-trajectory requests per round")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--single", type=int, default=100, help="one-at-a-time requests for latency")
    parser.add_argument("--json-out")
    args = parser.parse_args()

    from scribe_rm.pipeline.embedder import Embedder
    from scribe_rm.settings import Settings

    embedder = Embedder(Settings().embedder_config())
    embedder.load()
    rounds = []
    with fake_judge() as judge_url, service(SCRIBE_JUDGE_BACKEND="openai", SCRIBE_JUDGE_BASE_URLS=judge_url,
                                            SCRIBE_CACHE_SIZE="0", SCRIBE_JUDGE_MAX_CONCURRENCY="64") as (url, proc):
        single_latencies(url, 20, args.steps)  # warm-up
        for r in range(args.rounds):
            offset = r * args.items
            texts = [s["text"] for i in range(args.items) for s in trajectory(offset + i, args.steps, 10**9)["steps"]]
            raw, raw_cpu = embedder_round(embedder, texts)
            measured = service_round(url, psutil.Process(proc.pid), args, offset)
            rounds.append({"embedder_texts_per_s": raw, "embedder_cpu_ms_per_text": raw_cpu, **measured,
                           "ratio": measured["steps_per_s"] / raw})
            print(f"round {r + 1}: service {measured['steps_per_s']:.1f} steps/s, embedder {raw:.1f} texts/s, "
                  f"ratio {rounds[-1]['ratio']:.3f}")
        latencies = single_latencies(url, args.single, args.steps)
    median = sorted(rounds, key=lambda r: r["ratio"])[len(rounds) // 2]
    rows = [
        ("service steps/s (median round)", round(median["steps_per_s"], 1), None),
        ("embedder alone, texts/s (same round)", round(median["embedder_texts_per_s"], 1), None),
        ("ratio (median round)", round(median["ratio"], 3), ">= 0.8"),
        ("ratio, every round", " ".join(f"{r['ratio']:.3f}" for r in rounds), None),
        ("embedder CPU ms per text", round(median["embedder_cpu_ms_per_text"], 2), None),
        ("service CPU ms per step", round(median["cpu_ms_per_step"], 2), None),
        ("  of which event loop", round(median["event_loop_cpu_ms_per_step"], 2), None),
        ("one-trajectory request p50 ms", round(percentile(latencies, 50) * 1000, 1), None),
        ("one-trajectory request p99 ms", round(percentile(latencies, 99) * 1000, 1), None),
    ]
    report(f"8a service overhead: {args.items} x {args.steps}-step requests, {args.concurrency} concurrent, "
           f"cache off, instantaneous judge", rows,
           {"args": vars(args), "rounds": rounds, "median_ratio": median["ratio"],
            "single_request_latencies_s": latencies, "mean_ratio": statistics.fmean(r["ratio"] for r in rounds)},
           args.json_out)


if __name__ == "__main__":
    main()
