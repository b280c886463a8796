"""Paired differences: mean and standard error of the per-sample difference, over samples both define."""

from __future__ import annotations

import numpy as np
import pytest

from convrec.evaluate.experiment import ResultsExperiment
from convrec.evaluate.paired import paired_differences


def test_mean_and_standard_error_of_the_per_sample_difference():
    base = {"ndcg@10": np.array([0.0, 1.0, 0.5, 0.5]), "tail:recall@10": np.array([np.nan, 1.0, 0.0, np.nan]),
            "coverage@10": np.full(4, 0.3)}
    other = {"ndcg@10": np.array([0.5, 1.0, 0.5, 1.0]), "tail:recall@10": np.array([1.0, 1.0, 1.0, np.nan]),
             "coverage@10": np.full(4, 0.4)}
    out = paired_differences(base, other, ["ndcg@10", "tail:recall@10", "coverage@10", "mrr"])
    diff = np.array([0.5, 0.0, 0.0, 0.5])
    assert out["ndcg@10"]["diff"] == pytest.approx(0.25)
    assert out["ndcg@10"]["stderr"] == pytest.approx(diff.std(ddof=1) / 2)  # sqrt(4) samples
    assert out["ndcg@10"]["n"] == 4
    assert out["tail:recall@10"] == {"diff": pytest.approx(0.5), "stderr": pytest.approx(0.5), "n": 2}  # NaN off
    assert "coverage@10" not in out and "mrr" not in out  # corpus-level; absent from the inputs


def test_identical_rows_differ_by_exactly_zero_and_other_samples_are_refused():
    values = {"recall@10": np.array([1.0, 0.0, 1.0])}
    assert paired_differences(values, values, ["recall@10"])["recall@10"] == {"diff": 0.0, "stderr": 0.0, "n": 3}
    with pytest.raises(ValueError, match="same samples"):
        paired_differences(values, {"recall@10": np.array([1.0, 0.0])}, ["recall@10"])


def test_the_baseline_must_name_exactly_one_recommender():
    recommenders = [{"name": "popularity"}, {"name": "ease", "label": "EASE"}]
    assert ResultsExperiment(baseline="EASE", recommenders=recommenders).baseline == "EASE"
    with pytest.raises(ValueError, match="none of the recommenders"):
        ResultsExperiment(baseline="ease", recommenders=recommenders)  # the label, once given, is the name
    with pytest.raises(ValueError, match="distinct labels"):
        ResultsExperiment(baseline="popularity", recommenders=[{"name": "popularity"}, {"name": "popularity"}])


def test_rows_that_name_their_samples_pair_on_the_ones_they_share():
    from convrec.evaluate.paired import SampleValues

    base = SampleValues({"recall@10": np.array([0.1, 0.2, 0.3, 0.4])}, ("a", "b", "c", "d"))
    short = SampleValues({"recall@10": np.array([0.7, 0.9, 0.5])}, ("e", "c", "a"))  # e: the baseline lacks it
    out = paired_differences(base, short, ["recall@10"])["recall@10"]
    # shared: a (0.5 - 0.1 = 0.4) and c (0.9 - 0.3 = 0.6)
    assert out == {"diff": pytest.approx(0.5), "stderr": pytest.approx(0.1), "n": 2}
    assert paired_differences(short, base, ["recall@10"])["recall@10"]["diff"] == pytest.approx(-0.5)
    with pytest.raises(ValueError, match="names its samples"):
        paired_differences(base, {"recall@10": np.array([0.1, 0.2, 0.3, 0.4])}, ["recall@10"])


def test_a_ratio_metric_differs_by_the_difference_of_its_ratios_with_the_delta_method_error():
    from convrec.evaluate.paired import Ratio, SampleValues
    from convrec.simulate.metrics import ratio

    numerator, denominator = np.array([1.0, 0.0, 2.0, 3.0]), np.array([2.0, 1.0, 3.0, 3.0])
    other = SampleValues({"rejection_rate": Ratio(numerator, denominator)}, ("a", "b", "c", "d"))
    # a baseline that is 0 everywhere: the difference is the other's ratio, with that ratio's own standard error
    zero = SampleValues({"rejection_rate": Ratio(np.zeros(4), denominator)}, ("d", "c", "b", "a"))
    out = paired_differences(zero, other, ["rejection_rate"])["rejection_rate"]
    value, error = ratio(numerator, denominator)
    assert out == {"diff": pytest.approx(value), "stderr": pytest.approx(error), "n": 4}
    # on shared samples only: a and d
    half = SampleValues({"rejection_rate": Ratio(np.array([2.0, 0.0]), np.array([2.0, 3.0]))}, ("a", "d"))
    out = paired_differences(half, other, ["rejection_rate"])["rejection_rate"]
    assert out["n"] == 2 and out["diff"] == pytest.approx((1 + 3) / (2 + 3) - (2 + 0) / (2 + 3))
    assert paired_differences(other, other, ["rejection_rate"])["rejection_rate"]["stderr"] == 0.0


def test_rows_on_a_dataset_that_shares_the_baseline_datasets_samples_pair_with_the_same_recommender():
    from convrec.evaluate.paired import add_dataset_differences

    def row(dataset, recommender, n=4):
        return {"dataset": dataset, "recommender": recommender, "protocol": "standard", "n_samples": n}

    results = [row("redial", "a"), row("redial", "b"), row("redial-joined", "a"), row("redial-joined", "b")]
    values = [{"recall@10": np.array(v, dtype=float)} for v in
              ([1, 1, 0, 1], [0, 1, 0, 0], [1, 0, 0, 1], [0, 1, 0, 0])]
    add_dataset_differences(results, values, "redial", ["recall@10"])
    assert "paired_dataset" not in results[0] and "paired_dataset" not in results[1]
    assert results[2]["paired_dataset"]["metrics"]["recall@10"]["diff"] == pytest.approx(-0.25)  # a vs a
    assert results[3]["paired_dataset"]["metrics"]["recall@10"]["diff"] == 0.0  # b vs b, not vs a
    assert results[2]["paired_dataset"]["n"] == 4
    with pytest.raises(ValueError, match="do not share their samples"):
        add_dataset_differences([row("redial", "a"), row("inspired", "a", 3)], values[:2], "redial", ["recall@10"])
    with pytest.raises(ValueError, match="none of the datasets"):
        ResultsExperiment(datasets=["redial"], baseline_dataset="inspired")
