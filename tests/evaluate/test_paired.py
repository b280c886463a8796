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
