"""The baselines on the shared 40-item test world (tests/worlds.py): three clusters of 12 movies, a
blockbuster and three documentaries never mentioned in training."""

import numpy as np
import pytest

from convrec.data.dataset import Split
from convrec.data.model import Dialogue, Turn
from convrec.evaluate.metrics import recall_and_ndcg_at
from convrec.retrieval import RECOMMENDERS, build_recommender
from worlds import BLOCKBUSTER, CLUSTER_SIZE, cluster_ids


def recall_at_10(recommender, split: Split) -> float:
    samples = split.selection_samples
    targets = np.asarray(split.catalog.indices(s.target for s in samples))
    return float(recall_and_ndcg_at(recommender.score(samples), targets)[0].mean())


def top(scores_row: np.ndarray, catalog, n: int) -> set[str]:
    return {catalog.ids[i] for i in np.argsort(-scores_row, kind="stable")[:n]}


def test_registry_lists_every_baseline():
    assert {"popularity", "repeat", "itemknn", "ease", "dense-text"} <= set(RECOMMENDERS)


def test_unknown_option_is_an_error(test_world):
    with pytest.raises(ValueError, match="option 'neighbours'"):
        build_recommender("itemknn", test_world.catalog, {"neighbours": 3})


def test_popularity_ranks_the_blockbuster_first_and_scores_near_chance(test_world):
    rec = build_recommender("popularity", test_world.catalog)
    rec.fit(test_world.train)
    scores = rec.score(test_world.valid.samples)
    assert scores.shape == (3 * (CLUSTER_SIZE - 1), 40)
    assert (scores.argmax(axis=1) == test_world.catalog.index_of[BLOCKBUSTER]).all()
    # every cluster movie is mentioned 22 times: they tie, so a cluster target's Recall@10 is 9/36 in expectation
    assert recall_at_10(rec, test_world.valid) == pytest.approx(9 / 36)


def test_repeat_puts_most_recent_mention_first(test_world):
    catalog = test_world.catalog
    dialogue = Dialogue("r", "test", [Turn("seeker", "", ("horror3",)), Turn("seeker", "", ("romance5",)),
                                      Turn("recommender", "", ("horror3",))])
    [scores] = build_recommender("repeat", catalog).score(Split("test", catalog, [dialogue]).samples)
    assert scores[catalog.index_of["romance5"]] > scores[catalog.index_of["horror3"]] > 0
    assert np.count_nonzero(scores) == 2


@pytest.mark.parametrize("name", ["itemknn", "ease"])
def test_item_models_follow_cooccurrence(test_world, name):
    catalog = test_world.catalog
    rec = build_recommender(name, catalog, {"l2": 1.0} if name == "ease" else None)
    rec.fit(test_world.train)
    scores = rec.score(test_world.valid.samples)
    for row, sample in zip(scores, test_world.valid.samples, strict=True):
        genre = sample.context_items[0].rstrip("0123456789")
        # the 11 other movies of the context's cluster come first, in any order
        assert top(row, catalog, CLUSTER_SIZE - 1) == set(cluster_ids(genre)) - set(sample.context_items)
    # 11 samples per context share one ranking: at most 10 of their 11 targets fit in a top 10
    assert recall_at_10(rec, test_world.valid) == pytest.approx(10 / 11)
    # no movie named: popularity, the blockbuster first
    empty = Split("test", catalog, [Dialogue("e", "test", [Turn("seeker", "hello"),
                                                           Turn("recommender", "", ("horror0",))])])
    assert int(rec.score(empty.samples)[0].argmax()) == catalog.index_of[BLOCKBUSTER]


def explaining_away_train(test_world) -> Split:
    """The world's training dialogues, plus: whoever names horror0 together with the climbing documentary is
    recommended a romance, 3 times for each romance. horror0 now co-occurs 3 times with each romance and 2
    times with each horror movie; but every romance is fully explained by the documentary. A large l2 makes
    EASE rank by raw co-occurrence (romances first: a horror target misses the top 10), a small one fits the
    regression that credits the documentary (horror first)."""
    extra = [Dialogue(f"x-{romance}-{n}", "train", [Turn("seeker", "", ("horror0", "climb")),
                                                    Turn("recommender", "", (romance,))])
             for romance in cluster_ids("romance") for n in range(3)]
    return Split("train", test_world.catalog, [*test_world.train.dialogues, *extra])


def test_ease_chooses_l2_on_validation(test_world):
    catalog = test_world.catalog
    valid = Split("valid", catalog, [d for d in test_world.valid.dialogues if d.dialogue_id.startswith("valid-horror0-")])
    # the right value sits between two wrong ones: keeping the first, the last or the worst fails
    rec = build_recommender("ease", catalog, {"l2_grid": [1000.0, 1.0, 5000.0]})
    rec.fit(explaining_away_train(test_world), valid)
    assert rec.l2_ == 1.0
    validation = rec.describe()["validation_recall@10"]
    assert validation[1000.0] == validation[5000.0] == 0.0 and validation[1.0] == pytest.approx(9 / 11, abs=1e-4)
    assert recall_at_10(rec, valid) == pytest.approx(validation[1.0], abs=1e-4)  # the chosen weights are kept


def test_itemknn_keeps_only_top_neighbours(test_world):
    rec = build_recommender("itemknn", test_world.catalog, {"neighbors": 1})
    rec.fit(test_world.train)
    nonzero_per_row = np.diff(rec.similarity_.indptr)
    assert nonzero_per_row.max() == 1
    with_more = build_recommender("itemknn", test_world.catalog, {"neighbors": 5})
    with_more.fit(test_world.train)
    assert np.diff(with_more.similarity_.indptr).max() == 5
