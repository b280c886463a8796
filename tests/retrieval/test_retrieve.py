"""``Recommender.retrieve``: the top ``k`` of a sample's scores, with items left out (``exclude``) and items
put first (``prefer``, the chat's people-first order), on the shared 40-item world (tests/worlds.py) with a
real fitted ``itemknn``. Expected orders are computed here from ``score()`` by a plain sort, not by the
code under test."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convrec.data.model import ContextView, Turn
from convrec.retrieval import build_recommender
from convrec.retrieval.base import top_indices
from worlds import cluster_ids


@pytest.fixture(scope="module")
def itemknn(test_world):
    recommender = build_recommender("itemknn", test_world.catalog)
    recommender.fit(test_world.train)
    return recommender


def liked(*item_ids: str) -> ContextView:
    return ContextView("d", (Turn("seeker", "I liked these", tuple(item_ids)),))


def sorted_by_score(row: np.ndarray, columns: list[int]) -> list[int]:
    """``columns`` best first, ties in catalogue order."""
    return sorted(columns, key=lambda c: (-row[c], c))


def test_preferred_items_come_first_however_low_they_score_then_the_best_of_the_rest(itemknn, test_world):
    catalog = test_world.catalog
    sample = liked("horror0", "horror1")
    row = itemknn.score([sample])[0]
    romance = catalog.indices(cluster_ids("romance")[:3])
    horror = catalog.indices(cluster_ids("horror"))
    assert max(row[romance]) < min(row[horror[2:]])  # the preferred items are the retriever's last choices
    excluded = catalog.indices(["horror0", "horror1"])
    (found,) = itemknn.retrieve([sample], 6, [["horror0", "horror1"]], prefer=[cluster_ids("romance")[:3]])
    rest = [c for c in range(len(catalog)) if c not in romance and c not in excluded]
    expected = sorted_by_score(row, romance) + sorted_by_score(row, rest)[:3]
    assert found.item_ids == [catalog.ids[c] for c in expected]
    assert set(found.item_ids[3:]) <= set(cluster_ids("horror")[2:])  # the rest: the context's cluster
    np.testing.assert_array_equal(found.scores, row[expected].astype(np.float64))


def test_more_preferred_items_than_k_keeps_the_best_of_them_and_excluded_ones_stay_out(itemknn, test_world):
    catalog = test_world.catalog
    sample = liked("animation0")
    row = itemknn.score([sample])[0]
    animation = cluster_ids("animation")
    (found,) = itemknn.retrieve([sample], 4, [["animation0", "animation1"]], prefer=[animation])
    expected = sorted_by_score(row, catalog.indices(animation[2:]))[:4]
    assert found.item_ids == [catalog.ids[c] for c in expected]
    # Without prefer, the plain top k with the same exclusions.
    (plain,) = itemknn.retrieve([sample], 4, [["animation0"]])
    others = [c for c in range(len(catalog)) if catalog.ids[c] != "animation0"]
    assert plain.item_ids == [catalog.ids[c] for c in sorted_by_score(row, others)[:4]]


def test_top_indices_prefer_keeps_ties_in_catalogue_order_and_the_excluded_out():
    scores = np.array([0.5, 0.9, 0.1, 0.9, 0.1, np.nan, 0.7])
    assert top_indices(scores, 4, exclude=[1], prefer=[2, 4, 5]).tolist() == [2, 4, 5, 3]
    assert top_indices(scores, 2, prefer=[0, 6]).tolist() == [6, 0]
    assert top_indices(scores, 3, exclude=[6], prefer=[6]).tolist() == [1, 3, 0]  # an excluded preference
    assert top_indices(scores, 3, prefer=[]).tolist() == top_indices(scores, 3).tolist() == [1, 3, 6]


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.sampled_from([0.0, 0.0, 0.0, 1.0, 2.0, -1.0, float("nan"), float("-inf")]) |
                       st.floats(-5, 5), min_size=1, max_size=60),
       k=st.integers(1, 70), data=st.data())
def test_top_indices_equals_a_stable_sort_with_ties_nan_and_exclusions(values, k, data):
    """Mostly-tied scores (item-kNN's zeros) take a faster path: the answer is still the stable sort's."""
    scores = np.array(values)
    exclude = data.draw(st.lists(st.integers(0, len(values) - 1), max_size=len(values)))
    kept = [i for i in range(len(values)) if i not in set(exclude)]
    key = np.nan_to_num(scores, nan=-np.inf)
    expected = sorted(kept, key=lambda i: (-key[i], i))[:k]
    assert top_indices(scores, k, exclude).tolist() == expected
