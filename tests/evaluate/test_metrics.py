"""Metrics checked against values worked out by hand."""

import math

import numpy as np
import pytest

from convrec.evaluate.metrics import (
    METRICS,
    MRR,
    DislikedInList,
    GenreILD,
    LongTailShare,
    NDCGAt,
    RankedTargets,
    RecallAt,
    TopLists,
    popularity_percentiles,
    ranked_targets,
    top_lists,
)
from convrec.evaluate.runner import answered_not_liked


def ranked(greater, ties, n_items=100):
    return RankedTargets(np.asarray(greater), np.asarray(ties), n_items)


def test_ranked_targets_counts_greater_and_ties():
    scores = np.array([[0.9, 0.5, 0.5, 0.1], [0.2, 0.2, 0.2, 0.2]], dtype=np.float32)
    out = ranked_targets(scores, np.array([1, 3]))
    assert out.greater.tolist() == [1, 0]
    assert out.ties.tolist() == [1, 3]


def test_recall_without_ties_is_rank_cutoff():
    # ranks 1, 5, 6, 11 -> greater 0, 4, 5, 10
    data = ranked([0, 4, 5, 10], [0, 0, 0, 0])
    assert RecallAt(1).per_sample(data).tolist() == [1, 0, 0, 0]
    assert RecallAt(5).per_sample(data).tolist() == [1, 1, 0, 0]
    assert RecallAt(10).per_sample(data).tolist() == [1, 1, 1, 0]


def test_ndcg_without_ties_is_inverse_log_rank():
    data = ranked([0, 2, 9, 10], [0, 0, 0, 0])
    got = NDCGAt(10).per_sample(data)
    expected = [1.0, 1 / math.log2(4), 1 / math.log2(11), 0.0]
    assert got == pytest.approx(expected)


def test_mrr_without_ties():
    assert MRR().per_sample(ranked([0, 1, 3], [0, 0, 0])) == pytest.approx([1.0, 0.5, 0.25])


def test_ties_are_broken_uniformly_in_expectation():
    # target tied with 3 others, 1 item above: position uniform over 2..5
    data = ranked([1], [3])
    assert RecallAt(1).per_sample(data)[0] == 0.0
    assert RecallAt(2).per_sample(data)[0] == pytest.approx(0.25)
    assert RecallAt(3).per_sample(data)[0] == pytest.approx(0.5)
    assert RecallAt(5).per_sample(data)[0] == pytest.approx(1.0)
    assert MRR().per_sample(data)[0] == pytest.approx((1 / 2 + 1 / 3 + 1 / 4 + 1 / 5) / 4)
    ndcg3 = (1 / math.log2(3) + 1 / math.log2(4)) / 4  # positions 2 and 3 count, 4 and 5 are past the cutoff
    assert NDCGAt(3).per_sample(data)[0] == pytest.approx(ndcg3)


def test_all_equal_scores_give_chance_level():
    n_items = 50
    scores = np.zeros((1, n_items), dtype=np.float32)
    data = ranked_targets(scores, np.array([7]))
    assert RecallAt(10).per_sample(data)[0] == pytest.approx(10 / n_items)
    assert MRR().per_sample(data)[0] == pytest.approx(sum(1 / p for p in range(1, n_items + 1)) / n_items)


def test_registry_has_every_cutoff_and_beyond_accuracy_metrics():
    for k in (1, 5, 10, 20, 50):
        assert f"recall@{k}" in METRICS and f"ndcg@{k}" in METRICS
    for name in ("mrr", "coverage@10", "pop_percentile@10", "long_tail@10", "ild_genre@10"):
        assert name in METRICS


def test_popularity_percentiles_average_ties():
    pct = popularity_percentiles(np.array([5.0, 0.0, 0.0, 9.0, 1.0]))
    # order: 0,0 (ranks 0,1 -> 0.5), 1 (2), 5 (3), 9 (4); divided by 4
    assert pct.tolist() == pytest.approx([0.75, 0.125, 0.125, 1.0, 0.5])


def test_long_tail_share_and_genre_ild():
    pct = np.array([1.0, 0.9, 0.1, 0.0])
    genres = [frozenset({"a"}), frozenset({"a", "b"}), frozenset(), frozenset({"c"})]
    lists = TopLists(np.array([[0, 1, 2], [2, 3, 0]]), pct, genres, 4)
    assert LongTailShare().per_sample(lists).tolist() == pytest.approx([1 / 3, 2 / 3])
    ild = GenreILD().per_sample(lists)
    assert ild[0] == pytest.approx(0.5)  # {a} vs {a,b}: jaccard 1/2; item 2 has no genres
    assert ild[1] == pytest.approx(1.0)  # {c} vs {a}


def test_disliked_in_list_reads_the_questionnaire_and_skips_dialogues_without_answers():
    pct = np.zeros(4)
    genres = [frozenset()] * 4
    items = np.array([[0, 1], [2, 3], [0, 3]])
    lists = TopLists(items, pct, genres, 4, [frozenset({1}), frozenset({1}), None])
    values = DislikedInList().per_sample(lists)
    assert values[:2].tolist() == [1.0, 0.0] and np.isnan(values[2])
    assert np.isnan(DislikedInList().per_sample(TopLists(items, pct, genres, 4))).all()


def test_answered_not_liked_is_none_without_liked_answers(tiny_catalog_samples):
    catalog, with_answers, without = tiny_catalog_samples
    assert answered_not_liked(with_answers, catalog) == frozenset({catalog.index_of["b"]})
    assert answered_not_liked(without, catalog) is None


@pytest.fixture
def tiny_catalog_samples():
    from convrec.catalog.items import Catalog, Item
    from convrec.data.model import Dialogue, ItemFeedback, RecSample, Turn

    catalog = Catalog([Item("a", "A", 2000, {}), Item("b", "B", 2001, {}), Item("c", "C", 2002, {})], name="t")
    turns = [Turn("seeker", "I hated B", ("b",)), Turn("recommender", "Try A", ("a",))]
    answered = Dialogue("d1", "test", turns, feedback={"a": ItemFeedback(liked=True), "b": ItemFeedback(liked=False),
                                                         "c": ItemFeedback(seen=True)})
    silent = Dialogue("d2", "test", turns, feedback={"b": ItemFeedback(seen=True)})
    return catalog, RecSample(answered, 1, "a"), RecSample(silent, 1, "a")


def test_top_lists_are_best_first_and_break_ties_randomly():
    scores = np.array([[0.1, 0.9, 0.5, 0.5, 0.5, 0.0]], dtype=np.float32)
    seen = set()
    for seed in range(20):
        top = top_lists(scores, np.random.default_rng(seed), size=2)[0]
        assert top[0] == 1 and top[1] in (2, 3, 4)
        seen.add(int(top[1]))
    assert len(seen) > 1  # ties are not always resolved to the lowest index
