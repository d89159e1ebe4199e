"""Step-level credit (issue 27): DeepSeekMath's process supervision with hand-computed numbers, the dense token
rewards for verl, and step spans placed on the tokens of the SmolLM2 tokenizer the project ships."""

from __future__ import annotations

import math

import pytest

from scribe_client.credit import (ScoredOutput, decoded_token_bounds, dense_rewards, group_token_advantages,
                                  message_char_spans, outcome_advantages, process_advantages, step_char_spans,
                                  step_token_spans)
from scribe_rm.blocks.weights import CACHE_ROOT
from scribe_rm.pipeline.schemas import Message, SplitOptions
from scribe_rm.pipeline.segment import split_messages, split_response

ROOT5 = math.sqrt(5)


def two_rollouts() -> list[ScoredOutput]:
    """A group of 2 rollouts x 3 steps: a's second step is wrong (0), everything else right (1)."""
    return [ScoredOutput(length=9, step_rewards=[1.0, 0.0, 1.0], step_ends=[2, 5, 8], outcome=0.0),
            ScoredOutput(length=10, step_rewards=[1.0, 1.0, 1.0], step_ends=[3, 6, 9], outcome=1.0)]


def test_process_supervision_gives_deepseekmath_advantages():
    """R = {1, 0, 1, 1, 1, 1}: mean 5/6, std sqrt(5)/6, so a right step normalizes to 1/sqrt(5) and the wrong
    one to -sqrt(5); a token's advantage sums the normalized rewards of the steps ending at or after it."""
    a, b = process_advantages(two_rollouts())
    expected_a = [-3 / ROOT5] * 3 + [-4 / ROOT5] * 3 + [1 / ROOT5] * 3
    expected_b = [3 / ROOT5] * 4 + [2 / ROOT5] * 3 + [1 / ROOT5] * 3
    assert a == pytest.approx(expected_a, rel=1e-5) and b == pytest.approx(expected_b, rel=1e-5)
    # the earlier wrong step's tokens get less than the later right step's
    assert max(a[3:6]) < min(a[6:9])


def test_a_group_whose_step_rewards_are_all_equal_gets_no_process_advantage():
    group = [ScoredOutput(length=4, step_rewards=[0.5, 0.5], step_ends=[1, 3]),
             ScoredOutput(length=3, step_rewards=[0.5], step_ends=[2])]
    assert process_advantages(group) == [[0.0] * 4, [0.0] * 3]


def test_outcome_is_normalized_within_the_group_and_added_at_the_final_step():
    group = two_rollouts()
    assert outcome_advantages(group) == pytest.approx([-1.0, 1.0], rel=1e-5)  # outcomes 0 and 1
    mixed = group_token_advantages(group, "process+outcome", w_outcome=0.7, w_process=0.3)
    process = process_advantages(group)
    assert mixed[0] == pytest.approx([0.3 * p - 0.7 for p in process[0]], rel=1e-5)  # every token of a
    assert mixed[1] == pytest.approx([0.3 * p + 0.7 for p in process[1]], rel=1e-5)
    unscored = [ScoredOutput(length=2, scored=False), *group]
    assert process_advantages(unscored)[0] == [0.0, 0.0] and outcome_advantages(unscored)[0] == 0.0


def test_dense_rewards_center_each_step_at_its_last_token_and_sum_to_the_scalar_reward():
    """Scores 1, 0, 0.5 (mean 0.5) at tokens 2, 5, 8 of 10, outcome 1, weights 0.7 / 0.3."""
    rewards = dense_rewards(10, [1.0, 0.0, 0.5], [2, 5, 8], outcome=1.0)
    assert rewards[2] == pytest.approx(0.15) and rewards[5] == pytest.approx(-0.15) and rewards[8] == 0.0
    assert rewards[9] == pytest.approx(0.7 + 0.15) and sum(rewards) == pytest.approx(0.7 * 1.0 + 0.3 * 0.5)
    to_go = [sum(rewards[t:]) for t in range(10)]  # returns with gamma 1
    assert to_go[3] < to_go[6] and to_go[3] < to_go[0]  # the wrong step's tokens below the right ones, both sides
    assert to_go[0] - to_go[3] == pytest.approx(0.3 * (1.0 - 0.5))  # a step's return over the next: w (score - mean)
    without_outcome = dense_rewards(10, [1.0, 0.0, 0.5], [2, 5, None], outcome=None)  # the last step: no token
    assert sum(without_outcome) == pytest.approx(0.5) and without_outcome[8] == 0.0


