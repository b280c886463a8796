"""BRIDGE: the shared encoder learns a domain, reads a domain it never trained on, and keeps its runs."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from convrec.agent import bridge as bridge_module
from convrec.agent.bridge import Bridge, BridgeOptions, GradientReversal
from convrec.catalog.items import Catalog
from convrec.data.dataset import CRSDataset, Split
from convrec.data.model import Dialogue
from convrec.errors import ConfigError
from convrec.evaluate.metrics import recall_and_ndcg_at
from worlds import world

FAST = {"hidden": 64, "epochs": 25, "patience": 25, "batch_size": 32, "learning_rate": 3e-3, "dropout": 0.0}


def renamed(dataset: CRSDataset, prefix: str, name: str) -> CRSDataset:
    """The same dialogues over a copy of the catalogue whose ids all differ: another domain with the same texts."""
    items = [replace(item, item_id=prefix + item.item_id) for item in dataset.catalog]
    dialogues = [Dialogue(d.dialogue_id, d.split, [replace(t, items=tuple(prefix + i for i in t.items)) for t in d.turns],
                          {prefix + i: f for i, f in d.feedback.items()}, dict(d.metadata))
                 for d in dataset.dialogues]
    return CRSDataset(name, Catalog(items, name=name), dialogues, {"fingerprint": name})


def valid_recall(model: Bridge, split: Split) -> float:
    samples = split.selection_samples
    scores = model.score([s.view() for s in samples])
    return float(recall_and_ndcg_at(scores, np.asarray(split.catalog.indices(s.target for s in samples)))[0].mean())


@pytest.fixture(scope="module")
def movies() -> CRSDataset:
    return world().dataset()


def test_gradient_reversal_flips_and_scales_the_gradient():
    x = torch.ones(3, requires_grad=True)
    (GradientReversal.apply(x, 0.5) * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert torch.allclose(x.grad, torch.tensor([-0.5, -1.0, -1.5]))


def test_trained_on_one_domain_it_learns_what_follows_what(movies):
    model = Bridge(movies.catalog, BridgeOptions(**FAST))
    model.fit(movies.split("train"), movies.split("valid"))
    # the world's clusters: near 10/11 for a model that learned them, near 1/4 for popularity or chance
    assert valid_recall(model, movies.split("valid")) > 0.7
    assert model.report["best_epoch"] >= 1 and model.report["domains"] == {movies.name: len(movies.split("train").samples)}


def test_zero_shot_reads_a_catalogue_it_never_trained_on(movies):
    books = renamed(movies, "b-", "books")  # no id in common: only the texts carry over
    options = BridgeOptions(**FAST, also=("movies",), own_data=False)
    model = Bridge(books.catalog, options, datasets={"movies": movies}.__getitem__)
    model.fit(books.split("train"), books.split("valid"))
    assert list(model.report["domains"]) == ["movies"] and model.report["selected_on"] == ["movies"]
    assert valid_recall(model, books.split("valid")) > 0.6
    # an untrained network of the same shape is near chance: the transfer is learned, not built in
    untrained = Bridge(books.catalog, options.model_copy(update={"epochs": 1, "learning_rate": 1e-9}),
                       datasets={"movies": movies}.__getitem__)
    untrained.fit(books.split("train"), books.split("valid"))
    assert valid_recall(untrained, books.split("valid")) < 0.5


def test_two_domains_with_the_discriminator_report_its_accuracy(movies):
    books = renamed(movies, "b-", "books")
    model = Bridge(books.catalog, BridgeOptions(**{**FAST, "epochs": 3}, also=("movies",), adversarial=0.5),
                   datasets={"movies": movies}.__getitem__)
    model.fit(books.split("train"), books.split("valid"))
    epochs = model.report["epochs"]
    assert model.report["domains"] == {"books": len(books.split("train").samples),
                                       "movies": len(movies.split("train").samples)}
    assert all(0.0 <= e["discriminator_accuracy"] <= 1.0 for e in epochs)
    alone = Bridge(books.catalog, BridgeOptions(**{**FAST, "epochs": 3}))
    alone.fit(books.split("train"), books.split("valid"))
    assert all(e["discriminator_accuracy"] is None for e in alone.report["epochs"])  # one domain: nothing to tell


def test_equal_mixing_gives_each_domain_as_many_batches_as_the_smallest_has(movies):
    small = renamed(movies, "b-", "books")
    small = CRSDataset(small.name, small.catalog, [d for n, d in enumerate(small.dialogues)
                                                   if d.split != "train" or n % 4 == 0], small.info)  # a quarter
    n_small = len(small.split("train").samples)
    n_movies = len(movies.split("train").samples)
    options = {**FAST, "epochs": 1, "batch_size": 16}
    proportional = Bridge(small.catalog, BridgeOptions(**options, also=("movies",)),
                          datasets={"movies": movies}.__getitem__)
    proportional.fit(small.split("train"), small.split("valid"))
    assert proportional.report["samples_per_epoch"] == {"books": n_small, "movies": n_movies}
    equal = Bridge(small.catalog, BridgeOptions(**options, also=("movies",), mixing="equal"),
                   datasets={"movies": movies}.__getitem__)
    equal.fit(small.split("train"), small.split("valid"))
    batches = -(-n_small // 16)
    assert equal.report["samples_per_epoch"] == {"books": n_small, "movies": batches * 16}
    assert n_movies > 2 * batches * 16  # the large domain was cut to the small one's share


def test_a_finished_run_is_loaded_not_trained_again(movies, tmp_path, monkeypatch):
    options = BridgeOptions(**{**FAST, "epochs": 2}, run_dir=str(tmp_path / "run"))
    first = Bridge(movies.catalog, options)
    first.fit(movies.split("train"), movies.split("valid"))
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["domain"] == movies.name and saved["training"]["best_epoch"] == first.report["best_epoch"]

    def no_training(*args, **kwargs):  # a fake failure: training again would be the bug
        raise AssertionError("trained again")

    monkeypatch.setattr(bridge_module, "train_bridge", no_training)
    again = Bridge(movies.catalog, options)
    again.fit(movies.split("train"), movies.split("valid"))
    samples = [s.view() for s in movies.split("test").samples]
    assert np.allclose(again.score(samples), first.score(samples))
    loaded = Bridge(movies.catalog, BridgeOptions(checkpoint=str(tmp_path / "run")))
    loaded.fit(movies.split("train"))
    assert np.allclose(loaded.score(samples), first.score(samples))
    # other options train again (here: into the failure)
    with pytest.raises(AssertionError, match="trained again"):
        Bridge(movies.catalog, options.model_copy(update={"hidden": 32})).fit(movies.split("train"))


def test_bad_options_are_one_line_errors(movies, tmp_path):
    with pytest.raises(ConfigError, match="zero-shot"):
        Bridge(movies.catalog, BridgeOptions(own_data=False)).fit(movies.split("train"))
    with pytest.raises(ConfigError, match="cannot be loaded"):
        Bridge(movies.catalog, BridgeOptions(also=("no-such-dataset",)),
               datasets=lambda name: (_ for _ in ()).throw(ConfigError(f"unknown dataset {name!r}"))
               ).fit(movies.split("train"))
    with pytest.raises(ConfigError, match="no finished run"):
        Bridge(movies.catalog, BridgeOptions(checkpoint=str(tmp_path))).fit(movies.split("train"))
    smaller = Catalog(list(movies.catalog)[:30], name=movies.name)
    run = tmp_path / "run"
    Bridge(movies.catalog, BridgeOptions(**{**FAST, "epochs": 1}, run_dir=str(run))).fit(movies.split("train"))
    with pytest.raises(ConfigError, match="another"):
        Bridge(smaller, BridgeOptions(checkpoint=str(run))).fit(Split("train", smaller, [], dataset=movies.name))


def test_the_learned_scale_starts_at_twenty():
    assert math.isclose(float(bridge_module.BridgeNetwork(6, 2, 4, ["a"], [3]).log_scale.detach().exp()), 20.0, rel_tol=1e-6)
