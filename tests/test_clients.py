"""The thin client and the trainer adapters, against a scripted HTTP server (retry behaviour) and
against the real service running in-process with uvicorn (adapter mappings, OpenRLHF route)."""

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from conftest import ScriptedJudge, serving_in_thread
from scribe_client import AsyncScribeClient, RetryPolicy, ScribeClient, ScribeError
from scribe_client.adapters import as_text, make_item
from scribe_client.trl import make_trl_reward
from scribe_client.verl import KEYS, make_compute_score
from scribe_rm.api.app import create_app
from scribe_rm.settings import Settings

FAST = RetryPolicy(attempts=3, base_delay_s=0.05, max_delay_s=0.5)
OK_BODY = {"results": [{"id": "0", "status": "ok", "reward": 0.5}]}


class Scripted:
    def __init__(self, script, current_version: str = "v1"):
        self.script, self.bodies = list(script), []
        self.current_version = current_version  # what GET /library/versions answers
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                payload = json.dumps({"current": outer.current_version, "kept": []}).encode()
                self.send_response(200)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_POST(self):
                outer.bodies.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
                status, body, headers = outer.script.pop(0) if len(outer.script) > 1 else outer.script[0]
                payload = json.dumps(body).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.mark.parametrize("status", [503, 429, 500, 408])
def test_retries_then_succeeds_with_one_request_id(status):
    server = Scripted([(status, {"detail": "busy"}, {}), (200, OK_BODY, {})])
    with ScribeClient(server.url, retry=FAST, timeout_s=10) as client:
        assert client.score_one({"id": "0", "response": "x"})["reward"] == 0.5
    assert len(server.bodies) == 2 and server.bodies[0]["request_id"] == server.bodies[1]["request_id"]
    assert server.bodies[0]["deadline_s"] == 5  # timeout_s minus the default 5 s margin


def test_honours_retry_after():
    server = Scripted([(503, {"detail": "full"}, {"Retry-After": "1"}), (200, OK_BODY, {})])
    started = time.monotonic()
    with ScribeClient(server.url, retry=FAST, timeout_s=10) as client:
        client.score([{"id": "0", "response": "x"}])
    assert time.monotonic() - started >= 1.0


def test_other_4xx_fail_at_once_with_the_server_message():
    server = Scripted([(422, {"detail": "item 'a' has 70 steps > max_steps_per_item=64"}, {}), (200, OK_BODY, {})])
    with ScribeClient(server.url, retry=FAST, timeout_s=10) as client:
        with pytest.raises(ScribeError, match="max_steps_per_item=64") as err:
            client.score([{"id": "a", "response": "x"}])
    assert err.value.status_code == 422 and len(server.bodies) == 1


def test_gives_up_after_the_attempts():
    server = Scripted([(502, {"detail": "bad gateway"}, {})])
    with ScribeClient(server.url, retry=FAST, timeout_s=10) as client:
        with pytest.raises(ScribeError, match="502"):
            client.score([{"id": "a", "response": "x"}])
    assert len(server.bodies) == FAST.attempts


async def test_async_unreachable_raises_scribe_error():
    async with AsyncScribeClient("http://127.0.0.1:9", retry=FAST, timeout_s=10) as client:
        with pytest.raises(ScribeError, match="unreachable") as err:
            await client.score([{"id": "a", "response": "x"}])
    assert err.value.status_code is None


# ---------- adapters against the real service ----------

JUDGE = ScriptedJudge()  # the in-process service's judge: tests read the prompts it saw


@pytest.fixture(scope="module")
def service_url():
    with serving_in_thread(create_app(Settings(max_steps_per_item=8), judge=JUDGE)) as url:
        yield url


