"""Library induction, stage by stage: verbatim decomposition, clustering, distilled drafts and their
validation, merge into an existing card, review (diff, accept), drafts kept out of serving, own-domain
routing, and split mode llm on /score."""

from __future__ import annotations

import json
import re
import shutil
from datetime import datetime, timezone

import numpy as np
import pytest

from conftest import ScriptedJudge
from scribe_rm.pipeline.judges import JudgeError
from scribe_rm.library import EVERY_CARD, CardError, Provenance, load_card, load_library
from scribe_rm.blocks.clustering import by_centrality, cluster_vectors
from scribe_rm.induction.decompose import Unit, decompose
from scribe_rm.pipeline.spans import SpanError, verbatim_segments
from scribe_rm.induction.distill import build_draft, unique_id
from scribe_rm.induction.induce import InduceOptions, centered_by_item, induce, route_by_item
from scribe_rm.induction.report import write_induction
from scribe_rm.induction.merge import MERGE_THRESHOLD, CardCentroids, read_patches
from scribe_rm.induction.review import accept, diff_libraries, write_card
from scribe_rm.pipeline.router import Router, RoutingItem
from scribe_rm.pipeline.schemas import ScoreItem, ScoreRequest, SplitOptions
from scribe_rm.pipeline.scorer import Scorer

FALLBACK = "general.step_validity"
RESPONSE = "I load the CSV with pandas.\n\nThen I drop rows with missing prices.\n\nFinally I plot the monthly mean."
DRAFT_REPLY = {
    "name": "Table Join", "when_to_use": "The step combines two tables on a key column.",
    "procedure": ["Pick the key present in both tables.", "Check the row count after the join."],
    "rubric": {"3": "Right key, right join type, row count checked.", "2": "Right join, count not checked.",
               "1": "Wrong join type that drops or duplicates rows.", "0": "No join or the wrong key."},
    "failure_modes": [{"name": "row blow-up", "description": "Duplicate keys multiply rows.", "score": 1}],
}


class JsonJudge(ScriptedJudge):
    """A judge double whose JSON replies are given: one per generate_json call, in order."""

    def __init__(self, replies: list):
        super().__init__()
        self.replies = list(replies)
        self.json_calls: list[tuple[list[dict], dict]] = []

    async def generate_json(self, messages, schema, max_tokens, repetition_penalty=1.0):
        self.json_calls.append((messages, schema))
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply


def units(texts: list[str], label: str | None = None) -> list[Unit]:
    return [Unit(f"t{i}#0", text, None, "data_analysis", label) for i, text in enumerate(texts)]


def provenance() -> Provenance:
    return Provenance(source="test", cluster_size=5, member_ids=["a#0"], model="m",
                      created_at=datetime(2026, 11, 22, tzinfo=timezone.utc))


# ---------- decompose ----------

def test_verbatim_spans_become_segments_with_offsets():
    spans = [{"subgoal": "load the data", "text": "I load the CSV with pandas."},
             {"subgoal": "clean", "text": " Then I drop rows with missing prices. "},
             {"subgoal": "plot", "text": "Finally I plot the monthly mean."}]
    segments = verbatim_segments(RESPONSE, spans)
    assert [RESPONSE[s.start:s.end] for s in segments] == [s["text"].strip() for s in spans]
    assert [s.subgoal for s in segments] == ["load the data", "clean", "plot"]


@pytest.mark.parametrize("spans, words", [
    ([{"subgoal": "a", "text": "I load the CSV with pandas."}, {"subgoal": "b", "text": "I drop rows with missing prices."},
      {"subgoal": "c", "text": "Finally I plot the monthly mean."}], "span 1 skips text"),  # "Then" dropped
    ([{"subgoal": "a", "text": "I read the CSV file using pandas."}], "span 0 is not a verbatim piece"),  # paraphrase
    ([{"subgoal": "b", "text": "Then I drop rows with missing prices."}, {"subgoal": "a", "text": "I load the CSV with pandas."}],
     "span 0 skips text"),  # out of order
    ([{"subgoal": "a", "text": "I load the CSV with pandas."}], "leave the end of the response out"),
])
def test_verbatim_check_rejects_paraphrase_reorder_and_gaps(spans, words):
    with pytest.raises(SpanError, match=words):
        verbatim_segments(RESPONSE, spans)


