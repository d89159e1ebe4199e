import json
import time

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from conftest import ScriptedJudge
from scribe_rm.api.app import create_app
from scribe_rm.settings import Settings


def wait_ready(client: TestClient, timeout_s: float = 180) -> None:  # a cold anchor cache: ~70 s
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if client.get("/readyz").status_code == 200:
            return
        time.sleep(0.2)
    raise AssertionError(f"not ready: {client.get('/readyz').json()}")


@pytest.fixture(scope="module")
def client():
    settings = Settings(max_items=4, max_route_texts=4, max_steps_per_item=6, max_step_chars=500,
                        max_body_bytes=20_000)
    with TestClient(create_app(settings, judge=ScriptedJudge())) as c:
        wait_ready(c)
        yield c


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "alive"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"embedder": True, "router": True, "judge": True}


def test_readyz_is_503_while_loading():
    app = create_app(Settings(), judge=ScriptedJudge())
    with TestClient(app) as c:
        first = c.get("/readyz")  # the embedder takes seconds to load; this answers at once
        assert first.status_code == 503 and first.json()["ready"] is False
        assert c.get("/healthz").status_code == 200
        response = c.post("/score", json={"items": [{"id": "a", "response": "x"}]})
        assert response.status_code in (200, 503)
        if response.status_code == 503:
            assert response.headers["Retry-After"]


def test_prototypes_list_and_detail(client):
    listing = client.get("/prototypes").json()
    assert len(listing["prototypes"]) >= 36 and listing["library_version"]
    detail = client.get("/prototypes/math.bound_conclusion").json()
    assert detail["prototype"]["rubric"]["2"].startswith("Correct conclusion")
    assert detail["library_version"] == listing["library_version"]
    missing = client.get("/prototypes/math.nope")
    assert missing.status_code == 404 and "math.nope" in missing.json()["detail"]


def test_route_batch(client):
    body = {"items": [{"text": "Plug the answer back into both original equations to verify."},
                      {"text": "I like turtles and sunny afternoons."},
                      {"text": "whatever", "prototype_id": "tool.abstain"}]}
    results = client.post("/route", json=body).json()["results"]
    assert results[0]["prototype_id"] == "math.substitution_check" and not results[0]["fallback"]
    assert len(results[0]["alternatives"]) == 3
    assert results[1]["fallback"] and results[1]["prototype_id"] == "general.step_validity"
    assert results[2]["prototype_id"] == "tool.abstain" and results[2]["similarity"] is None


@pytest.mark.parametrize("path, body, status, words", [
    ("/route", {"items": [{"text": "x", "prototype_id": "no.such"}]}, 422, "unknown prototype_id 'no.such'"),
    ("/route", {"items": [{"text": ""}]}, 422, "at least 1 character"),
    ("/route", {"items": []}, 422, "at least 1 item"),
    ("/route", {"items": [{"text": "a"}] * 5}, 422, "max_route_texts=4"),
    ("/route", {"items": [{"text": "a" * 501}]}, 422, "max_step_chars=500"),
    ("/route", {"items": [{"text": "a"}], "extra": 1}, 422, "Extra inputs"),
    ("/score", {"items": [{"id": "a"}]}, 422, "exactly one of steps, response or messages"),
    ("/score", {"items": [{"id": "a", "response": "x", "unknown": 1}]}, 422, "Extra inputs"),
    ("/score", {"items": [{"id": "a", "response": "x"}] * 5}, 422, "max_items=4"),
    ("/score", {"items": [{"id": "a", "response": "x"}], "split": {"mode": "regex", "pattern": "("}}, 422,
     "not a valid regex"),
    ("/score", {"items": [{"id": "a", "steps": [{"text": "x", "prototype_id": "no.such"}]}]}, 422,
     "item 'a' step 0: unknown prototype_id 'no.such'"),
    ("/score", {"items": [{"id": "a", "response": "\n\n".join(["s"] * 7)}]}, 422, "max_steps_per_item=6"),
    ("/score", {"items": [{"id": "a", "response": "x"}], "deadline_s": -1}, 422, "greater than 0"),
    ("/score", {"items": [{"id": "a", "response": "x"}], "aggregation": "median"}, 422, "mean"),
])
def test_bad_input_gets_a_clear_4xx(client, path, body, status, words):
    response = client.post(path, json=body)
    assert response.status_code == status
    assert words in json.dumps(response.json()["detail"])


