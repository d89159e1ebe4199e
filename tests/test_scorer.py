import asyncio
import time

import pytest

from conftest import ScriptedJudge
from scribe_rm.pipeline.errors import InvalidRequest, Overloaded
from scribe_rm.pipeline.scorer import Scorer
from scribe_rm.pipeline.schemas import ScoreRequest


def make_scorer(settings, library, router, judge=None, **overrides):
    s = settings.model_copy(update=overrides)
    return Scorer(s.scorer_config(), library, router, judge or ScriptedJudge())


def request(*items, **options):
    return ScoreRequest.model_validate({"items": list(items), **options})


def steps_item(item_id, *texts, **extra):
    return {"id": item_id, "question": "Q", "steps": [{"text": t} for t in texts], **extra}


async def test_ok_item_gets_reward_from_step_scores(settings, library, router):
    scorer = make_scorer(settings, library, router)
    response = await scorer.score(request(steps_item("a", "GOOD step", "BAD step"), steps_item("b", "GOOD", "GOOD",
                                                                                             outcome=1.0)))
    a, b = response.results
    assert a.status == "ok" and a.n_steps == 2
    assert a.steps[0].label == 3 and a.steps[1].label == 0
    assert a.steps[0].score == pytest.approx(0 * 0.1 + 1 * 0.1 + 2 * 0.1 + 3 * 0.7)
    expected_process = (a.steps[0].score + a.steps[1].score) / 6
    assert a.process_reward == pytest.approx(expected_process, abs=1e-6)
    assert a.reward == a.process_reward  # no outcome: the process reward
    assert b.reward == pytest.approx(0.7 * 1.0 + 0.3 * b.process_reward, abs=1e-6)
    assert response.judge_model == "scripted-judge" and response.library_version == library.version
    for step in a.steps:
        assert sum(step.probabilities) == pytest.approx(1.0)


async def test_request_aggregation_and_weights_override_defaults(settings, library, router):
    scorer = make_scorer(settings, library, router)
    r = await scorer.score(request(steps_item("a", "GOOD", "BAD", outcome=0.0), aggregation="min",
                                   weights={"outcome": 0.5, "process": 0.5}))
    (item,) = r.results
    assert item.process_reward == pytest.approx(min(s.score for s in item.steps) / 3, abs=1e-6)
    assert item.reward == pytest.approx(0.5 * item.process_reward, abs=1e-6)
    assert r.aggregation == "min" and r.weights.outcome == 0.5


async def test_judge_failure_marks_item_and_spares_others(settings, library, router):
    scorer = make_scorer(settings, library, router)
    r = await scorer.score(request(steps_item("bad", "GOOD", "FAIL here"), steps_item("good", "GOOD")))
    bad, good = r.results
    assert bad.status == "judge_error" and bad.reward is None and "scripted failure" in bad.error
    assert bad.steps[0].score is not None and bad.steps[1].score is None and bad.steps[1].error
    assert good.status == "ok" and good.reward is not None


async def test_deadline_returns_in_time_with_timeout_status(settings, library, router):
    judge = ScriptedJudge(slow_s=30)
    scorer = make_scorer(settings, library, router, judge)
    started = time.monotonic()
    r = await scorer.score(request(steps_item("slow", "GOOD", "SLOW step"), steps_item("fast", "GOOD"),
                                   deadline_s=1.5))
    elapsed = time.monotonic() - started
    assert elapsed < 1.5 + 0.3
    slow, fast = r.results
    assert slow.status == "timeout" and slow.reward is None and "1 of 2 steps unjudged" in slow.error
    assert slow.steps[0].score is not None and slow.steps[1].score is None
    assert fast.status == "ok"
    await asyncio.sleep(0.05)
    assert judge.cancelled == 1 and scorer.pending_judgements == 0  # abandoned work is cancelled


async def test_invalid_item_is_reported_not_dropped(settings, library, router):
    scorer = make_scorer(settings, library, router)
    r = await scorer.score(request({"id": "empty", "response": "   \n\n  "}, steps_item("fine", "GOOD")))
    empty, fine = r.results
    assert empty.status == "invalid" and "nothing to score" in empty.error and empty.reward is None
    assert fine.status == "ok"


async def test_identical_steps_are_judged_once_and_cached(settings, library, router):
    judge = ScriptedJudge()
    scorer = make_scorer(settings, library, router, judge)
    group = [steps_item(f"rollout-{i}", "GOOD shared first step", f"GOOD step {i % 2}") for i in range(8)]
    first = await scorer.score(request(*group))
    assert judge.calls == 3  # one shared first step, two distinct second steps
    assert first.cache.misses == 3 and first.cache.deduplicated == 13 and first.cache.hits == 0
    second = await scorer.score(request(*group))
    assert judge.calls == 3
    assert second.cache.hits == 3 and all(s.cache_hit for item in second.results for s in item.steps)
    assert [i.reward for i in first.results] == [i.reward for i in second.results]


async def test_concurrent_requests_share_in_flight_judgements(settings, library, router):
    judge = ScriptedJudge(slow_s=0.3)
    scorer = make_scorer(settings, library, router, judge)
    same = request(steps_item("x", "SLOW GOOD"))
    a, b = await asyncio.gather(scorer.score(same), scorer.score(same))
    assert judge.calls == 1
    assert a.results[0].status == b.results[0].status == "ok"


async def test_explicit_prototype_and_unknown_id(settings, library, router):
    scorer = make_scorer(settings, library, router)
    r = await scorer.score(request({"id": "e", "steps": [{"text": "GOOD", "prototype_id": "tool.abstain"}]}))
    step = r.results[0].steps[0]
    assert step.prototype_id == "tool.abstain" and step.similarity is None and not step.fallback
    with pytest.raises(InvalidRequest, match="unknown prototype_id 'nope.card'"):
        scorer.prepare(request({"id": "e", "steps": [{"text": "x", "prototype_id": "nope.card"}]}))