async def test_trl_reward_returns_none_for_failed_items(service_url):
    logged = {}
    async with AsyncScribeClient(service_url, timeout_s=30) as client:
        reward = make_trl_reward(client, outcome_fn=lambda p, c, answer: float(answer in as_text(c)), name="scribe_prm")
        values = await reward(
            prompts=[[{"role": "user", "content": "2+2?"}], "3+3?", "x?"],
            completions=[[{"role": "assistant", "content": "GOOD: 4"}], "GOOD then FAIL", "   "],
            answer=["4", "6", "1"], log_metric=lambda k, v: logged.__setitem__(k, v))
    assert reward.__name__ == "scribe_prm"
    assert values[0] == pytest.approx(0.7 * 1.0 + 0.3 * 0.8, abs=1e-6)  # outcome 1, one GOOD step (E=2.4/3)
    assert values[1] is None and values[2] is None  # judge_error and invalid
    assert logged["scribe/failed_fraction"] == pytest.approx(2 / 3)


TOOLS = [{"type": "function", "function": {"name": "get_order", "parameters": {"type": "object"}}}]
CALL = {"role": "assistant", "content": "",
        "tool_calls": [{"id": "1", "function": {"name": "get_order", "arguments": "{}"}}]}


def test_make_item_keeps_the_system_prompt_and_tools_for_the_judge():
    prompt = [{"role": "system", "content": "Verify identity first."}, {"role": "user", "content": "Where is my order?"}]
    dialogue = make_item("a", prompt, [CALL], tools=TOOLS)
    assert dialogue["messages"][:2] == prompt and dialogue["messages"][2] == CALL and dialogue["tools"] == TOOLS
    text = make_item("b", prompt, "I will check your order.")
    assert text["policy"] == "Verify identity first." and text["question"] == "Where is my order?"
    assert "policy" not in make_item("c", "plain question", "answer") and "tools" not in make_item("c", "q", "a")


async def test_trl_reward_passes_a_tools_column_through(service_url):
    async with AsyncScribeClient(service_url, timeout_s=30) as client:
        seen = []
        reward = make_trl_reward(client, on_results=lambda results, **kw: seen.extend(results))
        prompt = [{"role": "system", "content": "Verify identity first."}, {"role": "user", "content": "GOOD order?"}]
        values = await reward(prompts=[prompt], completions=[[CALL]], tools=[TOOLS])
    assert values[0] is not None and seen[0]["status"] == "ok"
    (user,) = [m[1]["content"] for m in JUDGE.seen if "GOOD order?" in m[1]["content"]]
    assert '"name":"get_order"' in user and "Verify identity first." in user


async def test_trl_reward_when_service_is_down_gives_all_none():
    async with AsyncScribeClient("http://127.0.0.1:9", timeout_s=6, retry=FAST) as client:
        reward = make_trl_reward(client)
        assert await reward(prompts=["a", "b"], completions=["c", "d"]) == [None, None]


async def test_verl_compute_score_has_fixed_keys(service_url):
    async with AsyncScribeClient(service_url, timeout_s=30) as client:
        compute_score = make_compute_score(client, fallback_score=-1.0)
        good, bad = await asyncio.gather(
            compute_score("gsm8k", "GOOD step one\n\nGOOD step two", "4", {"question": "2+2?"}),
            compute_score("gsm8k", "FAIL", "4", {"question": "2+2?"}))
    assert set(good) == set(bad) == set(KEYS)
    assert good["judge_ok"] == 1.0 and good["n_steps"] == 2.0 and good["score"] == pytest.approx(0.8, abs=1e-6)
    assert bad["judge_ok"] == 0.0 and bad["score"] == -1.0


def test_openrlhf_route(service_url):
    prompt = "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
    body = {"query": [prompt + "GOOD: 4<|im_end|>", "truncated... <|im_start|>assistant\nFAIL<|im_end|>", prompt],
            "prompts": [prompt, "different prompt", prompt], "labels": ["4", "4", "4"]}
    data = httpx.post(f"{service_url}/compat/openrlhf/get_reward", json=body, timeout=30).json()
    assert data["rewards"][0] == pytest.approx(0.8, abs=1e-6)
    assert data["rewards"][1:] == [0.0, 0.0] and data["extra_logs"]["scribe_judge_ok"] == [1.0, 0.0, 0.0]
    assert all(0 <= s <= 1 for s in data["scores"])
    empty = httpx.post(f"{service_url}/compat/openrlhf/get_reward", json={"query": [], "prompts": [], "labels": []})
    assert empty.json() == {"rewards": [], "scores": [], "extra_logs": {}}


