"""Items added to a trained ``lrurec-text`` by their text alone: the old items' scores do not move, a new item
is exactly what training starts every item from (its text's projection, a chosen bias), and an index already
built grows in place and finds it."""

from __future__ import annotations

import dataclasses
from copy import deepcopy

import numpy as np
import pytest
import torch

from convrec.catalog.items import Item
from convrec.data.model import ContextView, Turn
from convrec.errors import ConfigError
from convrec.io import DataError
from convrec.retrieval import build_recommender
from worlds import FAST_LRUREC


@pytest.fixture(scope="module")
def trained(test_world, tmp_path_factory):
    options = {**FAST_LRUREC, "text_init": True, "cache_dir": str(tmp_path_factory.mktemp("cache"))}
    model = build_recommender("lrurec-text", test_world.catalog, options)
    model.fit(test_world.train, test_world.valid)
    return model, options


def fresh(test_world, trained):
    """A recommender with its own copy of the trained weights (adding items changes them)."""
    model, options = trained
    copy = build_recommender("lrurec-text", test_world.catalog, options)
    copy.network = deepcopy(model.network)
    copy.seen_columns = model.seen_columns
    return copy


def ask(*item_ids: str, text: str = "I liked these") -> ContextView:
    return ContextView("d", (Turn("seeker", text, tuple(item_ids)),))


def test_a_new_item_is_its_texts_projection_and_old_scores_do_not_move(test_world, trained):
    model = fresh(test_world, trained)
    samples = [ask("horror0"), ask("animation3", "animation4"), ask(text="a tender love story")]
    before = model.score(samples)
    twin = dataclasses.replace(test_world.item("romance2"), item_id="romance2-again")
    model.add_items([twin], bias=0.25)
    after = model.score(samples)
    assert after.shape == (3, len(test_world.catalog) + 1) and model.catalog.ids[-1] == "romance2-again"
    np.testing.assert_allclose(after[:, :-1], before, rtol=1e-5, atol=1e-5)
    lru = model.network.lru
    new_row = len(test_world.catalog) + 1
    assert float(lru.output_bias[new_row].detach()) == 0.25 and torch.count_nonzero(lru.delta[new_row]) == 0
    # The twin is romance2 with its residual forgotten and bias 0.25: reset romance2 and they score alike.
    lru.reset_to_text(torch.tensor([test_world.catalog.index_of["romance2"] + 1]), 0.25)
    reset = model.score(samples)
    np.testing.assert_allclose(reset[:, -1], reset[:, test_world.catalog.index_of["romance2"]], rtol=1e-5, atol=1e-5)


def test_an_index_grows_in_place_and_finds_the_new_item(test_world, trained):
    model = fresh(test_world, trained)
    model.config = model.config.model_copy(update={"index": model.config.index.model_copy(
        update={"kind": "hnsw", "cache": False})})
    sample = ask("horror0", "horror1")
    before = model.retrieve([sample], 5)[0]
    index = model._index
    # A new item far above every other for this query: the twin of its best item, with a much larger bias.
    best = before.item_ids[0]
    model.add_items([dataclasses.replace(test_world.item(best), item_id="new-best")], bias=50.0)
    assert model._index is index and len(index) == len(test_world.catalog) + 1  # grown, not rebuilt
    after = model.retrieve([sample], 5)[0]
    assert after.item_ids[0] == "new-best" and after.item_ids[1:] == before.item_ids[:4]
    full = model.score([sample])[0]
    assert after.scores[0] == pytest.approx(full[-1], rel=1e-5)


def test_adding_an_id_already_there_or_to_an_item_only_model_is_refused(test_world, trained):
    model = fresh(test_world, trained)
    with pytest.raises(DataError, match="duplicate item id 'horror0'"):
        model.add_items([Item("horror0", "Another")])
    items_only = build_recommender("lrurec", test_world.catalog, FAST_LRUREC)
    items_only.fit(test_world.train)
    with pytest.raises(ConfigError, match="text_init"):
        items_only.add_items([Item("new", "New")])