async def test_llm_decomposition_falls_back_to_rules_and_counts_the_rejection():
    items = [ScoreItem(id="a", response=RESPONSE), ScoreItem(id="b", response=RESPONSE)]
    good = {"spans": [{"subgoal": "everything", "text": RESPONSE}]}
    paraphrase = {"spans": [{"subgoal": "x", "text": "I read a CSV."}]}
    found, counts = await decompose(items, "llm", JsonJudge([good, paraphrase]), SplitOptions(), "data_analysis")
    assert [u.id for u in found] == ["a#0", "b#0", "b#1", "b#2"]  # b: the blank-line split
    assert found[0].subgoal == "everything" and counts.llm_used == 1 and counts.llm_rejected == 1
    assert "b: span 0 is not a verbatim piece" in counts.rejections[0]


# ---------- cluster ----------

def planted(seed: int = 0, groups: int = 4, per_group: int = 12, dim: int = 32) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(groups, dim))
    labels = np.repeat(np.arange(groups), per_group)
    return centres[labels] + 0.15 * rng.normal(size=(len(labels), dim)), labels


def test_clustering_finds_planted_groups_and_chooses_k_by_silhouette():
    from sklearn.metrics import adjusted_rand_score

    vectors, labels = planted()
    clustering = cluster_vectors(vectors, min_size=3, max_k=8)
    assert clustering.k == 4 and max(clustering.silhouettes, key=clustering.silhouettes.get) == 4
    assert adjusted_rand_score(labels, clustering.labels) == 1.0


def test_k_chosen_on_a_subsample_still_labels_every_point():
    from sklearn.metrics import adjusted_rand_score

    vectors, labels = planted(per_group=100)
    clustering = cluster_vectors(vectors, min_size=3, max_k=8, restarts=3, search_points=40)
    assert clustering.k == 4 and len(clustering.labels) == 400
    assert adjusted_rand_score(labels, clustering.labels) == 1.0


def test_clustering_is_deterministic_under_a_seed_and_drops_small_clusters():
    vectors, _ = planted()
    stray = np.vstack([vectors, 5 * np.ones((2, vectors.shape[1]))])  # a pair far from everything
    first, second = cluster_vectors(stray, 3, 8, seed=7), cluster_vectors(stray, 3, 8, seed=7)
    assert np.array_equal(first.labels, second.labels)
    assert (first.labels[-2:] == -1).all() and (first.labels[:-2] >= 0).all()


def test_centering_by_item_removes_what_a_trajectory_shares():
    topic = np.array([10.0, 0, 0])
    vectors = np.array([topic + [0, 1, 0], topic + [0, 0, 1], [1.0, 1, 1]])
    centered = centered_by_item(vectors, ["a", "a", "single"])
    assert np.allclose(centered[:2], [[0, 0.5, -0.5], [0, -0.5, 0.5]])
    assert np.allclose(centered[2], [1, 1, 1])  # a one-step item keeps its vector


def test_central_members_come_first():
    vectors = np.array([[1.0, 0.9], [1.0, 0.0], [1.0, 0.5]])
    assert by_centrality(vectors, np.array([0, 1, 2])).tolist()[0] == 2


# ---------- distill ----------

def test_a_valid_reply_becomes_a_draft_card_with_provenance():
    central = units([f"Merge table {c} with the lookup on its key and check the row count." for c in "ABCDEFG"])
    card = build_draft(DRAFT_REPLY, central, "data_analysis", {"data_analysis.table_join"}, provenance(), 6)
    assert card.id == "data_analysis.table_join_2" and card.status == "draft" and card.domain == "data_analysis"
    assert card.examples == [u.text for u in central[:6]] and card.provenance.cluster_size == 5
    assert unique_id("data_analysis", "3 ways!", set()) == "data_analysis.skill_3_ways"