def test_body_over_the_limit_is_413(client):
    big = {"items": [{"id": "a", "response": "x" * 30_000}]}
    response = client.post("/score", json=big)
    assert response.status_code == 413 and "max_body_bytes=20000" in response.json()["detail"]


def test_chunked_body_over_the_limit_is_413(client):
    def chunks():
        yield b'{"items": [{"id": "a", "response": "'
        for _ in range(30):
            yield b"x" * 1000
        yield b'"}]}'
    response = client.post("/score", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_score_examples_end_to_end(client):
    body = json.loads(open("examples/score_request.json").read())
    response = client.post("/score", json=body)
    assert response.status_code == 200
    data = response.json()
    assert [r["id"] for r in data["results"]] == [i["id"] for i in body["items"]]
    for result in data["results"]:
        assert result["status"] == "ok" and 0 <= result["reward"] <= 1 and result["n_steps"] == len(result["steps"])
    stepwise = data["results"][2]
    response_text = body["items"][2]["response"]
    assert [response_text[s["start"]:s["end"]][:6] for s in stepwise["steps"]] == ["Step 1", "Step 2", "Step 3"]
    assert data["judge_model"] == "scripted-judge" and data["weights"] == {"outcome": 0.7, "process": 0.3}


def test_agent_example_end_to_end(client):
    body = json.loads(open("examples/agent_request.json").read())
    data = client.post("/score", json=body).json()
    (result,) = data["results"]
    # 6 assistant turns; the last reports the exchange and asks if anything else is needed: two steps
    assert result["status"] == "ok" and result["n_steps"] > 6
    cards = [s["prototype_id"] for s in result["steps"]]
    assert cards[0] == "agent.user_authentication" and cards[-1] == "agent.conversation_closing", cards
    assert all(c.split(".")[0] in ("agent", "tool", "general") for c in cards)  # domain agent: no math cards
    last_turn = body["items"][0]["messages"][-1]["content"]
    report, close = result["steps"][-2:]
    assert report["message_indices"] == close["message_indices"] == [len(body["items"][0]["messages"]) - 1]
    assert last_turn[close["start"]:close["end"]] == "Is there anything else I can help you with?"
    first = data["cache"]
    assert first["route_misses"] > 6  # the turns, and the parts of their cuts
    again = client.post("/score", json=body).json()["cache"]
    looked_up = first["route_misses"] + first["route_hits"]
    assert again["route_hits"] == looked_up and again["route_misses"] == 0  # routing decisions were kept


def test_openapi_documents_every_route(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/healthz", "/readyz", "/prototypes", "/prototypes/{prototype_id}", "/route", "/score"} <= set(paths)
    assert client.get("/docs").status_code == 200


def test_request_id_is_echoed_and_reported(client):
    given = client.post("/route", json={"items": [{"text": "x"}]}, headers={"X-Request-ID": "trace-123"})
    assert given.headers["x-request-id"] == "trace-123"
    made = client.get("/healthz").headers["x-request-id"]
    assert len(made) == 32
    scored = client.post("/score", json={"items": [{"id": "a", "response": "GOOD"}]}, headers={"X-Request-ID": "r-9"})
    assert scored.json()["request_id"] == "r-9" == scored.headers["x-request-id"]
    assert client.post("/score", json={"items": []}, headers={"X-Request-ID": "bad-1"}).headers["x-request-id"] == "bad-1"


def test_metrics_count_requests_items_and_judging(client):
    client.post("/score", json={"items": [{"id": "m1", "response": "GOOD metric step"},
                                          {"id": "m2", "response": "FAIL metric step"}]})
    text = client.get("/metrics").text
    assert 'http_requests_total{handler="/score",method="POST",status="200"}' in text
    assert 'http_request_duration_seconds_bucket{handler="/score"' in text
    for name in ('scribe_items_total{status="ok"}', 'scribe_items_total{status="judge_error"}',
                 "scribe_steps_total", 'scribe_judge_latency_seconds_count{backend="local"}',
                 'scribe_judge_errors_total{backend="local"}', 'scribe_cache_lookups_total{result="miss"}',
                 "scribe_route_similarity_bucket", "scribe_route_fallback_total", "scribe_judge_inflight",
                 'scribe_step_score_bucket{le="3.0",prototype=', "scribe_label_mass_bucket",
                 'scribe_build_info{backend="local",judge_model="scripted-judge"'):
        assert name in text, name


def test_json_logs_carry_the_request_id(capsys):
    import logging

    from scribe_rm.blocks.logs import REQUEST_ID, configure_logging

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging(json_format=True)  # binds a handler to capsys's stderr
        token = REQUEST_ID.set("abc")
        logging.getLogger("scribe_rm.test").info("hello %s", "world")
        REQUEST_ID.reset(token)
        line = capsys.readouterr().err.strip().splitlines()[-1]
    finally:  # that stream closes with this test: later log lines must not go to it
        root.handlers[:], root.level = saved[0], saved[1]
    record = json.loads(line)
    assert record["message"] == "hello world" and record["request_id"] == "abc" and record["level"] == "INFO"


def test_the_share_of_steps_the_second_routing_tier_decided_is_reported(client):
    steps = [{"text": "Reduce the expression modulo 7 using Fermat's little theorem."},
             {"text": "I like turtles and sunny afternoons."}]
    body = client.post("/score", json={"items": [{"id": "t", "question": "Q", "steps": steps}]}).json()
    assert body["cache"]["route_second_tier"] == 1  # the off-topic step: the static tier alone was not clear
    text = client.get("/metrics").text
    assert 'scribe_route_decided_total{space="static"}' in text
    assert 'scribe_route_decided_total{space="static+mpnet"}' in text


def embedded_texts(client) -> dict[str, float]:
    families = text_string_to_metric_families(client.get("/metrics").text)
    return {sample.labels["space"]: sample.value for family in families if family.name == "scribe_route_embedded"
            for sample in family.samples if sample.name == "scribe_route_embedded_total"}


def test_metrics_count_the_texts_each_routing_space_embedded(client):
    steps = [{"text": "Reduce 2^100 modulo 7 with Fermat's little theorem."},
             {"text": "I like tortoises and foggy evenings by the sea."}]
    before = embedded_texts(client)
    body = client.post("/score", json={"items": [{"id": "t", "question": "Q", "steps": steps}]}).json()
    after = embedded_texts(client)
    assert body["cache"]["route_second_tier"] == 1  # the transformer embeds the unclear step alone
    assert after["static"] - before.get("static", 0) == 2 and after["mpnet"] - before.get("mpnet", 0) == 1


def test_an_item_without_a_domain_is_routed_in_the_scope_its_steps_point_to(client):
    from conftest import REPO

    item = json.loads((REPO / "examples" / "agent_request.json").read_text())["items"][0]
    assert item["domain"] == "agent"
    auto = client.post("/score", json={"items": [{**item, "domain": None}]}).json()["results"][0]
    given = client.post("/score", json={"items": [item]}).json()["results"][0]
    assert (auto["scope"], auto["scope_source"]) == ("agent", "auto")
    assert (given["scope"], given["scope_source"]) == ("agent", "given")
    assert [s["prototype_id"] for s in auto["steps"]] == [s["prototype_id"] for s in given["steps"]]
    routed = client.post("/route", json={"items": [{"text": "Factor 84 into primes."}]}).json()["results"][0]
    assert (routed["scope"], routed["scope_source"]) == ("all", "auto")  # one step: its route over every card
    metrics = client.get("/metrics").text
    assert 'scribe_route_scopes_total{scope="agent",source="auto"}' in metrics
    assert 'scribe_route_scopes_total{scope="agent",source="given"}' in metrics
