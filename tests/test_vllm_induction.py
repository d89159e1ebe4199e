"""Library induction's LLM steps against a real vLLM server (started by scripts/test.sh): schema-valid JSON
from SmolLM2 under vLLM structured outputs, and `scribe-rm library induce --decompose llm` end to end.
Skipped only when SCRIBE_TEST_VLLM_URL is unset."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jsonschema
import pytest

from conftest import REPO
from scribe_rm.pipeline.judges.openai import OpenAIJudge
from scribe_rm.induction.decompose import Unit
from scribe_rm.pipeline.spans import SPAN_SCHEMA, decompose_messages, span_schema
from scribe_rm.induction.distill import DRAFT_SCHEMA, draft_messages
from scribe_rm.settings import Settings

VLLM_URL = os.environ.get("SCRIBE_TEST_VLLM_URL")
pytestmark = [pytest.mark.vllm,
              pytest.mark.skipif(not VLLM_URL, reason="needs a vLLM server: run scripts/test.sh (SCRIBE_TEST_VLLM_URL)")]
ENV = {"SCRIBE_JUDGE_BACKEND": "openai", "SCRIBE_JUDGE_BASE_URLS": VLLM_URL or "", "SCRIBE_JUDGE_MODEL": "judge",
       "SCRIBE_JUDGE_TIMEOUT_S": "300"}


async def test_structured_outputs_give_schema_valid_spans_and_drafts():
    judge = OpenAIJudge(Settings(judge_backend="openai", judge_base_urls=[VLLM_URL], judge_model="judge",
                                 judge_timeout_s=300).openai_judge_config())
    try:
        response = "Load the file.\n\nDrop empty rows."
        spans = await judge.generate_json(decompose_messages(response), span_schema(response), 1024)
        jsonschema.validate(spans, SPAN_SCHEMA)
        members = [Unit(f"x#{i}", f"Join table {c} to the orders on its key.", None, "data_analysis")
                   for i, c in enumerate("ABC")]
        draft = await judge.generate_json(draft_messages(members, "data_analysis"), DRAFT_SCHEMA, 1000, 1.3)
        jsonschema.validate(draft, DRAFT_SCHEMA)
    finally:
        await judge.aclose()


def test_induce_with_llm_decomposition_end_to_end(tmp_path):
    """Free-form responses cut by the model (or by rule where its spans fail the verbatim check), clustered,
    drafted by the model: every proposal is a validated draft or a refusal naming why."""
    rows = [json.loads(line) for line in (REPO / "examples/induce/trajectories.jsonl").read_text().splitlines()[:4]]
    responses = tmp_path / "responses.jsonl"
    responses.write_text("".join(json.dumps({"id": r["id"], "question": r["question"], "domain": r["domain"],
                                             "response": "\n\n".join(s["text"] for s in r["steps"])}) + "\n"
                                 for r in rows))
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "scribe_rm.cli", "library", "induce", str(responses), "--out", str(out),
                           "--decompose", "llm", "--clusters", "2", "--min-cluster-size", "2"],
                          cwd=REPO, env={**os.environ, **ENV, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True,
                          timeout=1500)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((out / "induction.json").read_text())
    d = report["decomposition"]
    assert d["items"] == 4 and d["llm_used"] + d["llm_rejected"] == 4
    assert report["units"] >= 4 and len(report["proposals"]) >= 1
    for proposal in report["proposals"]:
        assert proposal["action"] in ("card", "patch") or proposal["error"]
    assert (out / "report.png").stat().st_size > 0