@pytest.mark.parametrize("change, field", [
    ({"rubric": {"3": "a", "2": "b", "1": "c"}}, "rubric"),
    ({"failure_modes": [{"name": "x", "description": "y", "score": 9}]}, "failure_modes.0.score"),
    ({"when_to_use": ""}, "when_to_use"),
])
def test_an_invalid_draft_is_refused_with_the_field_named(change, field):
    central = units([f"Merge table {c} on its key." for c in "ABCDEF"])
    with pytest.raises(CardError) as err:
        build_draft({**DRAFT_REPLY, **change}, central, "data_analysis", set(), provenance(), 6)
    assert "draft data_analysis.table_join" in str(err.value) and f"field '{field}'" in str(err.value)


def test_too_few_distinct_members_is_refused_at_examples():
    central = units(["Merge the tables on the key."] * 6)  # one distinct text
    with pytest.raises(CardError, match="field 'examples'"):
        build_draft(DRAFT_REPLY, central, "data_analysis", set(), provenance(), 6)


# ---------- review: diff, accept, drafts kept out ----------

def draft_dir(tmp_path, settings):
    library_dir = tmp_path / "lib"
    shutil.copytree(settings.library_dir, library_dir)
    central = units([f"Join table {c} to the orders on customer_id and check the row count." for c in "ABCDEF"])
    card = build_draft(DRAFT_REPLY, central, "data_analysis", set(), provenance(), 6)
    write_card(card, library_dir / "data_analysis" / "table_join.yaml")
    return library_dir, card


def test_drafts_are_served_only_when_asked_and_accept_makes_them_active(tmp_path, settings):
    library_dir, card = draft_dir(tmp_path, settings)
    plain = load_library(library_dir, FALLBACK)
    assert card.id not in plain.cards and plain.drafts_left_out == 1
    with_drafts = load_library(library_dir, FALLBACK, include_drafts=True)
    assert with_drafts.cards[card.id].status == "draft"
    assert diff_libraries(plain, with_drafts).added == [card.id]
    assert accept(library_dir, [card.id]) == [f"{card.id}: draft accepted in place ({library_dir / 'data_analysis' / 'table_join.yaml'})"]
    active = load_library(library_dir, FALLBACK)
    assert active.cards[card.id].status == "active" and active.version != plain.version


def test_accept_copies_drafts_applies_patches_and_refuses_unknown_ids(tmp_path, settings):
    from scribe_rm.induction.merge import Patch, write_patches

    library_dir = tmp_path / "lib"
    shutil.copytree(settings.library_dir, library_dir)
    drafts, card = draft_dir(tmp_path / "drafts", settings)
    patch = Patch(card_id="math.counting", add_examples=["Count the arrangements of the beads on the ring."],
                  similarity=0.8, provenance=provenance())
    write_patches([patch], tmp_path / "patches.json")
    lines = accept(library_dir, [card.id, "math.counting"], drafts, read_patches(tmp_path / "patches.json"))
    assert lines[0].startswith(f"{card.id}: accepted into") and lines[1].startswith("math.counting: 1 anchors added")
    after = load_library(library_dir, FALLBACK)
    assert after.cards[card.id].status == "active"
    assert after.cards["math.counting"].examples[-1] == patch.add_examples[0]
    old = load_library(settings.library_dir, FALLBACK)
    assert diff_libraries(old, after).changed == {"math.counting": ["examples"]}
    with pytest.raises(CardError, match="math.nonexistent: no draft card or patch"):
        accept(library_dir, ["math.nonexistent"], drafts)


def test_the_draft_setting_serves_drafts(tmp_path, settings, monkeypatch):
    from scribe_rm.settings import Settings

    library_dir, card = draft_dir(tmp_path, settings)
    monkeypatch.setenv("SCRIBE_LOAD_DRAFT_CARDS", "true")
    assert card.id in Settings(library_dir=library_dir).library_source().load().cards


# ---------- with the real embedder: merge, own-domain routing, induce end to end ----------

