"""Exact values of the metrics at the edges a slip would move: the head/tail boundary, per-row list
metrics, coverage, rows without genres, ties at the cut-off of a top list, two-item catalogues and the
registry itself. Each test was written against a mutant that tests/evaluate/test_metrics.py let through
(docs/development.md)."""

from __future__ import annotations

import numpy as np
import pytest

from convrec.evaluate.metrics import (
    ACCURACY_CUTOFFS,
    METRICS,
    Coverage,
    GenreILD,
    LongTailShare,
    PopularityPercentile,
    TopLists,
    _registry,
    popularity_percentiles,
    split_by_target_popularity,
    top_lists,
)

# counts 0..5: percentiles 0, 0.2, 0.4, 0.6, 0.8, 1.0; 0.8 is exactly the head's lower bound
PERCENTILES = popularity_percentiles(np.arange(6))


def lists(items, genres=None) -> TopLists:
    items = np.asarray(items)
    return TopLists(items, PERCENTILES, genres or [frozenset()] * 6, 6)


def test_the_registry_builds_every_metric_once():
    expected = [name for k in ACCURACY_CUTOFFS for name in (f"recall@{k}", f"ndcg@{k}")]
    expected += ["mrr", "coverage@10", "pop_percentile@10", "long_tail@10", "ild_genre@10", "disliked_in@10"]
    assert list(_registry()) == expected == list(METRICS)


def test_a_target_at_the_head_boundary_is_a_head_target():
    values = {name: np.ones(2) for name in ("recall@10", "ndcg@10", "recall@50")}
    split = split_by_target_popularity(values, np.array([0.8, 0.6]))
    assert split["head:recall@10"][0] == 1.0 and np.isnan(split["head:recall@10"][1])
    assert np.isnan(split["tail:recall@10"][0]) and split["tail:recall@10"][1] == 1.0


def test_list_metrics_are_per_row_and_the_boundary_is_head():
    data = lists([[4, 5], [0, 1]])
    np.testing.assert_allclose(PopularityPercentile().per_sample(data), [0.9, 0.1])
    np.testing.assert_allclose(LongTailShare().per_sample(data), [0.0, 1.0])  # 0.8 is head, not tail


def test_coverage_is_the_share_of_the_catalogue():
    np.testing.assert_allclose(Coverage().per_sample(lists([[0, 1], [1, 2]])), [0.5, 0.5])


def test_genre_ild_goes_on_after_a_row_without_genres():
    genres = [frozenset(), frozenset(), frozenset({"horror"}), frozenset({"comedy"}), frozenset(), frozenset()]
    values = GenreILD().per_sample(lists([[0, 1], [2, 3]], genres))
    assert np.isnan(values[0]) and values[1] == 1.0


def test_top_lists_sort_the_items_above_the_cut_best_first():
    scores = np.array([[0.2, 0.9, 0.5, 0.7, 0.0, 0.0]])
    assert top_lists(scores, np.random.default_rng(0), size=3)[0].tolist() == [1, 3, 2]


def test_ties_at_the_cut_fill_the_list_without_repeating_an_item():
    scores = np.zeros((50, 12))
    scores[:, 0] = 1.0
    for top in top_lists(scores, np.random.default_rng(0), size=10):
        assert top[0] == 0 and len(set(top.tolist())) == 10


def test_two_items_get_percentiles_zero_and_one():
    np.testing.assert_allclose(popularity_percentiles(np.array([3, 1])), [1.0, 0.0])


@pytest.mark.parametrize("size", [1, 6])
def test_a_list_never_exceeds_the_catalogue(size):
    assert top_lists(np.arange(6.0)[None, :], np.random.default_rng(0), size=size).shape == (1, size)
