"""The dense reward tensor of scribe_client/verl_dense.py under the real verl (issue 27): run in verl's own
virtualenv (scripts/verl_setup.sh, pinned by requirements/verl.lock) against a real service with the scripted
judge, verl's GAE (toy value) and REINFORCE++ give the tokens of a step scored 0 less advantage than those of
the steps scored 3 around it."""

from __future__ import annotations

import json
import subprocess

import pytest

from conftest import REPO, ScriptedJudge, serving_in_thread
from scribe_rm.api.app import create_app
from scribe_rm.blocks.weights import CACHE_ROOT
from scribe_rm.settings import Settings

VERL_PYTHON = REPO / ".venv-verl" / "bin" / "python"
pytestmark = [pytest.mark.model,
              pytest.mark.skipif(not VERL_PYTHON.exists(), reason="run scripts/verl_setup.sh (scripts/test.sh does)")]


@pytest.fixture(scope="module")
def verl_run():
    with serving_in_thread(create_app(Settings(), judge=ScriptedJudge())) as url:
        run = subprocess.run([str(VERL_PYTHON), str(REPO / "tests" / "verl" / "dense_advantages.py"), url,
                              str(CACHE_ROOT / "models" / "smollm2-135m-instruct")],
                             capture_output=True, text=True, timeout=600, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def mean_over(values: list[float], span: list[int]) -> float:
    first, last = span
    return sum(values[first:last + 1]) / (last - first + 1)


def test_the_dense_tensor_has_each_steps_reward_at_its_last_token(verl_run):
    rewards, steps, mask = verl_run["rewards"], verl_run["steps"], verl_run["mask"]
    assert verl_run["shape"] == [2, len(mask[0])]
    for row, spans, valid, extra in zip(rewards, steps, mask, verl_run["extra"]):
        assert extra["judge_ok"] == 1.0 and extra["n_steps"] == 3 and extra["unmapped_steps"] == 0
        ends = {last for _, last in spans}
        last_valid = max(i for i, m in enumerate(valid) if m)
        assert all(r == 0.0 for i, r in enumerate(row) if i not in ends | {last_valid})  # nowhere else
        assert sum(row) == pytest.approx(extra["scribe_reward"], abs=1e-5)  # they sum to the scalar reward


@pytest.mark.parametrize("estimator", ["gae", "reinforce_pp"])
def test_verls_estimators_give_a_step_scored_0_less_advantage_than_the_steps_scored_3(verl_run, estimator):
    bad_step = {0: 1, 1: 0}  # response 0: GOOD, BAD, GOOD; response 1: BAD, GOOD, GOOD
    for row, (advantages, spans) in enumerate(zip(verl_run[estimator], verl_run["steps"])):
        bad = mean_over(advantages, spans[bad_step[row]])
        good = [mean_over(advantages, span) for k, span in enumerate(spans) if k != bad_step[row]]
        assert all(bad < g for g in good), (estimator, row, bad, good)
