"""The `openai` judge backend against a real vLLM server (started by scripts/test.sh via vllm_start.sh),
through a real `scribe-rm serve` process. Skipped only when SCRIBE_TEST_VLLM_URL is unset."""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time

import httpx
import pytest

from conftest import REPO, is_ready, running_service, wait_for

VLLM_URL = os.environ.get("SCRIBE_TEST_VLLM_URL")
pytestmark = [pytest.mark.vllm,
              pytest.mark.skipif(not VLLM_URL, reason="needs a vLLM server: run scripts/test.sh (SCRIBE_TEST_VLLM_URL)")]

BOUND = "Find the largest integer c such that 4c + 1 < 180."


@pytest.fixture(scope="module")
def service():
    with running_service(SCRIBE_JUDGE_BACKEND="openai", SCRIBE_JUDGE_BASE_URLS=VLLM_URL, SCRIBE_JUDGE_MODEL="judge",
                         SCRIBE_CACHE_SIZE="0", SCRIBE_JUDGE_TIMEOUT_S="60", SCRIBE_JUDGE_RETRIES="2") as url:
        yield url


def score(url: str, body: dict, timeout: float = 300) -> dict:
    response = httpx.post(f"{url}/score", json=body, timeout=timeout)
    assert response.status_code == 200, response.text
    return response.json()


def prefix_cache_hits() -> float:
    text = httpx.get(f"{VLLM_URL}/metrics", timeout=10).text
    return sum(float(v) for v in re.findall(r"^vllm:prefix_cache_hits_total\{[^}]*\} (\S+)$", text, re.M))


def test_scores_are_distributions_and_repeatable(service):
    body = {"items": [
        {"id": "leak", "question": BOUND, "response": "Step 1: 4c < 179.\nStep 2: c < 44.75.\nStep 3: So c = 44.75."},
        {"id": "tool", "question": "Weather in Paris?", "steps": [
            {"text": "Tool call: get_weather({\"city\": \"Paris\"})"}, {"text": "It is 21 degrees in Paris."}]},
    ], "deadline_s": 240}
    first, second = score(service, body), score(service, body)
    assert first["judge_model"] == "judge" and first["cache"]["hits"] == 0 and second["cache"]["hits"] == 0
    for result in first["results"]:
        assert result["status"] == "ok", result
        for step in result["steps"]:
            assert sum(step["probabilities"]) == pytest.approx(1.0, abs=1e-5)
            assert 0 <= step["score"] <= 3 and 0 < step["label_mass"] <= 1
    # T=0 and a fixed seed, but vLLM is not batch-invariant on a CPU (VLLM_BATCH_INVARIANT needs a GPU): the
    # second request finds the cards in the prefix cache and its steps batch differently, so bfloat16 numerics
    # move a little (0.03 seen). Near-equal, not bit-equal; the service's result cache gives bit-equal repeats.
    pick = lambda r: [p for i in r["results"] for s in i["steps"] for p in s["probabilities"]]  # noqa: E731
    assert pick(first) == pytest.approx(pick(second), abs=0.06)
    assert [i["reward"] for i in first["results"]] == pytest.approx([i["reward"] for i in second["results"]], abs=0.03)


def test_prefix_cache_reuses_the_card(service):
    before = prefix_cache_hits()
    steps = [{"text": f"There are C({n}, 2) = {n * (n - 1) // 2} ways to choose the pair.",
              "prototype_id": "math.counting"} for n in range(5, 10)]
    result = score(service, {"items": [{"id": "c", "question": "Count the pairs.", "steps": steps}]})
    assert result["results"][0]["status"] == "ok"
    assert prefix_cache_hits() > before


def judge_calls_in_flight(service: str) -> float:
    metrics = httpx.get(f"{service}/metrics", timeout=10).text
    return sum(float(line.split()[-1]) for line in metrics.splitlines() if line.startswith("scribe_judge_inflight "))


def test_vllm_stopped_mid_batch_then_recovers(service):
    # 64 distinct steps, stopped as soon as the first judge calls are out: a fast machine cannot finish them
    # all first (16 steps and a fixed 3 s wait once did)
    body = {"items": [{"id": f"i{k}", "question": BOUND,
                       "steps": [{"text": f"Step {j}: c < {44 + k}.{j}5 so c <= {44 + k}."} for j in range(8)]}
                      for k in range(8)], "deadline_s": 60}
    outcome: dict = {}

    def run() -> None:
        started = time.monotonic()
        outcome["response"] = score(service, body, timeout=120)
        outcome["elapsed"] = time.monotonic() - started

    worker = threading.Thread(target=run)
    try:
        worker.start()
        wait_for(lambda: judge_calls_in_flight(service) > 0, 60, "the service to send judge calls")
        subprocess.run(["bash", "scripts/vllm_stop.sh"], cwd=REPO, check=True)
        worker.join(120)
        assert not worker.is_alive(), "the request hung after vLLM stopped"
        assert outcome["elapsed"] < 60 + 2
        statuses = [r["status"] for r in outcome["response"]["results"]]
        assert set(statuses) <= {"ok", "judge_error", "timeout"} and set(statuses) - {"ok"}, statuses
        for r in outcome["response"]["results"]:
            assert (r["reward"] is None) == (r["status"] != "ok")
        wait_for(lambda: httpx.get(f"{service}/readyz", timeout=10).status_code == 503, 30, "/readyz to turn 503")
    finally:
        subprocess.run(["bash", "scripts/vllm_start.sh"], cwd=REPO, check=True)
    wait_for(lambda: is_ready(service), 60, "the service to be ready again")
    again = score(service, {"items": body["items"][:1], "deadline_s": 120})
    assert again["results"][0]["status"] == "ok"
