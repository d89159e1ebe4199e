"""A chat turn that holds two subgoals (a result, then a goodbye) is scored as two steps (pipeline/turn_split.py)."""

from dataclasses import replace

import pytest

from conftest import ScriptedJudge
from scribe_client.credit import step_char_spans
from scribe_rm.pipeline.router import Candidate
from scribe_rm.pipeline.router import Route, Router
from scribe_rm.pipeline.schemas import ScoreRequest
from scribe_rm.pipeline.scorer import Scorer
from scribe_rm.pipeline.turn_split import Cut, choose, confirmed, sentence_cuts, split_turns

REPORT_AND_GOODBYE = ("Your hotel booking for 3 nights in Lisbon is confirmed and the deposit has been refunded. "
                      "Enjoy your trip, and goodbye!")
ONE_SUBGOAL = ["Could you give me the booking reference and the surname on the reservation, please? I need both "
               "to open your file.",
               "Please tell me the account holder's full name. I also need the date of birth on the account."]


def test_a_turn_is_cut_between_sentences_and_never_into_fragments():
    text = "Done. Your refund is on its way to your card! Anything else? Bye now."
    # "Done." is too short a head: turns open with a few words of courtesy that are no subgoal of their own
    assert [text[cut:cut + 4] for cut in sentence_cuts(text, 6)] == ["Anyt", "Bye "]
    assert sentence_cuts("Dr. Lee will call you back tomorrow.", 6) == []
    assert sentence_cuts("One sentence only, however long it is.", 6) == []
    assert sentence_cuts(text, 3) == []  # four sentences: more than this turn may have


def route(library, card_id: str, similarity: float, runner_up: float, fallback: bool = False) -> Route:
    return Route(library.cards[card_id], similarity, fallback,
                 (Candidate(card_id, similarity), Candidate("general.step_validity", runner_up)))


def test_the_cut_whose_weaker_part_leads_most_wins_and_unclear_cuts_keep_the_turn_whole(library):
    text = "First part here. Second part here. Third part here."
    synth, closing = "tool.response_synthesis", "agent.conversation_closing"
    weak = Cut(17, route(library, synth, 0.30, 0.29), route(library, closing, 0.40, 0.20))
    strong = Cut(35, route(library, synth, 0.30, 0.25), route(library, closing, 0.40, 0.30))
    split = choose(text, [weak, strong], 0.015)
    head, tail = text[:split.head_end], text[split.tail_start:]
    assert (head, tail) == ("First part here. Second part here.", "Third part here.")
    assert choose(text, [weak], 0.015) is None  # its head leads its runner-up by 0.01 only
    same = Cut(17, route(library, synth, 0.3, 0.2), route(library, synth, 0.3, 0.2))
    fell_back = Cut(17, route(library, synth, 0.3, 0.2), route(library, closing, 0.05, 0.0, fallback=True))
    assert choose(text, [same], 0.0) is None and choose(text, [fell_back], 0.0) is None


def test_a_cut_chosen_in_the_static_tier_stands_only_if_every_tier_still_sees_two_cards(library):
    synth, closing = "tool.response_synthesis", "agent.conversation_closing"
    picked = choose("First part here. Second part.", [Cut(17, route(library, synth, 0.3, 0.2),
                                                           route(library, closing, 0.4, 0.2))], 0.0)
    kept = confirmed(picked, route(library, synth, 0.5, 0.1), route(library, closing, 0.5, 0.1))
    assert kept is not None and kept.head.similarity == 0.5  # the steps carry the routes of every tier
    assert confirmed(picked, route(library, synth, 0.5, 0.1), route(library, synth, 0.5, 0.1)) is None
    assert confirmed(picked, route(library, synth, 0.5, 0.1), route(library, closing, 0.05, 0.0, True)) is None


async def test_a_result_then_a_goodbye_splits_and_one_subgoal_said_twice_does_not(router):
    texts = [REPORT_AND_GOODBYE, *ONE_SUBGOAL]
    splits = await split_turns(router, {k: (text, "agent") for k, text in enumerate(texts)})
    report = splits[0]
    assert (report.head.card.id, report.tail.card.id) == ("tool.response_synthesis", "agent.conversation_closing")
    assert REPORT_AND_GOODBYE[report.tail_start:] == "Enjoy your trip, and goodbye!"
    # the one-subgoal turn stays whole. The first one (measured) now splits: with the static tier's token
    # corrections its tail alone, "I need both to open your file.", reaches agent.user_authentication while the
    # whole turn goes to tool.clarification; turn_split_cv.py keeps 78.3% of one-subgoal turns whole (77.7%
    # before), so some such turns split.
    assert 2 not in splits


def dialogue(last_turn: str) -> dict:
    return {"id": "d", "domain": "agent", "messages": [
        {"role": "user", "content": "Can you book the Lisbon hotel for me and refund the deposit I paid twice?"},
        {"role": "assistant", "content": "  " + last_turn + "\n"}]}


async def test_a_split_turn_is_scored_as_two_steps_placed_in_its_message(settings, library, router):
    scorer = Scorer(settings.scorer_config(), library, router, ScriptedJudge())
    request = ScoreRequest.model_validate({"items": [dialogue(REPORT_AND_GOODBYE)]})
    (result,) = (await scorer.score(request)).results
    assert result.status == "ok" and result.n_steps == 2 and all(s.score is not None for s in result.steps)
    assert [s.prototype_id for s in result.steps] == ["tool.response_synthesis", "agent.conversation_closing"]
    assert [s.message_indices for s in result.steps] == [[1], [1]]
    content = REPORT_AND_GOODBYE  # the message's text, trimmed
    assert [content[s.start:s.end] for s in result.steps] == [content[:content.index(" Enjoy")],
                                                              "Enjoy your trip, and goodbye!"]
    # a trainer's credit: the parts land inside the message, wherever the chat template put it
    prefix = "<|user|>...<|assistant|>"
    rendered = prefix + content
    spans = step_char_spans([s.model_dump() for s in result.steps], [None, (len(prefix), len(rendered))])
    assert [rendered[a:b] for a, b in spans] == [content[s.start:s.end] for s in result.steps]


@pytest.fixture(scope="module")
def router_without_split(library, embedder, static_embedder, router):
    r = Router(library, embedder, replace(router.config, turn_split=False), static_embedder=static_embedder)
    r.build_sync()
    return r


async def test_the_split_can_be_turned_off(settings, library, router_without_split):
    scorer = Scorer(settings.scorer_config(), library, router_without_split, ScriptedJudge())
    (result,) = (await scorer.score(ScoreRequest.model_validate({"items": [dialogue(REPORT_AND_GOODBYE)]}))).results
    assert result.n_steps == 1 and result.steps[0].start is None
