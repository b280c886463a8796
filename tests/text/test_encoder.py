import numpy as np
import pytest

from convrec.catalog.items import Catalog, Item
from convrec.errors import ConfigError
from convrec.retrieval import build_recommender
from convrec.text.encoder import TextEncoder


def test_encoder_normalises_and_caches(tmp_path):
    encoder = TextEncoder()
    texts = ["a heist movie with a clever twist", "", "a heist movie with a clever twist", "a children's cartoon"]
    cache = tmp_path / "cache.npz"
    vectors = encoder.encode_cached(texts, cache, progress=False)
    assert vectors.shape == (4, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors[[0, 3]], axis=1), 1.0, rtol=1e-5)
    assert not vectors[1].any()  # empty text -> zero vector
    np.testing.assert_allclose(vectors[0], vectors[2])
    with np.load(cache) as stored:
        assert len(stored["keys"]) == 3  # one entry per distinct text
    again = TextEncoder().encode_cached(texts[:1], cache, progress=False)
    np.testing.assert_allclose(again[0], vectors[0])


def test_an_unknown_embedding_model_is_refused_when_the_options_are_read():
    catalog = Catalog([Item(str(i), f"Title {i}") for i in range(20)])
    with pytest.raises(ConfigError, match=r"option 'encoder.model': .*unknown embedding model 'nosuch'"):
        build_recommender("dense-text", catalog, {"encoder": {"model": "nosuch"}})
