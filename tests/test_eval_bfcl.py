import json
import random

import pytest
from typer.testing import CliRunner

from scribe_rm.cli import app
from scribe_rm.evaluation.bfcl import PERTURBATIONS, build_cases, load_multi_turn, perturb

FUNCTIONS = ["cd", "ls", "mkdir", "mv"]


def test_perturbations_change_one_thing():
    rng = random.Random(0)
    call = "mv(source='a.pdf', destination='temp')"
    assert perturb(call, "wrong_function", rng, FUNCTIONS).startswith(("cd(", "ls(", "mkdir("))
    missing = perturb(call, "missing_argument", rng, FUNCTIONS)
    assert missing.count("=") == 1
    wrong = perturb(call, "wrong_argument", rng, FUNCTIONS)
    assert wrong != call and "_old'" in wrong and wrong.split("(")[0] == "mv"
    assert perturb("ls()", "missing_argument", rng, FUNCTIONS) is None


def test_cases_from_packaged_bfcl_data_are_deterministic():
    records = load_multi_turn(3)
    assert len(records) == 3 and all(len(turns) == len(gold) for _, turns, gold in records)
    cases = build_cases(records, seed=1)
    assert cases == build_cases(records, seed=1)
    assert {c.kind for c in cases} == set(PERTURBATIONS)
    for case in cases:
        if case.kind == "skipped_prerequisite":
            assert case.gold[-1] == case.perturbed[-1] and len(case.perturbed) == len(case.gold) - 1
        elif case.kind == "unneeded_call":
            assert case.perturbed[:-1] == case.gold and case.perturbed[-1].text.endswith("()")
        else:
            assert case.gold[:-1] == case.perturbed[:-1] and case.gold[-1] != case.perturbed[-1]


@pytest.mark.model
def test_bfcl_slice_runs_on_the_embedded_judge(tmp_path):
    result = CliRunner().invoke(app, ["eval", "bfcl", "--records", "2", "--max-cases", "4", "--out-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "bfcl.json").read_text())
    assert report["n_cases"] == 4
    for method in ("scribe", "baseline"):
        assert 0 <= report[method]["pairwise_accuracy"] <= 1
        assert len(report["scores"][method]["gold"]) == 4
    assert sum(report["scribe"]["routing"].values()) == 8  # every scored step was routed
    assert "| all |" in (tmp_path / "bfcl.md").read_text()
    assert (tmp_path / "bfcl_scores.png").read_bytes()[:4] == b"\x89PNG"