# ---------- spans on the real SmolLM2 tokenizer ----------

@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(CACHE_ROOT / "models" / "smollm2-135m-instruct")


def decode(tokenizer):
    return lambda ids: tokenizer.decode(ids, skip_special_tokens=True)


def test_math_response_steps_land_on_their_own_tokens(tokenizer):
    response = "Step 1: 12 * 4 = 48 apples in the crates.\nStep 2: 48 - 5 = 43 after the sale.\nStep 3: Answer: 43"
    ids = tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]  # as generated
    segments = split_response(response, SplitOptions(mode="step_markers"))
    spans = step_token_spans(decoded_token_bounds(decode(tokenizer), ids), [(s.start, s.end) for s in segments])
    assert len(spans) == 3 and all(span is not None for span in spans)
    assert [first for first, _ in spans] == sorted(first for first, _ in spans) and spans[-1][1] < len(ids) - 1
    for segment, (first, last) in zip(segments, spans):  # the eos token belongs to no step
        assert tokenizer.decode(ids[first:last + 1], skip_special_tokens=True).strip() == segment.text


def test_a_truncated_completion_maps_the_steps_it_reached_and_reports_the_rest(tokenizer):
    response = "Step 1: Let x be the width.\nStep 2: Then 2x + 2(x + 3) = 26.\nStep 3: So x = 5."
    ids = tokenizer(response, add_special_tokens=False)["input_ids"]
    cut = ids[: len(ids) // 2]  # generation stopped at max_completion_length
    segments = split_response(response, SplitOptions(mode="step_markers"))
    spans = step_token_spans(decoded_token_bounds(decode(tokenizer), cut), [(s.start, s.end) for s in segments])
    assert spans[0] is not None and spans[-1] is None  # the last step starts after the cut: no token, reported
    reached = [span for span in spans if span is not None]
    assert reached[-1][1] == len(cut) - 1  # the step the cut fell into keeps the tokens it had


def test_chat_steps_with_tool_calls_land_on_the_tokens_of_their_messages(tokenizer):
    call = '<tool_call>{"name": "get_price", "arguments": {"item": "notebook"}}</tool_call>'
    messages = [{"role": "system", "content": "You are a shop assistant."},
                {"role": "user", "content": "How much are 3 notebooks?"},
                {"role": "assistant", "content": call,
                 "tool_calls": [{"function": {"name": "get_price", "arguments": {"item": "notebook"}}}]},
                {"role": "tool", "content": "3.00"},
                {"role": "assistant", "content": "3 notebooks cost 3 x 3.00 = 9.00 dollars."}]
    _, segments = split_messages([Message.model_validate(m) for m in messages])
    steps = [{"message_indices": list(s.message_indices)} for s in segments]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False)
    encoding = tokenizer(rendered, add_special_tokens=False, return_offsets_mapping=True)
    spans = step_token_spans(encoding["offset_mapping"], step_char_spans(steps, message_char_spans(rendered, messages)))
    assert len(spans) == 2 and all(span is not None for span in spans)
    texts = [tokenizer.decode(encoding["input_ids"][a:b + 1]) for a, b in spans]
    assert "get_price" in texts[0] and "3.00" in texts[0]  # the call and the tool result it answered
    assert "9.00 dollars" in texts[1] and "get_price" not in texts[1]
    assert message_char_spans(rendered, [{"role": "assistant", "content": "never said"}]) == [None]
