"""What every benchmark script shares: the processes it starts, the workload it sends, how it reports."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import random
import re
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import aiohttp
import httpx

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} not ready after {timeout_s:.0f}s")


@contextmanager
def process(args: list[str], ready_url: str, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    proc = subprocess.Popen(args, env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(ready_url)
        yield proc
    finally:
        proc.terminate()
        proc.wait(30)


@contextmanager
def fake_judge() -> Iterator[str]:
    """bench/fake_judge.py on a free port; yields its base URL."""
    url = f"http://127.0.0.1:{free_port()}"
    port = url.rsplit(":", 1)[1]
    with process([sys.executable, str(REPO / "bench/fake_judge.py"), "--port", port], f"{url}/health"):
        yield url


@contextmanager
def service(**settings: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """`scribe-rm serve` on a free port, configured by SCRIBE_* settings; yields (URL, process)."""
    port = str(free_port())
    env = {"SCRIBE_PORT": port, "SCRIBE_LOG_LEVEL": "WARNING", **settings}
    url = f"http://127.0.0.1:{port}"
    with process([sys.executable, "-m", "scribe_rm.cli", "serve"], f"{url}/readyz", env) as proc:
        yield url, proc


def step_rows() -> list[dict[str, Any]]:
    """The 144 held-out routing phrasings (text, expected card, domain): realistic math and tool-use steps."""
    from scribe_rm.evaluation.routing import DEFAULT_SET, load_labelled

    return load_labelled(DEFAULT_SET)


def trajectories(n: int, steps: int, tag: str, seed: int = 0) -> list[dict[str, Any]]:
    """n items of `steps` steps drawn from the held-out phrasings; `tag` makes every item's text unique."""
    rows = step_rows()
    rng = random.Random(seed)
    items = []
    for i in range(n):
        picked = rng.sample(rows, steps)
        items.append({"id": f"{tag}-{i}", "question": f"Task {tag}-{i}: solve the problem step by step.",
                      "domain": picked[0]["domain"], "steps": [{"text": row["text"]} for row in picked]})
    return items


async def post_json(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> dict[str, Any]:
    async with session.post(url, json=body) as response:
        if response.status != 200:
            raise RuntimeError(f"{url} answered {response.status}: {(await response.text())[:300]}")
        return await response.json()


async def run_bounded(jobs, concurrency: int) -> tuple[list, float]:
    """(results in order, seconds) of awaiting `jobs` with at most `concurrency` in flight."""
    slots = asyncio.Semaphore(concurrency)

    async def bounded(job):
        async with slots:
            return await job

    started = time.perf_counter()
    results = await asyncio.gather(*(bounded(job) for job in jobs))
    return results, time.perf_counter() - started


def vllm_counters(base_url: str) -> dict[str, float]:
    """vLLM's prefix-cache and request counters from its /metrics, summed over label sets."""
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    counters = {}
    for name in ("prefix_cache_queries", "prefix_cache_hits", "request_success", "prompt_tokens",
                 "generation_tokens"):
        values = re.findall(rf"^vllm:{name}_total(?:{{[^}}]*}})? (\S+)$", text, re.M)
        counters[name] = sum(float(v) for v in values)
    return counters


def machine() -> str:
    return (f"{platform.machine()}, {os.cpu_count()} cores, {matrix_instructions()}, Python "
            f"{platform.python_version()}, no GPU")


def matrix_instructions() -> str:
    """The CPU's widest matrix instructions, on which the transformer's cost depends most (bf16 where native)."""
    cpuinfo = Path("/proc/cpuinfo")
    flags = set(cpuinfo.read_text().split()) if cpuinfo.exists() else set()
    for flag, name in (("amx_bf16", "AMX"), ("avx512_bf16", "AVX512-BF16"), ("avx512f", "AVX-512"), ("avx2", "AVX2")):
        if flag in flags:
            return name
    return "no AVX2"


def report(title: str, rows: list[tuple[str, Any, Any]], results: dict[str, Any], json_out: str | None) -> None:
    """Print a measure | value | target table and write `results` (plus the table) as JSON."""
    print(f"\n{title} ({machine()})\n")
    width = max(len(name) for name, _, _ in rows)
    for name, value, target in rows:
        print(f"  {name:<{width}}  {value!s:>12}  {'' if target is None else 'target ' + str(target)}")
    if json_out:
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        table = [{"measure": n, "value": v, "target": t} for n, v, t in rows]
        Path(json_out).write_text(json.dumps({"machine": machine(), "table": table, **results}, indent=2))


async def in_process_engine(judge_url: str, **settings: Any):
    """The service's own pipeline in this process, judging on `judge_url` (openai backend): for building
    exactly the prompts the service sends, and for calling its judge backend directly."""
    from scribe_rm.pipeline.engine import Engine
    from scribe_rm.settings import Settings

    engine = Engine.build(Settings(judge_backend="openai", judge_base_urls=[judge_url], **settings).pipeline_config())
    await engine.load(with_judge=True)
    if engine.load_error:
        raise RuntimeError(engine.load_error)
    return engine


async def prompts_for(engine, items: list[dict[str, Any]]) -> list[list[dict[str, str]]]:
    from scribe_rm.pipeline.schemas import ScoreRequest

    return await engine.scorer.judge_prompts(ScoreRequest.model_validate({"items": items}))