@pytest.mark.model
def test_merge_picks_the_existing_card_a_cluster_belongs_to(library, embedder, settings):
    centroids = CardCentroids(library, embedder, settings.anchor_cache_dir, FALLBACK)
    texts = ["Reduce 7^100 modulo 13 using Fermat's little theorem.", "Find the remainder of 2^50 when divided by 7.",
             "Work out the last digit of 3^2024 by the cycle of powers mod 10.", "Compute 45 * 38 mod 11."]
    centroid = embedder.encode_sync(texts).mean(axis=0)
    nearest = centroids.nearest(centroid / np.linalg.norm(centroid))
    assert nearest.card_id == "math.modular_arithmetic" and nearest.similarity >= MERGE_THRESHOLD


@pytest.mark.model
async def test_own_domain_cards_route_only_for_their_domain(tmp_path, settings, embedder, static_embedder):
    library_dir, card = draft_dir(tmp_path, settings)
    accept(library_dir, [card.id])
    library = load_library(library_dir, FALLBACK)
    router = Router(library, embedder, settings.router_config(), static_embedder=static_embedder)
    router.build_sync()
    text = "Join the refunds table to the orders on order_id and verify the number of rows."
    own, math, tools = await router.route([text] * 3, ["data_analysis", "math", "tool_use"])
    assert own.card.id == card.id and not own.fallback
    assert {c.card_id for c in own.alternatives} == {card.id}  # its scope holds its domain's cards only
    for other in (math, tools):
        assert card.id not in {other.card.id} | {c.card_id for c in other.alternatives}
    (auto,) = await router.route_items([RoutingItem([text, text])])  # no domain: its steps vote for its scope
    assert (auto.scope, auto.routes[0].card.id) == ("data_analysis", card.id)


@pytest.mark.model
async def test_coverage_routes_each_items_steps_together_as_score_does(router):
    """Units of an item without a domain are routed as /score routes the item: their votes pick its scope."""
    agent = ["Before I can help, please tell me the email address on your account so I can verify it's you.",
             "Thanks for confirming. Is there anything else I can help you with today?"]
    math = ["Factor 84 into primes: 84 = 2^2 * 3 * 7."]
    units = [Unit(f"a#{j}", text, None, None) for j, text in enumerate(agent)] + [Unit("m#0", math[0], None, None)]
    routes = await route_by_item(router, [units[0], units[2], units[1]])  # items' units need not be adjacent
    in_agent_scope = await router.route_in(agent, ["agent", "agent"])
    over_every_card = await router.route_in(math, [EVERY_CARD])
    for got, expected in zip(routes, [in_agent_scope[0], over_every_card[0], in_agent_scope[1]]):
        assert (got.card.id, got.alternatives) == (expected.card.id, expected.alternatives)


@pytest.mark.model
async def test_induce_end_to_end_with_a_scripted_drafter(tmp_path, settings, embedder, static_embedder, library,
                                                        cluster_embedder):
    """Steps that route to existing cards are left out; the rest cluster by what they do; one cluster close
    to an existing card becomes a patch; a drafter failure is a refused proposal, not a crash."""
    from scribe_rm.pipeline.engine import Engine, Pipeline
    from scribe_rm.pipeline.gap_sample import GapSample

    trajectories = [json.loads(line) for line in (settings.library_dir.parent / "examples" / "induce"
                                                  / "trajectories.jsonl").read_text().splitlines()]
    items = [ScoreItem.model_validate(t) for t in trajectories[:6]]
    judge = JsonJudge([DRAFT_REPLY] * 3 + [JudgeError("scripted: cut at max_tokens")] + [DRAFT_REPLY] * 10)
    router = Router(library, embedder, settings.router_config(), static_embedder=static_embedder)
    router.build_sync()
    engine = Engine(settings.pipeline_config(), embedder, judge,
                    Pipeline(library, router, Scorer(settings.scorer_config(), library, router, judge)), GapSample(0, 0.02),
                    static_embedder, cluster_embedder)
    induction = await induce(engine, items, InduceOptions(source="test", clusters=6, min_cluster_size=3))
    assert len(induction.units) == 36 and not any(induction.covered)  # no data_analysis cards yet
    actions = [p.action for p in induction.proposals]
    assert actions.count("refused") == 1 and actions.count("card") + actions.count("patch") >= 3
    # below the 4 distinct texts a card needs a cluster is left out (min_cluster_size=3 lets such clusters form)
    assert all((p.action == "left_out") == (p.distinct < 4) for p in induction.proposals)
    assert induction.quality()["ari"] > 0.6
    ids = [p.card.id for p in induction.proposals if p.card]
    assert len(ids) == len(set(ids)) and all(i.startswith("data_analysis.table_join") for i in ids)
    written = write_induction(induction, tmp_path / "out")
    assert {p.name for p in written} >= {"report.md", "report.png", "induction.json", "patches.json"}
    for path in written:
        if path.suffix == ".yaml":
            assert load_card(path).status == "draft"
    report = (tmp_path / "out" / "report.md").read_text()
    assert "purity" in report and "refused: scripted: cut at max_tokens" in report


