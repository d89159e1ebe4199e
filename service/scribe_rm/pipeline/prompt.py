"""The judge prompt. The system message is the rubric card and nothing else that varies, so it is
byte-identical for every step routed to the same card and vLLM's prefix cache reuses it. The user message
holds what varies: the task, the agent's policy (an excerpt), earlier steps, the schemas of the tools the
step calls, and the step; what a trajectory's steps share comes first, so they share a prefix too."""

from __future__ import annotations

from dataclasses import dataclass

from ..library import Card
from .segment import Segment

INSTRUCTIONS = (
    "You are a strict verifier inside a reward model. You check ONE step of a solution against ONE skill "
    "card. Do not solve the task yourself and do not reward effort: compare the step with the card's "
    "procedure, rubric and failure modes. If the step shows a listed failure mode, give that failure "
    "mode's score. Reply with a single digit, 0, 1, 2 or 3, and nothing else."
)
SCORE_QUESTION = "Score this step against the skill card. Reply with one digit: 0, 1, 2 or 3."
# The no-rubric baseline of `scribe-rm eval`: the same judge and user message, no skill card.
BASELINE_SYSTEM = (
    "You are a strict verifier inside a reward model. You check ONE step of a solution. Do not solve the task "
    "yourself. Score the step 0-3: 3 fully correct and useful, 2 correct with a minor flaw, 1 a significant "
    "error, 0 wrong. Reply with a single digit, 0, 1, 2 or 3, and nothing else."
)


def render_card(card: Card) -> str:
    lines = [INSTRUCTIONS, "", f"# Skill card: {card.name}", f"When it applies: {card.when_to_use.strip()}", "",
             "A correct execution:"]
    lines += [f"- {item}" for item in card.procedure]
    lines += ["", "Rubric:"]
    lines += [f"{level}: {card.rubric[level]}" for level in (3, 2, 1, 0)]
    if card.failure_modes:
        lines += ["", "Failure modes:"]
        lines += [f"- {fm.name} (score {fm.score}): {fm.description}" for fm in card.failure_modes]
    return "\n".join(lines)


def clip(text: str, limit: int) -> str:
    text = text.strip()
    if len(text) <= limit:
        return text
    return f"{text[:limit]} [... {len(text) - limit} more characters cut]"


@dataclass(frozen=True)
class PromptLimits:
    question_chars: int = 2000
    step_chars: int = 2000
    context_steps: int = 3
    context_step_chars: int = 400
    policy_chars: int = 1500
    tool_chars: int = 1500


class PromptBuilder:
    def __init__(self, limits: PromptLimits):
        self.limits = limits
        self._card_text: dict[str, str] = {}

    def system(self, card: Card) -> str:
        if card.id not in self._card_text:
            self._card_text[card.id] = render_card(card)
        return self._card_text[card.id]

    def messages(self, card: Card, question: str, segments: list[Segment], index: int, policy: str = "",
                 tool_schemas: tuple[str, ...] = ()) -> list[dict[str, str]]:
        return [{"role": "system", "content": self.system(card)},
                {"role": "user", "content": self.user(question, segments, index, policy, tool_schemas)}]

    def baseline_messages(self, question: str, segments: list[Segment], index: int) -> list[dict[str, str]]:
        return [{"role": "system", "content": BASELINE_SYSTEM},
                {"role": "user", "content": self.user(question, segments, index)}]

    def user(self, question: str, segments: list[Segment], index: int, policy: str = "",
             tool_schemas: tuple[str, ...] = ()) -> str:
        """`policy`: the rules the agent follows; `tool_schemas`: the schema of each tool the step calls."""
        lim = self.limits
        step = segments[index]
        parts = [f"# Task\n{clip(question, lim.question_chars) or '(not given)'}"]
        if policy.strip() and lim.policy_chars:
            parts.append(f"# Policy the agent must follow (excerpt)\n{clip(policy, lim.policy_chars)}")
        first = max(0, index - lim.context_steps)
        if index > 0 and lim.context_steps > 0:
            earlier = [f"[Step {i + 1}] {clip(segments[i].text, lim.context_step_chars)}" for i in range(first, index)]
            omitted = f"({first} earlier steps not shown)\n" if first else ""
            parts.append("# Earlier steps (context only; do not score them)\n" + omitted + "\n".join(earlier))
        if step.user_turn:
            parts.append(f"# Latest user message\n{clip(step.user_turn, lim.question_chars)}")
        if tool_schemas and lim.tool_chars:
            schemas = clip("\n".join(tool_schemas), lim.tool_chars)
            parts.append(f"# Schemas of the tools this step calls\n{schemas}")
        header = f"# Step to score (step {index + 1} of {len(segments)})"
        if step.subgoal:
            header += f"\nSubgoal: {clip(step.subgoal, lim.context_step_chars)}"
        parts.append(f"{header}\n{clip(step.text, lim.step_chars)}")
        parts.append(SCORE_QUESTION)
        return "\n\n".join(parts)
