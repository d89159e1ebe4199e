"""Schemathesis against the OpenAPI schema: generated requests on every operation, zero 5xx
(503 is the documented not-ready/overload answer). Uses schemathesis's Hypothesis strategies directly:
its pytest plugin does not run under pytest 9."""

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from conftest import ScriptedJudge, serving_in_thread
from scribe_rm.api.app import create_app
from scribe_rm.settings import Settings

# 500 cases per operation: about 3,000 requests over the 13 operations (those without parameters need one)
EXAMPLES = int(os.environ.get("SCRIBE_FUZZ_EXAMPLES", "500"))


@pytest.fixture(scope="module")
def base_url():
    app = create_app(Settings(max_items=16, max_steps_per_item=16, default_deadline_s=10), judge=ScriptedJudge())
    with serving_in_thread(app) as url:
        yield url


def operations(base_url):
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    return [result.ok() for result in schema.get_all_operations()]


def test_every_operation_is_fuzzed_without_server_errors(base_url):
    ops = operations(base_url)
    assert {f"{op.method.upper()} {op.path}" for op in ops} >= {
        "POST /score", "POST /route", "GET /prototypes", "GET /prototypes/{prototype_id}", "GET /healthz",
        "GET /readyz", "GET /metrics", "POST /compat/openrlhf/get_reward"}
    statuses: dict[str, set[int]] = {}
    calls = []
    for op in ops:
        @given(case=op.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case):
            response = case.call(base_url=base_url)
            calls.append(response.status_code)
            statuses.setdefault(op.path, set()).add(response.status_code)
            assert response.status_code < 500 or response.status_code == 503, (
                case.method, case.path, response.status_code, response.text[:300])
            if response.status_code >= 400:
                assert "detail" in response.json()  # every error explains itself

        run()
    assert 200 in statuses["/score"] and 422 in statuses["/score"]  # the fuzzer reached both sides
    assert len(calls) >= 4 * EXAMPLES, len(calls)  # the operations that take input each ran their cases
    print(f"fuzzed {len(calls)} requests over {len(ops)} operations: {sorted(statuses.items())}")