# ---------- split mode llm on /score ----------

@pytest.mark.model
async def test_split_mode_llm_scores_the_models_spans_or_falls_back(settings, library, router):
    good = {"spans": [{"subgoal": "load", "text": "I load the CSV with pandas."},
                      {"subgoal": "clean and plot", "text": RESPONSE.split("\n\n", 1)[1]}]}
    judge = JsonJudge([good, {"spans": [{"subgoal": "x", "text": "I read a CSV."}]}])
    judge.started = True
    scorer = Scorer(settings.scorer_config(), library, router, judge)
    request = ScoreRequest(items=[{"id": "a", "response": RESPONSE}, {"id": "b", "response": RESPONSE}],
                           split={"mode": "llm"})
    a, b = (await scorer.score(request)).results
    assert a.status == "ok" and a.n_steps == 2 and [s.subgoal for s in a.steps] == ["load", "clean and plot"]
    assert RESPONSE[a.steps[1].start:a.steps[1].end] == good["spans"][1]["text"] and a.split_note is None
    assert b.status == "ok" and b.n_steps == 3 and "not a verbatim piece" in b.split_note


@pytest.mark.model
def test_library_diff_shows_cards_and_routing_moves(tmp_path, settings):
    from typer.testing import CliRunner

    from scribe_rm.cli import app

    library_dir, card = draft_dir(tmp_path, settings)
    members = settings.library_dir.parent / "examples" / "induce" / "trajectories.jsonl"
    result = CliRunner().invoke(app, ["library", "diff", str(settings.library_dir), str(library_dir),
                                      "--members", str(members), "--domain", "data_analysis"])
    assert result.exit_code == 0, result.output
    assert f"added    {card.id}" in result.output
    moved = re.search(r"members: (\d+) of 84 steps route to another card; fallback 84 -> (\d+)", result.output)
    assert moved and int(moved.group(1)) == 84 - int(moved.group(2)) > 0  # every non-fallback step moved to the draft
    assert f"general.step_validity -> {card.id}" in result.output
    heldout = re.search(r"held-out routing_heldout.jsonl: top-1 (0\.\d+) -> (0\.\d+)", result.output)
    assert heldout and min(float(heldout.group(1)), float(heldout.group(2))) >= 0.8, result.output


# ---------- issue 24: distinct texts, grounded drafts, every step's fate ----------

def planted_dialogues() -> list[ScoreItem]:
    """Three kinds of support dialogues. Within a kind every dialogue makes the same lookup call (identical
    text), all of them end with the same sign-off, and one step per dialogue is its own (distinct) text."""
    kinds = {
        "garden": ("get_store_hours", "Tool result: open 9-17",
                   "I checked the plant's frost hardiness for zone {n} before recommending it for an outdoor bed"),
        "bikes": ("get_workshop_queue", "Tool result: 3 bikes waiting",
                  "I measured the chain stretch at {n} percent before quoting a drivetrain replacement"),
        "museum": ("get_exhibition_list", "Tool result: 4 exhibitions",
                   "I confirmed that the {n} o'clock guided tour still has wheelchair places before booking it"),
    }
    items = []
    for kind, (tool, result, own) in kinds.items():
        for n in range(5):
            items.append(ScoreItem.model_validate({"id": f"{kind}-{n}", "policy": f"You help customers of a {kind} shop.",
                "messages": [
                    {"role": "user", "content": f"Question {n} about the {kind} service"},
                    {"role": "assistant", "tool_calls": [{"function": {"name": tool, "arguments": {}}}]},
                    {"role": "tool", "content": result.split(": ", 1)[1]},
                    {"role": "user", "content": "And can you check something for me?"},
                    {"role": "assistant", "content": own.format(n=n + 3) + "."},
                    {"role": "user", "content": "Thanks!"},
                    {"role": "assistant", "content": "Thanks for contacting us, goodbye!"}]}))
    return items


