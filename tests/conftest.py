"""Shared fixtures. HF_HUB_OFFLINE=1 makes any hidden hub download fail loudly."""

from __future__ import annotations

import asyncio
import math
import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import pytest  # noqa: E402

from scribe_rm.pipeline.embedder import Embedder, make_embedder  # noqa: E402
from scribe_rm.pipeline.judges import JudgeError  # noqa: E402
from scribe_rm.library import load_library  # noqa: E402
from scribe_rm.pipeline.router import Router  # noqa: E402
from scribe_rm.settings import Settings  # noqa: E402


def logprobs_for(label: int, confidence: float = 0.7) -> list[float]:
    """Label logprobs that put `confidence` on `label` and spread the rest evenly."""
    rest = (1 - confidence) / 3
    return [math.log(confidence if i == label else rest) for i in range(4)]


class ScriptedJudge:
    """A judge double driven by markers in the step under judgement:
    GOOD -> label 3, BAD -> label 0, FAIL -> JudgeError, SLOW -> sleeps `slow_s` first; otherwise label 2."""

    backend = "local"  # it stands in for the configured (local) backend

    def __init__(self, slow_s: float = 5.0):
        self.model_name = "scripted-judge"
        self.slow_s = slow_s
        self.calls = 0
        self.cancelled = 0
        self.started = False
        self.seen: list[list[dict]] = []  # every prompt judged, in call order

    async def start(self) -> None:
        self.started = True

    async def ready(self) -> bool:
        return self.started

    async def label_logprobs(self, messages):
        self.calls += 1
        self.seen.append(messages)
        step = messages[-1]["content"].split("# Step to score", 1)[1]
        try:
            if "SLOW" in step:
                await asyncio.sleep(self.slow_s)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        if "FAIL" in step:
            raise JudgeError("scripted failure")
        if "GOOD" in step:
            return logprobs_for(3)
        if "BAD" in step:
            return logprobs_for(0)
        return logprobs_for(2)

    async def generate_json(self, messages, schema, max_tokens, repetition_penalty=1.0):
        raise JudgeError("the scripted judge writes no JSON")  # split mode llm falls back to the rule split

    async def aclose(self) -> None:
        pass


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def library(settings):
    return load_library(settings.library_dir, settings.fallback_card_id)


@pytest.fixture(scope="session")
def embedder(settings):
    e = Embedder(settings.embedder_config())
    e.load()
    return e


@pytest.fixture(scope="session")
def cluster_embedder(settings):
    """The whole model, which induction clusters with (the router's embedder runs its first layers only)."""
    e = Embedder(settings.clustering_embedder_config())
    e.load()
    return e


@pytest.fixture(scope="session")
def static_embedder(settings):
    e = make_embedder(settings.static_embedder_config())
    e.load()
    return e


@pytest.fixture(scope="session")
def router(settings, library, embedder, static_embedder):
    r = Router(library, embedder, settings.router_config(), static_embedder=static_embedder)
    r.build_sync()
    return r


REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def is_ready(url: str, path: str = "/readyz") -> bool:
    try:
        return httpx.get(f"{url}{path}", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def wait_for(predicate, timeout_s: float, what: str, interval_s: float = 0.5) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval_s)
    raise AssertionError(f"timed out waiting for {what}")


def start_fake_judge(port: int, host: str = "127.0.0.1", delay_s: float = 0.0) -> subprocess.Popen:
    """A fake judge process (bench/fake_judge.py: instant, or answering each call after `delay_s`), once healthy."""
    process = subprocess.Popen([sys.executable, str(REPO / "bench" / "fake_judge.py"), "--host", host,
                                "--port", str(port), "--delay", str(delay_s)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://{host}:{port}"
    wait_for(lambda: is_ready(url, "/health"), 30, f"the fake judge at {url}")
    return process


RUNNING: dict[str, subprocess.Popen] = {}  # URL -> the service process, for tests that signal it


@contextmanager
def running_service(**env: str):
    """A real `scribe-rm serve` process on a free port, configured by SCRIBE_* variables; yields its URL."""
    port = free_port()
    (REPO / "var").mkdir(exist_ok=True)
    log_path = REPO / "var" / f"service-{port}.log"
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "SCRIBE_PORT": str(port), **env}
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "scribe_rm.cli", "serve"], env=full_env, stdout=log,
                                   stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for(lambda: is_ready(url) or process.poll() is not None, 180, "the service to be ready")
            assert process.poll() is None, log_path.read_text()[-2000:]
            RUNNING[url] = process
            yield url
        finally:
            RUNNING.pop(url, None)
            process.terminate()
            process.wait(30)


@contextmanager
def serving_in_thread(app):
    """The app under a real uvicorn server in a background thread; yields its base URL once ready."""
    import threading

    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    try:
        wait_for(lambda: is_ready(url), 180, "the in-thread service to be ready")
        yield url
    finally:
        server.should_exit = True
        thread.join(10)
