"""Issue 8a: service overhead. Steps/s through POST /score with an instantaneous judge (bench/fake_judge.py)
against the raw embedder throughput on the same machine in the same run (target ratio >= 0.8), and the
p50/p99 latency of one-trajectory requests sent one at a time.
    python bench/overhead.py --items 600 --concurrency 32 --json-out bench/results/overhead.json"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load import percentile, run_load, trajectory  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def wait_http(url: str, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} not ready")


def embedder_throughput(texts: list[str]) -> float:
    from scribe_rm.embedder import Embedder
    from scribe_rm.settings import Settings

    embedder = Embedder(Settings().resolved_embedder_dir())
    embedder.load()
    embedder.encode_sync(texts[:64])  # warm-up
    started = time.perf_counter()
    for i in range(0, len(texts), 64):
        embedder.encode_sync(texts[i:i + 64])
    return len(texts) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=600)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--single", type=int, default=100, help="one-at-a-time requests for latency")
    parser.add_argument("--judge-port", type=int, default=8021)
    parser.add_argument("--service-port", type=int, default=8031)
    parser.add_argument("--json-out")
    args = parser.parse_args()

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SCRIBE_JUDGE_BACKEND": "openai", "SCRIBE_CACHE_SIZE": "0",
           "SCRIBE_JUDGE_BASE_URLS": f"http://127.0.0.1:{args.judge_port}", "SCRIBE_PORT": str(args.service_port),
           "SCRIBE_LOG_LEVEL": "WARNING", "SCRIBE_JUDGE_MAX_CONCURRENCY": "64"}
    judge = subprocess.Popen([sys.executable, str(REPO / "bench/fake_judge.py"), "--port", str(args.judge_port)])
    service = subprocess.Popen([sys.executable, "-m", "scribe_rm.cli", "serve"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{args.service_port}"
    try:
        wait_http(f"http://127.0.0.1:{args.judge_port}/health")
        wait_http(f"{url}/readyz")
        load = asyncio.run(run_load(url, items=args.items, concurrency=args.concurrency, steps=args.steps,
                                    distinct=args.items, max_seconds=600))
        latencies = []
        with httpx.Client(timeout=60) as client:
            for i in range(args.single):
                body = {"items": [trajectory(10_000 + i, args.steps, 10**9)]}
                started = time.perf_counter()
                client.post(f"{url}/score", json=body).raise_for_status()
                latencies.append(time.perf_counter() - started)
    finally:
        service.terminate()
        judge.terminate()
        service.wait(30)
    texts = [step["text"] for i in range(args.items) for step in trajectory(i, args.steps, args.items)["steps"]]
    raw = embedder_throughput(texts)
    service_steps_s = load["items_per_s"] * args.steps
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "service_steps_per_s": round(service_steps_s, 1), "embedder_texts_per_s": round(raw, 1),
        "ratio": round(service_steps_s / raw, 3), "target_ratio": 0.8,
        "single_request_p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "single_request_p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "load": load,
    }
    for key, value in report.items():
        if key != "load":
            print(f"{key:24} {value}")
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
