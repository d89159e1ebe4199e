import math

import pytest

from scribe_rm.pipeline.aggregate import combine, process_reward
from scribe_rm.pipeline.judges import JudgeError, ScoreDistribution


def test_expectation_over_label_probabilities():
    d = ScoreDistribution.from_logprobs([math.log(p) for p in (0.1, 0.2, 0.3, 0.4)])
    assert d.probabilities == pytest.approx((0.1, 0.2, 0.3, 0.4))
    assert d.expected == pytest.approx(0 * 0.1 + 1 * 0.2 + 2 * 0.3 + 3 * 0.4)
    assert d.label == 3 and d.confidence == pytest.approx(0.4)
    assert d.label_mass == pytest.approx(1.0)


def test_unconstrained_read_renormalizes_and_reports_mass():
    d = ScoreDistribution.from_logprobs([math.log(0.01), math.log(0.01), math.log(0.06), math.log(0.02)])
    assert sum(d.probabilities) == pytest.approx(1.0)
    assert d.probabilities[2] == pytest.approx(0.6)
    assert d.label_mass == pytest.approx(0.10)


def test_absent_labels_get_zero_probability():
    d = ScoreDistribution.from_logprobs([-math.inf, -math.inf, 0.0, -math.inf])
    assert d.probabilities == (0.0, 0.0, 1.0, 0.0) and d.expected == 2.0


@pytest.mark.parametrize("bad", [[-math.inf] * 4, [0.0, math.nan, 0.0, 0.0], [0.0, 0.0, 0.0]])
def test_unusable_logprobs_raise(bad):
    with pytest.raises(JudgeError):
        ScoreDistribution.from_logprobs(bad)


@pytest.mark.parametrize("how, expected", [
    ("mean", 0.625), ("min", 0.0), ("last", 1.0), ("product", 0.0), ("first_error", 0.25)])
def test_aggregations(how, expected):
    assert process_reward([1.0, 0.0, 0.5, 1.0], how) == pytest.approx(expected)


def test_first_error_without_errors_is_full_credit():
    assert process_reward([0.9, 0.6, 0.7], "first_error", error_threshold=0.5) == 1.0


def test_product_of_partial_scores():
    assert process_reward([0.5, 0.5, 0.8], "product") == pytest.approx(0.2)


def test_combine_uses_paper_weights_with_outcome_and_process_alone_without():
    assert combine(0.5, 1.0, 0.7, 0.3) == pytest.approx(0.85)
    assert combine(0.5, 0.0, 0.7, 0.3) == pytest.approx(0.15)
    assert combine(0.5, None, 0.7, 0.3) == 0.5
    assert combine(0.5, 1.0, 0.0, 1.0) == 0.5
