from scribe_rm.pipeline.prompt import PromptBuilder, PromptLimits, render_card
from scribe_rm.pipeline.segment import Segment


def test_card_comes_first_and_is_byte_identical_per_card(library):
    builder = PromptBuilder(PromptLimits())
    card = library.cards["math.bound_conclusion"]
    a = builder.messages(card, "Question A", [Segment("s1"), Segment("s2")], 1)
    b = builder.messages(card, "A different question", [Segment("other step")], 0)
    assert a[0]["role"] == "system" and a[0]["content"] == b[0]["content"] == render_card(card)
    assert a[0]["content"].encode() == b[0]["content"].encode()
    other = builder.messages(library.cards["math.counting"], "Question A", [Segment("s1")], 0)
    assert other[0]["content"] != a[0]["content"]
    for text in ("Question A", "s1", "s2"):
        assert text not in a[0]["content"]  # nothing step-specific in the cacheable prefix


def test_system_prompt_carries_the_whole_card(library):
    card = library.cards["math.bound_conclusion"]
    system = render_card(card)
    for level in range(4):
        assert f"{level}: {card.rubric[level]}" in system
    assert "boundary leak (score 2)" in system
    assert card.procedure[0] in system


def test_user_message_order_and_bounded_context(library):
    builder = PromptBuilder(PromptLimits(context_steps=2, context_step_chars=50))
    segments = [Segment(f"step number {i} " + "x" * 200, subgoal="sg" if i == 4 else None) for i in range(5)]
    user = builder.messages(library.cards["math.counting"], "THE TASK", segments, 4)[1]["content"]
    assert user.index("THE TASK") < user.index("[Step 3]") < user.index("[Step 4]") < user.index("# Step to score")
    assert "[Step 1]" not in user and "[Step 2]" not in user and "(2 earlier steps not shown)" in user
    assert "more characters cut" in user.split("# Step to score")[0]
    assert "Subgoal: sg" in user and "step 5 of 5" in user
    assert user.rstrip().endswith("Reply with one digit: 0, 1, 2 or 3.")


def test_first_step_has_no_context_section(library):
    user = PromptBuilder(PromptLimits()).messages(library.cards["math.counting"], "Q", [Segment("only")], 0)[1]
    assert "Earlier steps" not in user["content"]