async def test_limits_name_the_item_and_the_limit(settings, library, router):
    scorer = make_scorer(settings, library, router, max_items=2, max_steps_per_item=3, max_step_chars=10)
    with pytest.raises(InvalidRequest, match="max_items=2"):
        scorer.prepare(request(*[steps_item(str(i), "a") for i in range(3)]))
    with pytest.raises(InvalidRequest, match="item 'long' has 4 steps > max_steps_per_item=3"):
        scorer.prepare(request(steps_item("long", "a", "b", "c", "d")))
    with pytest.raises(InvalidRequest, match="item 'wide' step 0 has 11 characters > max_step_chars=10"):
        scorer.prepare(request(steps_item("wide", "x" * 11)))


async def test_overload_refuses_new_work(settings, library, router):
    judge = ScriptedJudge(slow_s=0.5)
    scorer = make_scorer(settings, library, router, judge, judge_max_pending=2)
    first = asyncio.create_task(scorer.score(request(steps_item("a", "SLOW 1", "SLOW 2"))))
    while judge.calls < 2:  # both of its judgements are pending (routing them may take a moment)
        await asyncio.sleep(0.01)
    with pytest.raises(Overloaded, match="judge_max_pending=2"):
        await scorer.score(request(steps_item("b", "SLOW 3")))
    assert (await first).results[0].status == "ok"


async def test_messages_item_is_scored_per_tool_turn(settings, library, router):
    scorer = make_scorer(settings, library, router)
    item = {"id": "m", "messages": [
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "content": "{\"temp\": 21}"},
        {"role": "assistant", "content": "GOOD: it is 21 degrees."}]}
    r = await scorer.score(request(item))
    (result,) = r.results
    assert result.status == "ok" and result.n_steps == 2
    assert [s.message_indices for s in result.steps] == [[1, 2], [3]]


AIRLINE_POLICY = ("You are an airline agent. Authenticate the user (user id and last name) before any account "
                  "action. Before any change to a booking, list the details and get an explicit yes.")
TOOLS = [{"type": "function", "function": {"name": "get_user_details", "description": "Look up a user.",
                                           "parameters": {"type": "object", "properties": {"user_id": {"type": "string"}}}}},
         {"type": "function", "function": {"name": "cancel_reservation", "description": "Cancel a reservation.",
                                           "parameters": {"type": "object",
                                                          "properties": {"reservation_id": {"type": "string"}}}}}]


def agent_item(item_id: str, user_text: str) -> dict:
    return {"id": item_id, "tools": TOOLS, "messages": [
        {"role": "system", "content": AIRLINE_POLICY},
        {"role": "user", "content": user_text},
        {"role": "assistant", "content": "Let me look up your account.",
         "tool_calls": [{"id": "c1", "function": {"name": "get_user_details", "arguments": '{"user_id": "mia_42"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": '{"name": "Mia Li", "reservations": ["ABC123"]}'},
        {"role": "assistant", "content": "I found reservation ABC123: shall I cancel it (please answer yes)?"},
    ]}  # one sentence: a turn of several may be scored as two steps (test_turn_split.py)


async def test_the_judge_sees_the_called_tools_schema_and_the_policy_after_a_card_prefix_shared_per_card(
        settings, library, router):
    judge = ScriptedJudge()
    scorer = make_scorer(settings, library, router, judge)
    response = await scorer.score(request(agent_item("a", "Cancel my trip, I'm mia_42."),
                                          agent_item("b", "Please cancel my flight; user id mia_42.")))
    assert [r.status for r in response.results] == ["ok", "ok"]
    by_step = {(m[1]["content"].split("# Task\n")[1].split("\n")[0], "step 1 of 2" in m[1]["content"]): m
               for m in judge.seen}
    lookup = by_step[("Cancel my trip, I'm mia_42.", True)][1]["content"]
    assert "# Policy the agent must follow (excerpt)\n" + AIRLINE_POLICY in lookup
    assert '"name":"get_user_details"' in lookup and '"cancel_reservation"' not in lookup  # only the called tool
    assert lookup.index("# Policy") < lookup.index("# Schemas of the tools") < lookup.index("# Step to score")
    reply = by_step[("Cancel my trip, I'm mia_42.", False)][1]["content"]
    assert "# Schemas of the tools" not in reply and AIRLINE_POLICY in reply
    for message in judge.seen:
        assert AIRLINE_POLICY not in message[0]["content"] and "get_user_details" not in message[0]["content"]
    # policy and tools vary per item, yet steps routed to one card share a byte-identical system message
    cards = {step.prototype_id for result in response.results for step in result.steps}
    assert len({m[0]["content"] for m in judge.seen}) == len(cards) < len(judge.seen)


async def test_tools_named_in_plain_steps_are_shown_and_policy_can_be_given_directly(settings, library, router):
    judge = ScriptedJudge()
    scorer = make_scorer(settings, library, router, judge)
    item = {**steps_item("p", "Tool call: cancel_reservation(reservation_id='ABC123')", "Done, it is cancelled."),
            "tools": TOOLS, "policy": "Never cancel without an explicit yes."}
    await scorer.score(request(item))
    call, done = sorted(judge.seen, key=lambda m: "step 2 of 2" in m[1]["content"])
    assert '"name":"cancel_reservation"' in call[1]["content"] and "get_user_details" not in call[1]["content"]
    assert "# Schemas of the tools" not in done[1]["content"]
    assert all("Never cancel without an explicit yes." in m[1]["content"] for m in judge.seen)
