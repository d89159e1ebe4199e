import pytest

from scribe_rm.pipeline.schemas import Message, ScoreItem, SplitOptions
from scribe_rm.pipeline.segment import SegmentationError, split_messages, split_response


def spans_are_faithful(text, segments):
    return all(text[s.start:s.end] == s.text for s in segments)


def split(text, mode, pattern=None):
    segments = split_response(text, SplitOptions(mode=mode, pattern=pattern))
    assert spans_are_faithful(text, segments)
    return [s.text for s in segments]


def test_blank_lines_drop_empty_pieces_and_trim():
    text = "  First paragraph\nstill first.\n\n\n  Second.  \n \n\nThird"
    assert split(text, "blank_lines") == ["First paragraph\nstill first.", "Second.", "Third"]


def test_lines():
    assert split("a = 1\n\nb = 2\n  c = 3  ", "lines") == ["a = 1", "b = 2", "c = 3"]


def test_regex_separator():
    assert split("one ### two###three", "regex", r"\s*###\s*") == ["one", "two", "three"]


def test_regex_that_matches_empty_is_rejected():
    with pytest.raises(SegmentationError, match="empty string"):
        split("abc", "regex", r"x*")


def test_invalid_regex_is_rejected():
    with pytest.raises(SegmentationError, match="not a valid regex"):
        split("abc", "regex", r"(unclosed")


def test_step_markers_keep_preamble_as_a_step():
    text = "Let's solve it.\nStep 1: expand.\nx = 2\n**Step 2.** simplify\n## Step 3) answer 4"
    assert split(text, "step_markers") == ["Let's solve it.", "Step 1: expand.\nx = 2", "**Step 2.** simplify",
                                            "## Step 3) answer 4"]


def test_subgoal_tags_with_description_attribute():
    text = 'intro <subgoal name="factor">196 = 2^2 7^2</subgoal> filler <SUBGOAL>sum is 14</SUBGOAL>'
    segments = split_response(text, SplitOptions(mode="subgoal_tags"))
    assert [s.text for s in segments] == ["196 = 2^2 7^2", "sum is 14"]
    assert [s.subgoal for s in segments] == ["factor", None]
    assert spans_are_faithful(text, segments)


@pytest.mark.parametrize("text, expected", [
    ("<subgoal>a</subgoal><subgoal>b</subgoal>", ["a", "b"]),
    ("Step 1: a\nStep 2: b", ["Step 1: a", "Step 2: b"]),
    ("para one\n\npara two", ["para one", "para two"]),
])
def test_auto_detects_the_format(text, expected):
    assert split(text, "auto") == expected


def test_tool_turns_group_each_call_with_its_results():
    messages = [Message.model_validate(m) for m in [
        {"role": "system", "content": "tools..."},
        {"role": "user", "content": "Move the file."},
        {"role": "assistant", "content": "Looking first.", "tool_calls": [
            {"id": "1", "function": {"name": "ls", "arguments": {"path": "."}}}]},
        {"role": "tool", "tool_call_id": "1", "name": "ls", "content": "[\"a.txt\"]"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "2", "function": {"name": "mv", "arguments": "{\"src\": \"a.txt\"}"}},
            {"id": "3", "function": {"name": "ls", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "2", "content": "ok"},
        {"role": "tool", "tool_call_id": "3", "content": "[]"},
        {"role": "assistant", "content": "Done."},
        {"role": "user", "content": "Now delete it."},
        {"role": "assistant", "content": "Which file?"},
    ]]
    question, segments = split_messages(messages)
    assert question == "Move the file."
    assert [s.message_indices for s in segments] == [(2, 3), (4, 5, 6), (7,), (9,)]
    assert segments[0].text == 'Looking first.\nTool call: ls({"path": "."})\nTool result (ls): ["a.txt"]'
    assert segments[1].text.count("Tool call:") == 2 and segments[1].text.count("Tool result:") == 2
    assert segments[2].user_turn is None and segments[3].user_turn == "Now delete it."


def test_item_needs_exactly_one_trajectory_form():
    with pytest.raises(ValueError, match="exactly one of steps, response or messages"):
        ScoreItem(id="x", response="a", steps=[{"text": "b"}])
    with pytest.raises(ValueError, match="exactly one"):
        ScoreItem(id="x")


def test_regex_mode_requires_pattern():
    with pytest.raises(ValueError, match="pattern is required"):
        SplitOptions(mode="regex")