def test_openrlhf_reward_func_file_mode(service_url, monkeypatch):
    import scribe_client.openrlhf as mode

    monkeypatch.setenv("SCRIBE_URL", service_url)
    monkeypatch.setattr(mode, "_http", None)
    out = mode.reward_func(["Q: 1+1? A: GOOD 2"], ["Q: 1+1? A:"], ["2"])
    assert out["rewards"].tolist() == pytest.approx([0.8], abs=1e-6)
    assert out["extra_logs"]["scribe_judge_ok"].tolist() == [1.0]


# ---------- issue 26: one library version per training step ----------

def versioned(version: str) -> dict:
    return {"library_version": version, "results": [{"id": "0", "status": "ok", "reward": 0.5}]}


def conflict(*available: str) -> tuple:
    return (409, {"detail": "not served here", "library_version": "v1", "available": list(available)}, {})


async def test_a_step_pins_the_current_version_and_a_refresh_takes_effect_at_the_next_step():
    server = Scripted([(200, versioned("v1"), {})], current_version="v1")
    client = AsyncScribeClient(server.url, retry=FAST, timeout_s=10)
    assert await client.begin_step() == "v1"
    await client.score_one({"id": "0", "response": "x"})
    client.set_next_version("v2")  # a refresh reloaded the fleet mid-step
    await client.score_one({"id": "0", "response": "x"})
    assert [b["library_version"] for b in server.bodies] == ["v1", "v1"]  # the step keeps its version
    server.current_version = "v3"
    assert await client.begin_step() == "v2"  # the refresh's version, not whatever a replica says
    assert await client.begin_step() == "v3"  # later steps follow the service
    await client.aclose()


async def test_a_409_is_retried_on_another_replica_with_the_same_pin():
    server = Scripted([conflict("v2", "v1"), (200, versioned("v1"), {})])
    client = AsyncScribeClient(server.url, retry=FAST, timeout_s=10, library_version="v1", follow_latest=False)
    assert (await client.score_one({"id": "0", "response": "x"}))["reward"] == 0.5
    assert [b["library_version"] for b in server.bodies] == ["v1", "v1"] and client.pin.repins == 0
    await client.aclose()


async def test_when_no_replica_serves_the_pin_the_client_moves_to_the_current_version_and_recovers():
    server = Scripted([conflict("v2")] * FAST.attempts + [(200, versioned("v2"), {})])
    client = AsyncScribeClient(server.url, retry=FAST, timeout_s=10, library_version="v1", follow_latest=False)
    assert (await client.score_one({"id": "0", "response": "x"}))["reward"] == 0.5
    assert [b["library_version"] for b in server.bodies] == ["v1"] * FAST.attempts + ["v2"]
    assert client.library_version == "v2" and client.pin.repins == 1
    await client.aclose()


async def test_a_batch_whose_pin_moved_is_rescored_so_it_never_mixes_versions():
    server = Scripted([(200, versioned("v1"), {})] + [conflict("v2")] * FAST.attempts
                      + [(200, versioned("v2"), {})] * 3)
    client = AsyncScribeClient(server.url, retry=FAST, timeout_s=10, library_version="v1", follow_latest=False,
                               max_concurrency=1)
    results = await client.score_batch([{"id": str(i), "response": "x"} for i in range(2)], chunk_size=1)
    assert len(results) == 2 and client.library_version == "v2"
    assert [b.get("library_version") for b in server.bodies][-1] == "v2"  # the v1 chunk was scored again
    await client.aclose()
