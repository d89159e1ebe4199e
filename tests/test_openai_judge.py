"""The `openai` backend's request shape and error paths against a small scripted HTTP server.
Its happy path runs against a real vLLM server in test_vllm_integration.py."""

import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import logprobs_for
from scribe_rm.pipeline.judges import JudgeError
from scribe_rm.pipeline.judges.openai import OpenAIJudge
from scribe_rm.pipeline.scorer import Scorer
from scribe_rm.pipeline.schemas import ScoreRequest
from scribe_rm.settings import Settings

MESSAGES = [{"role": "system", "content": "card"}, {"role": "user", "content": "step"}]


def completion(pairs):
    top = [{"token": t, "logprob": lp} for t, lp in pairs]
    return {"choices": [{"logprobs": {"content": [{"token": pairs[0][0], "logprob": pairs[0][1], "top_logprobs": top}]}}]}


GOOD = completion(list(zip("0123", logprobs_for(2))))


class ScriptedServer:
    """Answers each POST with the next scripted (status, body, delay); repeats the last one."""

    def __init__(self):
        self.script: list[tuple[int, object, float]] = []
        self.requests: list[tuple[str, dict]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, status, body, delay):
                time.sleep(delay)
                payload = body if isinstance(body, bytes) else json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_GET(self):
                self._answer(200, {}, 0)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                outer.requests.append((self.path, body))
                if self.path == "/tokenize":
                    self._answer(200, {"tokens": [32 + "0123".index(body["prompt"])]}, 0)
                    return
                step = outer.script.pop(0) if len(outer.script) > 1 else outer.script[0]
                self._answer(*step)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def chat_calls(self):
        return [b for p, b in self.requests if p == "/v1/chat/completions"]


@pytest.fixture
def server():
    s = ScriptedServer()
    yield s
    s.httpd.shutdown()


def judge_for(server, **overrides) -> OpenAIJudge:
    settings = Settings(judge_backend="openai", judge_base_urls=[server.url], judge_retries=2,
                        judge_timeout_s=1.0, **overrides)
    return OpenAIJudge(settings.openai_judge_config())


async def test_request_fields_follow_current_vllm(server):
    server.script = [(200, GOOD, 0)]
    judge = judge_for(server)
    await judge.start()
    logprobs = await judge.label_logprobs(MESSAGES)
    assert logprobs == pytest.approx(logprobs_for(2))
    (body,) = server.chat_calls()
    assert body["logprob_token_ids"] == [32, 33, 34, 35]  # resolved through /tokenize
    assert body["max_completion_tokens"] == 1 and body["temperature"] == 0 and body["seed"] == 0
    assert body["logprobs"] is True and body["chat_template_kwargs"] == {"enable_thinking": False}
    assert not [k for k in body if k.startswith("guided_") or k == "max_tokens"]
    assert "structured_outputs" not in body
    await judge.aclose()


async def test_constrained_and_top_logprobs_modes(server):
    server.script = [(200, GOOD, 0)]
    judge = judge_for(server, judge_score_mode="top_logprobs", judge_constrained=True)
    await judge.label_logprobs(MESSAGES)
    (body,) = server.chat_calls()
    assert body["structured_outputs"] == {"choice": ["0", "1", "2", "3"]}
    assert body["top_logprobs"] == 20 and "logprob_token_ids" not in body
    assert not [p for p, _ in server.requests if p == "/tokenize"]
    await judge.aclose()


@pytest.mark.parametrize("status", [500, 502, 503, 429, 408])
async def test_retryable_statuses_are_retried(server, status):
    server.script = [(status, {"error": "busy"}, 0), (status, {"error": "busy"}, 0), (200, GOOD, 0)]
    judge = judge_for(server, judge_score_token_ids=[32, 33, 34, 35])
    assert await judge.label_logprobs(MESSAGES) == pytest.approx(logprobs_for(2))
    assert len(server.chat_calls()) == 3
    await judge.aclose()


async def test_client_errors_are_not_retried(server):
    server.script = [(400, {"error": "bad request: prompt too long"}, 0), (200, GOOD, 0)]
    judge = judge_for(server, judge_score_token_ids=[32, 33, 34, 35])
    with pytest.raises(JudgeError, match="400.*prompt too long"):
        await judge.label_logprobs(MESSAGES)
    assert len(server.chat_calls()) == 1
    await judge.aclose()


@pytest.mark.parametrize("body, words", [
    (b"not json{", "not JSON"),
    ({"choices": [{"message": {"content": "2"}}]}, "no logprobs"),
    ({"choices": []}, "no logprobs"),
    (completion([("A", -0.1), ("B", -2.0)]), "no logprob to any label"),
])
async def test_malformed_replies_are_judge_errors(server, body, words):
    server.script = [(200, body, 0)]
    judge = judge_for(server, judge_score_token_ids=[32, 33, 34, 35])
    with pytest.raises(JudgeError, match=words):
        await judge.label_logprobs(MESSAGES)
    await judge.aclose()


async def test_partial_labels_are_minus_infinity(server):
    server.script = [(200, completion([("2", -0.2), (" 3", -1.8), ("A", -3.0)]), 0)]
    judge = judge_for(server, judge_score_token_ids=[32, 33, 34, 35])
    assert await judge.label_logprobs(MESSAGES) == [-math.inf, -math.inf, -0.2, -1.8]
    await judge.aclose()


async def test_slow_server_times_out_after_retries(server):
    server.script = [(200, GOOD, 3.0)]
    judge = judge_for(server, judge_score_token_ids=[32, 33, 34, 35])
    started = time.monotonic()
    with pytest.raises(JudgeError, match="timed out"):
        await judge.label_logprobs(MESSAGES)
    assert len(server.chat_calls()) == 3 and time.monotonic() - started < 3 * 1.0 + 3
    await judge.aclose()


async def test_unreachable_server():
    judge = OpenAIJudge(Settings(judge_backend="openai", judge_base_urls=["http://127.0.0.1:9"], judge_retries=1,
                                 judge_score_token_ids=[32, 33, 34, 35]).openai_judge_config())
    assert not await judge.ready()
    with pytest.raises(JudgeError, match="unreachable"):
        await judge.label_logprobs(MESSAGES)
    await judge.aclose()


async def test_scorer_with_a_failing_judge_marks_items_without_hanging(server, library, router):
    server.script = [(503, {"error": "down"}, 0)]
    settings = Settings(judge_backend="openai", judge_base_urls=[server.url], judge_retries=1,
                        judge_score_token_ids=[32, 33, 34, 35])
    scorer = Scorer(settings.scorer_config(), library, router, OpenAIJudge(settings.openai_judge_config()))
    request = ScoreRequest.model_validate({"items": [{"id": "a", "steps": [{"text": "x = 2"}]}], "deadline_s": 10})
    started = time.monotonic()
    (result,) = (await scorer.score(request)).results
    assert time.monotonic() - started < 10
    assert result.status == "judge_error" and result.reward is None and "503" in result.error
