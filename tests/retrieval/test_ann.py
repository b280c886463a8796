"""Vector indexes: exact top-k is a plain sort; FAISS HNSW and IVF find (nearly) the same items with exact
scores, are cached and grow in place; ``lrurec-text``'s ``retrieve`` through an index gives what scoring every
item gives, exclusions, preferred items and the copy bonus included."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from convrec.catalog.items import Catalog, Item
from convrec.data.dataset import Split
from convrec.data.model import ContextView, Dialogue, Turn
from convrec.errors import ConfigError
from convrec.retrieval import build_recommender
from convrec.retrieval.ann import ExactIndex, FaissIndex, IndexOptions, build_index, exact_top
from worlds import FAST_LRUREC, cluster_ids

pytest.importorskip("faiss")


def clustered(n: int, d: int = 48, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Items around 200 centres (like a model's item vectors: genres, eras) and queries near them."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(200, d)).astype(np.float32)
    items = centres[rng.integers(0, 200, n)] + 0.6 * rng.normal(size=(n, d)).astype(np.float32)
    queries = centres[rng.integers(0, 200, 100)] + 0.6 * rng.normal(size=(100, d)).astype(np.float32)
    return items.astype(np.float32), queries.astype(np.float32)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, truth, strict=True)]))


def test_exact_top_is_a_plain_sort_with_ties_in_item_order():
    rng = np.random.default_rng(1)
    items = rng.integers(-3, 4, size=(5_000, 4)).astype(np.float32)  # many exact ties
    queries = rng.integers(-3, 4, size=(7, 4)).astype(np.float32)
    indices, scores = exact_top(queries, items, 30)
    for row, query in enumerate(queries):
        full = items @ query
        expected = sorted(range(len(items)), key=lambda i: (-full[i], i))[:30]
        assert indices[row].tolist() == expected
        np.testing.assert_array_equal(scores[row], full[expected])


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_indexes_find_the_exact_top_items_with_exact_scores(kind, tmp_path):
    items, queries = clustered(20_000)
    truth, _ = exact_top(queries, items, 50)
    index = build_index(items, IndexOptions(kind=kind, nprobe=16), cache_dir=tmp_path)
    assert isinstance(index, FaissIndex) and not index.built_from_cache
    found, scores = index.search(queries, 50)
    assert recall(found, truth) >= 0.95
    np.testing.assert_allclose(scores, np.einsum("bkd,bd->bk", items[found], queries), rtol=1e-5, atol=1e-4)
    assert (np.diff(scores, axis=1) <= 0).all()
    # A second build of the same vectors and options loads the cached index and answers identically.
    again = build_index(items, IndexOptions(kind=kind, nprobe=16), cache_dir=tmp_path)
    assert again.built_from_cache
    np.testing.assert_array_equal(again.search(queries, 50)[0], found)
    # Other vectors, another index.
    assert not build_index(items * 2, IndexOptions(kind=kind, nprobe=16), cache_dir=tmp_path).built_from_cache


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_items_added_in_place_are_found(kind):
    items, queries = clustered(5_000)
    index = build_index(items, IndexOptions(kind=kind, cache=False, nprobe=64))
    # New items: copies of the queries, so each query's best matches include them (a few norms exceed every
    # old item's, which HNSW's reduction to L2 handles by rebuilding).
    new = queries * 1.2
    index.add(new)
    truth, _ = exact_top(queries, np.concatenate([items, new]), 10)
    found, _ = index.search(queries, 10)
    assert (truth >= 5_000).any(axis=1).all() and len(index) == 5_100
    assert recall(found, truth) >= 0.95


def test_auto_is_exact_below_the_threshold_and_missing_faiss_is_a_config_error(monkeypatch):
    items, _ = clustered(1_000)
    assert isinstance(build_index(items, IndexOptions()), ExactIndex)
    monkeypatch.setitem(sys.modules, "faiss", None)  # a failure injected: FAISS not installed
    with pytest.raises(ConfigError, match="convrec\\[ann\\]"):
        build_index(items, IndexOptions(exact_below=10))


def liked(*item_ids: str) -> ContextView:
    return ContextView("d", (Turn("seeker", "I liked these", tuple(item_ids)),))


@pytest.mark.parametrize("rescore", [0, 200])  # the whole score as one inner product; the item part, re-scored
def test_lrurec_text_retrieve_through_an_index_matches_scoring_every_item(rescore, test_world, tmp_path):
    options = {**FAST_LRUREC, "text_init": True, "cache_dir": str(tmp_path)}  # text_match on: its term too
    exact = build_recommender("lrurec-text", test_world.catalog, options)
    exact.fit(test_world.train, test_world.valid)
    indexed = build_recommender("lrurec-text", test_world.catalog,
                                {**options, "index": {"kind": "hnsw", "ef_search": 64, "rescore": rescore}})
    indexed.network = exact.network
    samples = [liked("horror0", "horror1"), liked("animation0"), liked("romance0", "horror3")]
    exclude = [["horror0", "horror1"], ["animation0"], []]
    prefer = [cluster_ids("romance")[:2], [], []]
    for k in (1, 5, 12):
        want = exact.retrieve(samples, k, exclude, prefer)
        got = indexed.retrieve(samples, k, exclude, prefer)
        for a, b in zip(want, got, strict=True):
            assert a.item_ids == b.item_ids
            np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5, atol=1e-5)
    assert indexed._index.kind == "hnsw"
    assert indexed._index.items.shape[1] == (17 if rescore else exact.network.item_vectors().shape[1])  # H + 1


def test_the_copy_bonus_is_added_exactly_through_an_index():
    catalog = Catalog([Item(c, f"Movie {c}") for c in "abcdefghijkl"])

    def dialogue(did, movie):
        return Dialogue(did, "train", [Turn("seeker", "", (movie,)), Turn("recommender", "", (movie,))])

    train = Split("train", catalog, [dialogue(f"t{i}", "abcdef"[i % 6]) for i in range(24)])
    options = {"hidden": 16, "n_blocks": 1, "dropout": 0.0, "text_init": False, "copy_bonus": True,
               "train": {"epochs": 10, "batch_size": 8, "lr": 0.01, "patience": 30, "threads": 1,
                         "turn_aligned": True}}
    exact = build_recommender("lrurec", catalog, options)
    exact.fit(train)
    assert float(exact.network.copy_scale.detach()) > 0.3
    indexed = build_recommender("lrurec", catalog, {**options, "index": {"kind": "ivf", "nlist": 1}})
    indexed.network = exact.network
    samples = [liked("g"), liked("h", "a")]
    for sample, a, b in zip(samples, exact.retrieve(samples, 4), indexed.retrieve(samples, 4), strict=True):
        assert a.item_ids == b.item_ids and a.item_ids[0] in sample.context_items  # the bonus at work
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5, atol=1e-5)


def test_a_run_trained_without_an_index_option_resumes_with_one(test_world, tmp_path):
    """How a trained model is searched is not what is trained: a run dir resumes whatever ``index`` says."""
    options = {**FAST_LRUREC, "run_dir": str(tmp_path / "run"), "train": {**FAST_LRUREC["train"], "epochs": 2}}
    build_recommender("lrurec", test_world.catalog, options).fit(test_world.train, test_world.valid)
    again = build_recommender("lrurec", test_world.catalog, {**options, "index": {"kind": "hnsw"}})
    again.fit(test_world.train, test_world.valid)  # resumes (finished) instead of refusing the run dir
    assert again.retrieve([liked("horror0")], 3)[0].item_ids


def test_item_vectors_are_computed_once_per_weights_and_again_after_a_change(test_world, tmp_path, monkeypatch):
    """The item side is cached between calls (recomputing it for millions of items cost more than the search),
    and a write to the weights, in place as an optimiser step does it, is seen on the next call."""
    options = {**FAST_LRUREC, "text_init": True, "cache_dir": str(tmp_path), "index": {"kind": "ivf", "nlist": 1}}
    model = build_recommender("lrurec-text", test_world.catalog, options)
    model.fit(test_world.train, test_world.valid)
    calls = []
    original = type(model.network).item_vectors
    monkeypatch.setattr(type(model.network), "item_vectors", lambda self: calls.append(1) or original(self))
    samples = [liked("horror0"), liked("animation0")]
    first = model.retrieve(samples, 5)
    assert model.retrieve(samples, 5)[0].item_ids == first[0].item_ids and len(calls) == 1
    target = test_world.catalog.indices([first[0].item_ids[-1]])[0]
    with torch.no_grad():
        model.network.lru.output_bias[target + 1] += 1000.0  # in place: the item must now come first everywhere
    after = model.retrieve(samples, 5)
    assert len(calls) == 2 and all(c.item_ids[0] == first[0].item_ids[-1] for c in after)
