import numpy as np
import pytest

from convrec.catalog.items import Catalog, Item
from convrec.data.dataset import Split
from convrec.data.model import Dialogue, Turn
from convrec.retrieval import RECOMMENDERS, build_recommender


def dialogue(did, split, *turns):
    return Dialogue(did, split, [Turn(role, "", tuple(items)) for role, items in turns])


@pytest.fixture
def world():
    catalog = Catalog([Item(c, f"Movie {c}") for c in "abcdef"])
    # a and b always co-occur; c and d co-occur; e is popular on its own
    train = Split("train", catalog, [
        dialogue("t1", "train", ("seeker", "a"), ("recommender", "b")),
        dialogue("t2", "train", ("seeker", "a"), ("recommender", "b"), ("recommender", "e")),
        dialogue("t3", "train", ("seeker", "c"), ("recommender", "d")),
        dialogue("t4", "train", ("seeker", "c"), ("recommender", "d")),
        dialogue("t5", "train", ("seeker", "e"), ("recommender", "e")),
        dialogue("t6", "train", ("seeker", "f"), ("recommender", "e")),
    ])
    test = Split("test", catalog, [
        dialogue("q1", "test", ("seeker", "a"), ("recommender", "b")),
        dialogue("q2", "test", ("seeker", "c"), ("seeker", "a"), ("recommender", "d")),
        dialogue("q3", "test", ("seeker", ""), ("recommender", "e")),
    ])
    return catalog, train, test


def test_registry_lists_every_baseline():
    assert {"popularity", "repeat", "itemknn", "ease", "dense-text"} <= set(RECOMMENDERS)


def test_unknown_option_is_an_error(world):
    catalog, _, _ = world
    with pytest.raises(ValueError, match="option 'neighbours'"):
        build_recommender("itemknn", catalog, {"neighbours": 3})


def test_popularity_ranks_most_mentioned_first(world):
    catalog, train, test = world
    rec = build_recommender("popularity", catalog)
    rec.fit(train)
    scores = rec.score(test.samples)
    assert scores.shape == (3, 6)
    assert int(scores[0].argmax()) == catalog.index_of["e"]


def test_repeat_puts_most_recent_mention_first(world):
    catalog, train, test = world
    rec = build_recommender("repeat", catalog)
    scores = rec.score(test.samples)
    second = scores[1]  # context c then a
    assert second[catalog.index_of["a"]] > second[catalog.index_of["c"]] > second[catalog.index_of["b"]]


@pytest.mark.parametrize("name", ["itemknn", "ease"])
def test_item_models_follow_cooccurrence(world, name):
    catalog, train, test = world
    rec = build_recommender(name, catalog, {"l2": 1.0} if name == "ease" else None)
    rec.fit(train)
    scores = rec.score(test.samples)
    assert int(scores[0].argmax()) == catalog.index_of["b"]  # after a comes b
    # empty context falls back to popularity: e first
    assert int(scores[2].argmax()) == catalog.index_of["e"]


def test_ease_chooses_l2_on_validation(world):
    catalog, train, test = world
    valid = Split("valid", catalog, [dialogue("v1", "valid", ("seeker", "c"), ("recommender", "d"))])
    rec = build_recommender("ease", catalog, {"l2_grid": [0.5, 5000.0]})
    rec.fit(train, valid)
    assert rec.l2_ in (0.5, 5000.0)
    assert set(rec.describe()["validation_recall@10"]) == {0.5, 5000.0}


def test_itemknn_keeps_only_top_neighbours(world):
    catalog, train, _ = world
    rec = build_recommender("itemknn", catalog, {"neighbors": 1})
    rec.fit(train)
    nonzero_per_row = np.diff(rec.similarity_.indptr)
    assert nonzero_per_row.max() <= 1
