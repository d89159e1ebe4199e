"""Hostile input: one client's odd text or number never fails another client's request, and nothing
answers 5xx. A real service (real embedder, scripted judge) under a real uvicorn server, driven over HTTP
with raw JSON bodies, as a client in another language would send them."""

from __future__ import annotations

import asyncio
import json
import os

import httpx
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import ScriptedJudge, serving_in_thread
from scribe_rm.api.app import create_app
from scribe_rm.settings import Settings

EXAMPLES = int(os.environ.get("SCRIBE_HOSTILE_EXAMPLES", "40"))
LONE_SURROGATE = "\ud800"
EMBEDDER_POISON = "EMBEDDER-POISON"  # the patched embedder raises on any batch holding this


@pytest.fixture(scope="module")
def app():
    return create_app(Settings(max_items=16, max_steps_per_item=16, default_deadline_s=20), judge=ScriptedJudge())


@pytest.fixture(scope="module")
def base_url(app):
    with serving_in_thread(app) as url:
        yield url


@pytest.fixture
def poisoned_embedder(app):
    """The embedder raises, for the whole batch, on a text no sanitizing can foresee (defence in depth)."""
    embedder = app.state.engine.embedder
    real = embedder.encode_sync

    def encode_sync(texts):
        if any(EMBEDDER_POISON in t for t in texts):
            raise TypeError("TextEncodeInput must be Union[TextInputSequence, ...]")
        return real(texts)

    embedder.encode_sync = encode_sync
    yield
    del embedder.encode_sync  # back to the class method


def raw(body: dict, **literals: str) -> bytes:
    """JSON with ASCII escapes (a lone surrogate travels as \\ud800, legal JSON); each placeholder string
    "__NAME__" is replaced by the literal given for NAME (e.g. NaN, Infinity, 1e400)."""
    text = json.dumps(body)
    for name, literal in literals.items():
        text = text.replace(f'"__{name}__"', literal)
    return text.encode()


async def post_all(base_url: str, requests: list[tuple[str, bytes]]) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        return await asyncio.gather(*(client.post(path, content=body, headers={"content-type": "application/json"})
                                      for path, body in requests))


def valid_item(n: int) -> dict:
    return {"id": f"valid-{n}", "question": "Solve 2x + 3 = 11.", "outcome": 1.0,
            "steps": [{"text": f"Subtract 3 from both sides: 2x = 8 (variant {n})."}, {"text": "Divide by 2: x = 4."}]}


