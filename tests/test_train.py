"""The bundled GRPO loop end to end: TRL GRPOTrainer -> client -> a running service -> embedded judge."""

import json
import subprocess
import sys

import pytest

from conftest import REPO, running_service
from scribe_client.train.tasks import final_answer, make_tasks, outcome, run_tool_calls

pytestmark = pytest.mark.model


def test_tasks_are_verifiable():
    tasks = make_tasks(6, seed=1)
    assert {t["kind"] for t in tasks} == {"math", "tool_use"}
    assert all("Step 1:" in t["prompt"][0]["content"] for t in tasks)
    assert make_tasks(6, seed=1) == tasks  # reproducible


def test_tool_environment_and_outcome():
    good = 'Step 1: CALL get_price(item="apple")\nStep 2: CALL convert(amount=1.5, to=EUR)\nAnswer: 1.35'
    assert run_tool_calls(good) == ["0.5", "1.35"]
    assert outcome(good, 1.35, "tool_use") == 1.0
    assert outcome("Step 1: 3 * 0.5 * 0.9 = 1.35\nAnswer: 1.35", 1.35, "tool_use") == 0.0  # no successful call
    assert run_tool_calls("CALL fly(to=Mars)") == ["error: unknown call fly(to=Mars)"]
    assert final_answer("Answer: 4\nAnswer: 5") == 5.0 and outcome("Answer: 53", 53.0, "math") == 1.0


def test_two_grpo_steps_through_the_service(tmp_path):
    with running_service() as url:
        run = subprocess.run(
            [sys.executable, "-m", "scribe_client.train.grpo", "--service-url", url, "--max-steps", "2",
             "--out-dir", str(tmp_path), "--batch-size", "2", "--num-generations", "2",
             "--max-completion-length", "40"],
            cwd=REPO, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    records = [json.loads(line) for line in (tmp_path / "dynamics.jsonl").read_text().splitlines()]
    assert len(records) == 2 and [r["step"] for r in records] == [0, 1]
    for r in records:
        assert r["n_samples"] == 2 and r["failed"] == 0  # every reward arrived
        assert 0 <= r["process_reward"] <= 1 and r["outcome_reward"] in (0.0, 0.5, 1.0)
        assert r["skill_scores"] and 0 <= r["fallback_rate"] <= 1
    assert (tmp_path / "skill_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "rewards arrived from SCRIBE-RM" in run.stdout
