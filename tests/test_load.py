"""Bounded load on loopback with the judge killed and restarted mid-run: every item accounted for
(ok or an explicit error status), no 5xx but the documented 503 overload answer."""

import asyncio
import signal
import sys
import threading
import time

import pytest

from conftest import REPO, free_port, running_service, start_fake_judge, wait_for

sys.path.insert(0, str(REPO / "bench"))
from load import run_load  # noqa: E402

import httpx  # noqa: E402

pytestmark = pytest.mark.model


MAX_ITEMS = 20_000  # a cap only: the load stops once the judge has come back and served RECOVERED items
BEFORE = 100  # items scored before the judge is killed
OUTAGE_S = 4.0
RECOVERED = 200  # items scored ok after the restart, when the load stops


def test_load_with_judge_killed_and_restarted():
    """The outage follows the load's progress, not the clock, so it falls inside the load on any host."""
    port = free_port()
    judge = {"process": start_fake_judge(port)}
    env = dict(SCRIBE_JUDGE_BACKEND="openai", SCRIBE_JUDGE_BASE_URLS=f"http://127.0.0.1:{port}",
               SCRIBE_JUDGE_RETRIES="1", SCRIBE_JUDGE_TIMEOUT_S="2", SCRIBE_CACHE_SIZE="0",
               SCRIBE_JUDGE_MAX_PENDING="48", SCRIBE_LOG_LEVEL="WARNING")
    done: list[str] = []  # each item's status as it arrives (a list: safe to read from the chaos thread)
    timeline = {}

    def chaos() -> None:
        try:
            wait_for(lambda: len(done) >= BEFORE, 120, f"{BEFORE} items before the outage")
            judge["process"].kill()
            judge["process"].wait()
            timeline["killed"] = len(done)
            time.sleep(OUTAGE_S)
            judge["process"] = start_fake_judge(port)
            timeline["restarted"], ok_then = len(done), done.count("ok")
            wait_for(lambda: done.count("ok") >= ok_then + RECOVERED, 120, f"{RECOVERED} items ok after the restart")
            timeline["recovered"] = len(done)
        except AssertionError as exc:
            timeline["error"] = str(exc)

    outage = threading.Thread(target=chaos, daemon=True)
    try:
        with running_service(**env) as url:
            outage.start()
            report = asyncio.run(run_load(url, items=MAX_ITEMS, concurrency=32, steps=3, distinct=MAX_ITEMS,
                                          max_seconds=300, deadline_s=20,
                                          until=lambda: "recovered" in timeline or "error" in timeline,
                                          on_result=done.append))
    finally:
        if outage.is_alive():  # a failed load: let a pending restart happen, so the judge it starts is stopped
            outage.join(OUTAGE_S + 35)
        judge["process"].kill()
    print(report, timeline)
    statuses = report["item_status"]
    assert "recovered" in timeline, timeline
    assert statuses.get("not_sent", 0) == 0 and sum(statuses.values()) == report["items"], report
    assert set(statuses) - {"not_sent"} <= {"ok", "judge_error", "timeout"}, statuses
    assert statuses.get("judge_error", 0) > 0, statuses  # the outage answered explicitly, item by item
    assert set(report["http_status"]) <= {"200", "503"}, report["http_status"]


def test_sigterm_drains_in_flight_requests():
    port = free_port()
    judge = start_fake_judge(port, delay_s=2.0)
    try:
        with running_service(SCRIBE_JUDGE_BACKEND="openai", SCRIBE_JUDGE_BASE_URLS=f"http://127.0.0.1:{port}",
                             SCRIBE_CACHE_SIZE="0") as url:
            from conftest import RUNNING

            outcome = {}

            def call() -> None:
                outcome["response"] = httpx.post(f"{url}/score", timeout=30, json={
                    "items": [{"id": "drain", "steps": [{"text": "x = 1"}, {"text": "y = 2"}]}]})

            caller = threading.Thread(target=call)
            caller.start()
            time.sleep(0.7)
            process = RUNNING[url]
            process.terminate()  # SIGTERM while the request waits on the slow judge
            caller.join(30)
            # uvicorn drains, then re-raises the captured SIGTERM, so the exit code says "terminated"
            assert process.wait(30) in (0, -signal.SIGTERM)
            response = outcome["response"]
            assert response.status_code == 200 and response.json()["results"][0]["status"] == "ok"
            with pytest.raises(httpx.ConnectError):
                httpx.get(f"{url}/healthz", timeout=2)
    finally:
        judge.kill()
