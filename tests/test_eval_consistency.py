import json
import math
import random

import pytest
from typer.testing import CliRunner

from scribe_rm.cli import app
from scribe_rm.evaluation.consistency import group_metrics, repeat_metrics
from scribe_rm.pipeline.judges import ScoreDistribution


def dist(*probs):
    return ScoreDistribution.from_logprobs([math.log(p) if p else -math.inf for p in probs])


def test_certain_judge_agrees_always():
    r = repeat_metrics([dist(0, 0, 1, 0), dist(0, 0, 0, 1)], samples=10, rng=random.Random(0))
    assert r == {"agreement": 1.0, "reward_std": 0.0}


def test_uncertain_judge_disagrees_sometimes():
    r = repeat_metrics([dist(0.25, 0.25, 0.25, 0.25)] * 3, samples=50, rng=random.Random(0))
    assert r["agreement"] < 0.5 and r["reward_std"] > 0.1


def test_group_metrics():
    g = group_metrics([dist(0, 0, 1, 0), dist(0, 0, 1, 0), dist(0, 0, 0, 1)])
    assert g["agreement"] == pytest.approx(1 / 3)  # one of three pairs agrees
    assert g["mean_gap"] == pytest.approx((0 + 1 + 1) / 3)


@pytest.mark.model
def test_consistency_slice_runs_on_the_embedded_judge(tmp_path):
    out, md = tmp_path / "c.json", tmp_path / "c.md"
    result = CliRunner().invoke(app, ["eval", "consistency", "--limit", "1", "--samples", "10",
                                      "--json-out", str(out), "--md-out", str(md)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["n_trajectories"] == 1 and report["n_groups"] == 1 and report["judge_model"].startswith("local:")
    for method in ("scribe", "baseline"):
        m = report[method]
        assert 0 < m["repeat_agreement"] <= 1 and 0 <= m["cross_agreement"] <= 1 and 0 <= m["cross_mean_gap"] <= 3
    assert "| repeat: exact reward agreement |" in md.read_text()