@pytest.mark.model
async def test_induction_counts_distinct_texts_and_explains_every_step(tmp_path, settings, embedder, static_embedder,
                                                                       library, cluster_embedder):
    from scribe_rm.pipeline.engine import Engine, Pipeline
    from scribe_rm.pipeline.gap_sample import GapSample

    items = planted_dialogues()
    reply = {**DRAFT_REPLY, "name": "Minecraft Profile Lookup", "when_to_use": "The step looks up a minecraft profile."}
    judge = JsonJudge([reply] * 20)
    router = Router(library, embedder, settings.router_config(), static_embedder=static_embedder)
    router.build_sync()
    engine = Engine(settings.pipeline_config(), embedder, judge,
                    Pipeline(library, router, Scorer(settings.scorer_config(), library, router, judge)), GapSample(0, 0.02),
                    static_embedder, cluster_embedder)
    induction = await induce(engine, items, InduceOptions(source="planted", domain="support", include_covered=True,
                                                          min_cluster_size=2))
    assert len(induction.units) == 45 and len(induction.distinct) == 3 + 15 + 1  # 3 calls, 15 own steps, 1 sign-off
    assert induction.proposals and not any(p.action == "refused" for p in induction.proposals)
    for proposal in induction.proposals:
        assert proposal.action in ("card", "patch", "left_out")
        if proposal.action == "left_out":  # min_cluster_size=2 lets small clusters form; none is drafted
            assert proposal.distinct < 4 and "a card needs 4" in proposal.error
        else:
            assert proposal.distinct >= 4
            examples = proposal.card.examples if proposal.card else proposal.patch.add_examples
            assert len({e.lower() for e in examples}) >= 4
        if proposal.card is not None:  # "minecraft" appears nowhere in the data
            assert proposal.review and "minecraft" in proposal.review
    assert len(induction.fates) == len(induction.units) == len({f.unit for f in induction.fates})
    sign_offs = [f for f in induction.fates if induction.units[f.unit].text == "Thanks for contacting us, goodbye!"]
    assert len(sign_offs) == 15 and all("one of 15 repeats" in f.detail for f in sign_offs)
    written = write_induction(induction, tmp_path / "out")
    report = (tmp_path / "out" / "report.md").read_text()
    assert "## Every step" in report and all(u.id in report for u in induction.units)
    if any(p.card for p in induction.proposals):
        assert "**Review:** ungrounded:" in report and "minecraft" in report
    summary = json.loads((tmp_path / "out" / "induction.json").read_text())
    assert len(summary["steps"]) == 45 and sum(summary["fates"].values()) == 45
    assert {p.suffix for p in written} >= {".md", ".png", ".json"}


def test_grounding_names_the_terms_with_no_source(library):
    from scribe_rm.induction.grounding import generic_vocabulary, ungrounded_terms
    from scribe_rm.library import validate_card

    card = validate_card({**DRAFT_REPLY, "id": "support.refund", "domain": "support", "name": "Minecraft Refund Approval",
                          "when_to_use": "The step approves refunds for purchases after checking the order.",
                          "examples": ["a", "b", "c", "d"]}, "test")
    evidence = ["I approved the refund of order 1182 after checking the purchase date.", "Refunds need an order id."]
    generic = generic_vocabulary(library.cards.values())  # the method's own words ("step", "correct", ...)
    assert "step" in generic and ungrounded_terms(card, evidence, generic) == ["minecraft"]
    assert ungrounded_terms(card, evidence + ["a Minecraft account"], generic) == []