def assert_all_ok(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text[:300]
    assert [r["status"] for r in response.json()["results"]] == ["ok"] * len(response.json()["results"])


def test_a_lone_surrogate_among_40_concurrent_requests_fails_nobody(base_url):
    bad = {"items": [{"id": "bad", "steps": [{"text": f"Add the two parts {LONE_SURROGATE} together."}]}]}
    requests = [("/score", raw({"items": [valid_item(n)]})) for n in range(39)]
    requests.insert(17, ("/score", raw(bad)))
    responses = asyncio.run(post_all(base_url, requests))
    for response in responses:
        assert_all_ok(response)  # the bad one too: its text was cleaned, then scored


@pytest.mark.parametrize("path, body", [
    ("/score", {"items": [{"id": f"x{LONE_SURROGATE}", "question": f"q{LONE_SURROGATE}",
                           "response": f"Step 1: a{LONE_SURROGATE}\n\nStep 2: b\x00c"}]}),
    ("/route", {"items": [{"text": f"Check the bound {LONE_SURROGATE} again"}]}),
    ("/compat/openrlhf/get_reward", {"query": [f"<|im_start|>user\nq<|im_end|><|im_start|>assistant\nx = 1{LONE_SURROGATE}"],
                                     "prompts": ["<|im_start|>user\nq<|im_end|>"], "labels": [None]}),
])
def test_a_lone_surrogate_or_nul_alone_is_cleaned_and_served_on_every_route(base_url, path, body):
    response = asyncio.run(post_all(base_url, [(path, raw(body))]))[0]
    assert response.status_code == 200, response.text[:300]
    if path == "/score":
        result = response.json()["results"][0]
        assert result["status"] == "ok" and result["id"] == "x\ufffd"
    if path.startswith("/compat"):
        assert response.json()["extra_logs"]["scribe_judge_ok"] == [1.0]


def test_an_input_the_embedder_rejects_fails_only_its_own_item(base_url, poisoned_embedder):
    mixed = {"items": [valid_item(0), {"id": "poisoned", "steps": [{"text": "fine"}, {"text": EMBEDDER_POISON}]},
                       valid_item(1)]}
    requests = [("/score", raw({"items": [valid_item(n)]})) for n in range(10, 30)] + [("/score", raw(mixed))]
    responses = asyncio.run(post_all(base_url, requests))
    for response in responses[:-1]:
        assert_all_ok(response)
    results = responses[-1].json()["results"]
    assert [r["status"] for r in results] == ["ok", "invalid", "ok"]
    assert results[1]["reward"] is None and "step 1 could not be routed: TypeError" in results[1]["error"]
    route = asyncio.run(post_all(base_url, [("/route", raw({"items": [{"text": "ok"}, {"text": EMBEDDER_POISON}]}))]))[0]
    assert route.status_code == 422 and "item 1" in route.json()["detail"]


NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e400"]
BODIES = {
    "/score": {"items": [{"id": "a", "question": "q", "outcome": 1.0, "steps": [{"text": "x = 1"}]}],
               "weights": {"outcome": 0.7, "process": 0.3}, "deadline_s": 30, "request_id": "r"},
    "/route": {"items": [{"text": "Check the answer.", "domain": "math"}]},
    "/compat/openrlhf/get_reward": {"query": ["q x = 1"], "prompts": ["q"], "labels": [1]},
}


def leaf_paths(value, path=()):
    if isinstance(value, dict):
        for key, child in value.items():
            yield from leaf_paths(child, (*path, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from leaf_paths(child, (*path, i))
    else:
        yield path


def replaced(body, path, new):
    body = json.loads(json.dumps(body))
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = new
    return body


@pytest.mark.parametrize("path", list(BODIES))
def test_non_finite_numbers_in_every_field_answer_422_with_the_value_shown(base_url, path):
    body = BODIES[path]
    requests, where = [], []
    for leaf in leaf_paths(body):
        for literal in NON_FINITE:
            requests.append((path, raw(replaced(body, leaf, "__X__"), X=literal)))
            where.append((leaf, literal))
    responses = asyncio.run(post_all(base_url, requests))
    for (leaf, literal), response in zip(where, responses):
        if path.startswith("/compat") and leaf[0] == "labels":
            assert response.status_code == 200, (leaf, literal)  # labels are the trainer's, passed through
            continue
        assert response.status_code == 422, (leaf, literal, response.status_code, response.text[:200])
        detail = response.json()["detail"]  # strict JSON: the body parsed
        shown = json.dumps(detail)
        assert any(word in shown for word in ("nan", "inf", "finite", "valid string", "valid number")), shown[:300]
        assert any(error.get("loc", [])[-1] == leaf[-1] for error in detail if isinstance(error, dict)), (leaf, shown)


@pytest.mark.parametrize("body, status, words", [
    ({"query": ["a", "b"], "prompts": ["a"], "labels": []}, 422, "prompts has 1 entries but query has 2"),
    ({"query": ["a"], "prompts": ["a"], "labels": [1, 2]}, 422, "labels has 2 entries but query has 1"),
    ({"query": "a single string", "prompts": []}, 422, "valid list"),
    ({"query": [1, 2]}, 422, "valid string"),
    ({"query": [], "prompts": [], "labels": []}, 200, '"rewards":[]'),
])
def test_openrlhf_route_validates_its_shapes(base_url, body, status, words):
    response = asyncio.run(post_all(base_url, [("/compat/openrlhf/get_reward", raw(body))]))[0]
    assert response.status_code == status, response.text[:300]
    assert words in response.text


HOSTILE_CHARS = st.one_of(
    st.characters(codec=None, categories=["Cs"]),  # lone surrogates
    st.sampled_from(["\x00", "\u0301", "\u202e", "\u200f", "\ufeff", "\uffff", "\U0010ffff", "\u200d", "\x1b"]),
    st.characters(),
)
HOSTILE_TEXT = st.one_of(
    st.text(HOSTILE_CHARS, min_size=1, max_size=200),
    st.builds(lambda c, n: c * n, st.text(HOSTILE_CHARS, min_size=1, max_size=3), st.integers(20_000, 50_000)),
)
HOSTILE_NUMBER = st.sampled_from(NON_FINITE + ["1e308", "-0.0", "123456789012345678901234567890"])


@st.composite
def hostile_score_body(draw) -> bytes:
    text = draw(HOSTILE_TEXT)
    where = draw(st.sampled_from(["step", "question", "response", "subgoal", "id", "metadata", "message"]))
    item = {"id": "hostile", "question": "q", "steps": [{"text": "A plain step."}]}
    if where == "step":
        item["steps"] = [{"text": text}]
    elif where == "question":
        item["question"] = text
    elif where == "response":
        item.pop("steps")
        item["response"] = text
    elif where == "subgoal":
        item["steps"] = [{"text": "A plain step.", "subgoal": text}]
    elif where == "id":
        item["id"] = text[:256]
    elif where == "metadata":
        item["metadata"] = {text[:50]: text}
    else:
        item.pop("steps")
        item["messages"] = [{"role": "user", "content": text}, {"role": "assistant", "content": text,
                            "tool_calls": [{"function": {"name": text[:30], "arguments": {text[:20]: text}}}]}]
    if draw(st.booleans()):
        item["outcome"] = "__N__"
    return raw({"items": [item]}, N=draw(HOSTILE_NUMBER))


@given(hostile=hostile_score_body(), route_text=HOSTILE_TEXT)
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_property_hostile_bodies_never_5xx_and_valid_neighbours_always_succeed(base_url, hostile, route_text):
    requests = [("/score", hostile), ("/route", raw({"items": [{"text": route_text}]})),
                ("/compat/openrlhf/get_reward", raw({"query": [route_text], "prompts": [""]}))]
    requests += [("/score", raw({"items": [valid_item(n)]})) for n in range(3)]
    responses = asyncio.run(post_all(base_url, requests))
    for (path, _), response in zip(requests, responses):
        assert response.status_code < 500, (path, response.status_code, response.text[:300])
        response.json()  # every answer is strict JSON
    for response in responses[3:]:
        assert_all_ok(response)
