"""The embedded judge: real SmolLM2-135M-Instruct (prepared by `scribe-rm models prepare`) in-process."""

import json
import math

import pytest
from typer.testing import CliRunner

from scribe_rm.cli import app
from scribe_rm.pipeline.judges import JudgeError, ScoreDistribution
from scribe_rm.pipeline.judges.local import LocalJudge
from scribe_rm.blocks.weights import is_prepared
from scribe_rm.pipeline.prompt import PromptBuilder, PromptLimits
from scribe_rm.pipeline.segment import Segment

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def model_dir(settings):
    if not is_prepared(settings.judge_model_dir):
        pytest.fail(f"embedded judge missing at {settings.judge_model_dir}: run `scribe-rm models prepare`")
    return settings.judge_model_dir


@pytest.fixture
async def judge(model_dir):
    j = LocalJudge(model_dir)
    await j.start()
    yield j
    await j.aclose()


def messages(library, text):
    card = library.cards["math.bound_conclusion"]
    return PromptBuilder(PromptLimits()).messages(card, "Find the largest integer c with 4c < 179.", [Segment(text)], 0)


async def test_real_forward_gives_a_distribution_and_is_deterministic(judge, library):
    m = messages(library, "c < 44.75 and c is an integer, so c <= 44; c = 44 works.")
    first = await judge.label_logprobs(m)
    second = await judge.label_logprobs(m)
    assert first == second
    assert all(lp < 0 and math.isfinite(lp) for lp in first)
    d = ScoreDistribution.from_logprobs(first)
    assert sum(d.probabilities) == pytest.approx(1.0) and 0 <= d.expected <= 3
    assert 0 < d.label_mass <= 1


async def test_different_steps_get_different_distributions(judge, library):
    a = await judge.label_logprobs(messages(library, "c < 44.75 and c is an integer, so c <= 44."))
    b = await judge.label_logprobs(messages(library, "The answer is purple."))
    assert a != b


async def test_missing_model_dir_is_a_clear_error(tmp_path):
    j = LocalJudge(tmp_path / "nothing-here")
    with pytest.raises(JudgeError, match="scribe-rm models prepare"):
        await j.start()
    assert not await j.ready()


def test_score_cli_writes_one_result_per_item(tmp_path):
    items = tmp_path / "items.jsonl"
    items.write_text("\n".join(json.dumps(i) for i in [
        {"id": "one", "question": "2+2?", "response": "Step 1: 2 + 2 = 4.\nStep 2: The answer is 4.", "outcome": 1.0},
        {"id": "empty", "response": "  "},
    ]) + "\n")
    out = tmp_path / "scores.jsonl"
    result = CliRunner().invoke(app, ["score", str(items), "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["one", "empty"]
    assert rows[0]["status"] == "ok" and rows[0]["n_steps"] == 2 and rows[0]["judge_model"].startswith("local:")
    assert rows[0]["reward"] == pytest.approx(0.7 + 0.3 * rows[0]["process_reward"], abs=1e-6)
    assert rows[1]["status"] == "invalid"
    assert "ok=1" in result.output and "invalid=1" in result.output


async def test_generate_json_follows_the_schema_under_constrained_decoding(judge):
    """xgrammar masks every token the schema forbids, so even a 135M model's reply is schema-valid JSON."""
    import jsonschema

    from scribe_rm.pipeline.spans import SPAN_SCHEMA, decompose_messages, span_schema
    from scribe_rm.induction.distill import DRAFT_SCHEMA, draft_messages
    from scribe_rm.induction.decompose import Unit

    response = "Load the file.\n\nDrop empty rows."
    spans = await judge.generate_json(decompose_messages(response), span_schema(response), 300)
    jsonschema.validate(spans, SPAN_SCHEMA)
    members = [Unit(f"x#{i}", f"Join table {c} to the orders on its key.", None, "data_analysis") for i, c in enumerate("ABC")]
    draft = await judge.generate_json(draft_messages(members, "data_analysis"), DRAFT_SCHEMA, 1000, 1.3)
    jsonschema.validate(draft, DRAFT_SCHEMA)
    with pytest.raises(JudgeError, match="not complete JSON"):  # cut before the JSON closes: refused, not repaired
        await judge.generate_json(draft_messages(members, "data_analysis"), DRAFT_SCHEMA, 8)
