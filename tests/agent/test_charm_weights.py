"""CHARM's context-dependent weights: the Bradley-Terry network learns which dimension wins in which context,
saves and loads, drives the agent's weights, and its training material comes from the agent's real slates."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from convrec.agent.domain import DomainAdapter
from convrec.agent.quality import satisfaction as sat
from convrec.agent.quality.charm import QualityScorer
from convrec.agent.quality.dimensions import QUALITY_DIMENSIONS, QualityOptions
from convrec.agent.quality.slates import collect_pairs
from convrec.agent.quality.weights import (
    CONTEXT_FEATURES,
    SlatePairs,
    WeightNetwork,
    context_kinds,
    pair_accuracy,
    train,
)
from convrec.agent.state import AgentState
from convrec.data.model import ContextView, Turn
from convrec.errors import ConfigError

pytest.importorskip("lightgbm")
pytest.importorskip("torch")

from test_satisfaction import genre_world  # noqa: E402

REL, DIV = QUALITY_DIMENSIONS.index("relevance"), QUALITY_DIMENSIONS.index("diversity")


def two_kinds_of_context(n: int = 200, seed: int = 0) -> SlatePairs:
    """Early contexts (nothing known) prefer the more diverse slate, later ones the more relevant one."""
    rng = np.random.default_rng(seed)
    contexts, chosen, rejected = [], [], []
    for k in range(n):
        early = k % 2 == 0
        context = np.zeros(len(CONTEXT_FEATURES), dtype=np.float32)
        context[CONTEXT_FEATURES.index("nothing_known")] = 1.0 if early else 0.0
        context[CONTEXT_FEATURES.index("items_named")] = 0.0 if early else np.log1p(2)
        context[CONTEXT_FEATURES.index("seeker_turns")] = np.log1p(1 if early else 3)
        good, bad = rng.random(4).astype(np.float32) * 0.2 + 0.4, rng.random(4).astype(np.float32) * 0.2 + 0.4
        if early:
            good[DIV], bad[DIV], good[REL], bad[REL] = 0.9, 0.3, 0.5, 0.8
        else:
            good[DIV], bad[DIV], good[REL], bad[REL] = 0.3, 0.9, 0.8, 0.5
        contexts.append(context)
        chosen.append(good[None, :])
        rejected.append(bad[None, :])
    return SlatePairs(np.asarray(contexts), chosen, rejected, [f"d{k}" for k in range(n)])


def test_the_network_learns_that_early_contexts_want_diversity_and_later_ones_relevance(tmp_path):
    pairs = two_kinds_of_context()
    rows, held = list(range(0, 160)), list(range(160, 200))
    network = WeightNetwork(seed=0)
    losses = network.fit(pairs, rows, scale=10.0, margin=0.1, epochs=300)
    assert losses[-1] < losses[0] * 0.5
    early, late = network.weights(pairs.contexts[[0, 1]])
    assert early[DIV] > early[REL] and late[REL] > late[DIV]
    assert np.allclose(early.sum(), 1.0) and np.all(early >= 0)
    learned = network.weights(pairs.contexts)
    assert pair_accuracy(pairs, held, lambda r: learned[r]) == 1.0
    relevance = np.eye(len(QUALITY_DIMENSIONS))[REL]
    assert pair_accuracy(pairs, held, lambda r: relevance) == 0.5  # right in one context, wrong in the other
    assert set(context_kinds(pairs.contexts)) == {"nothing known yet", "2+ items named, no constraint"}

    network.save(tmp_path / "weights.pt", {"note": "test"})
    loaded = WeightNetwork.load(tmp_path)
    assert np.allclose(loaded.weights(pairs.contexts), learned)


def test_a_missing_network_says_how_to_train_it(tmp_path):
    with pytest.raises(ConfigError, match="python -m convrec.agent.quality.weights"):
        WeightNetwork.load(tmp_path)


def test_the_agent_asks_the_network_for_each_contexts_weights(tmp_path):
    pairs = two_kinds_of_context()
    network = WeightNetwork(seed=0)
    network.fit(pairs, range(200), scale=10.0, margin=0.1, epochs=300)
    network.save(tmp_path / "weights.pt", {})
    world = genre_world()
    adapter = DomainAdapter.of(world.catalog, world.name)
    options = QualityOptions(weights_run=str(tmp_path))
    scorer = QualityScorer.build(options, adapter, world.split("train"), world.name, every_model=False)
    assert scorer is not None and scorer.network is not None and scorer.distances is not None
    view = ContextView("d", (Turn("seeker", "hello"),))
    early = scorer.weights_for(view, AgentState())
    assert early["diversity"] > early["relevance"] and sum(early.values()) == pytest.approx(1.0)
    fixed = QualityScorer.build(QualityOptions(weights={"relevance": 1, "diversity": 0.2}), adapter, None, "w")
    assert fixed.weights_for(view, AgentState()) == {"relevance": 1.0, "diversity": 0.2, "satisfaction": 0.0,
                                                     "engagement": 0.0}


def test_probe_slates_come_from_the_agents_candidates_on_real_splits(tmp_path):
    world = genre_world()
    run = tmp_path / "sat"
    sat.train_and_judge(world, run)
    pairs = collect_pairs(world, "popularity", None, str(run), None, None, 0, progress=False)
    assert len(pairs.dialogues) == len(pairs.chosen) == len(pairs.rejected) == len(pairs.contexts) > 0
    for good, bad in zip(pairs.chosen, pairs.rejected, strict=True):
        assert good.shape[1] == bad.shape[1] == len(QUALITY_DIMENSIONS) and len(good) and len(bad)
        assert np.all((good >= 0) & (good <= 1)) and np.all((bad >= 0) & (bad <= 1))
    # the satisfaction model tells slates apart in this world: chosen slates please more on average
    sat_column = QUALITY_DIMENSIONS.index("satisfaction")
    assert np.mean([g[:, sat_column].mean() for g in pairs.chosen]) > np.mean(
        [b[:, sat_column].mean() for b in pairs.rejected])


def test_the_command_trains_reports_and_plots(tmp_path):
    world = genre_world()
    sat.train_and_judge(world, tmp_path / "sat")
    args = argparse.Namespace(dataset=world.name, retriever="popularity", checkpoint=None,
                              satisfaction_run=str(tmp_path / "sat"), engagement_run=None, limit=None, seed=0,
                              epochs=100, margin=0.1, scale=10.0, out=tmp_path / "run", data_dir=None)
    report = train(args, world)
    assert report["samples"] == report["train_samples"] + report["held_out_samples"] > 0
    assert set(report["held_out_accuracy"]) >= {"learned, per context", "fixed: relevance alone"}
    assert all(0.0 <= v <= 1.0 for v in report["held_out_accuracy"].values())
    assert sum(row["n"] for row in report["weights_by_context"].values()) == report["samples"]
    assert (tmp_path / "run" / "weights.pt").is_file() and (tmp_path / "run" / "weights.png").is_file()
    assert "Learned weights per kind of context" in (tmp_path / "run" / "weights.md").read_text()
    assert WeightNetwork.load(tmp_path / "run").weights(np.zeros((1, len(CONTEXT_FEATURES)))).shape == (1, 4)


def test_one_resumable_training_builds_every_model_and_the_agent_uses_the_run(tmp_path):
    from convrec.agent.config import HarpoOptions
    from convrec.agent.harpo import HarpoRecommender
    from convrec.agent.quality.train import train_quality

    world = genre_world()  # liked answers but no seen ones: the engagement step has nothing to learn from
    said: list[str] = []
    first = train_quality(world, tmp_path / "run", {"retriever": "popularity"}, say=said.append)
    assert first["steps"]["satisfaction"].startswith("trained: test AUC")
    assert first["steps"]["engagement"].startswith("skipped:") and not (tmp_path / "run" / "engagement").exists()
    assert first["steps"]["weights"].startswith("trained:")
    again = train_quality(world, tmp_path / "run", {"retriever": "popularity"}, say=said.append)
    assert set(again["steps"].values()) <= {"finished before: kept"} | {first["steps"]["engagement"]}
    with pytest.raises(ConfigError, match="unknown option"):
        train_quality(world, tmp_path / "run", {"retreiver": "popularity"})

    harpo = HarpoRecommender(world.catalog, HarpoOptions.model_validate(
        {"retriever": "popularity", "quality": {"run": str(tmp_path / "run")}}))
    harpo.fit(world.split("train"))
    scorer = harpo.agent_.ctx.quality
    assert scorer is not None and scorer.network is not None and set(scorer.models) == {"satisfaction"}
    view = ContextView("d", (Turn("seeker", "I liked it", (world.catalog.ids[0],)),))
    harpo.score([view])
    turn = harpo.turns_[0]
    assert turn.quality and all(q.satisfaction is not None and q.diversity is not None for q in turn.quality)


def test_bad_training_options_and_runs_are_one_line_errors(tmp_path, capsys):
    from convrec.agent.quality.train import HarpoTrainOptions

    assert HarpoTrainOptions.parse({"limit": "200", "run_dir": "x"}).limit == 200
    for options, expected in (({"limit": "abc"}, "limit: Input should be a valid integer"),
                              ({"limit": 0}, "limit: Input should be greater than or equal to 1"),
                              ({"seed": "x"}, "seed: Input should be a valid integer"),
                              ({"retriever": "rar"}, "not a first-stage retriever"),
                              ({"retriever": "nosuch"}, "unknown recommender 'nosuch'")):
        with pytest.raises(ConfigError, match=expected):
            HarpoTrainOptions.parse(options)
    # a quality.run that holds no trained model is an error, not a silent fall-back to relevance alone
    world = genre_world()
    adapter = DomainAdapter.of(world.catalog, world.name)
    with pytest.raises(ConfigError, match="holds no satisfaction/, engagement/ or weights/ folder"):
        QualityScorer.build(QualityOptions(run=str(tmp_path)), adapter, world.split("train"), world.name)
    # the module commands: an unknown dataset is one line and exit 2, and no run directory is left behind
    from convrec.agent.quality import weights

    assert weights.main(["--dataset", "no-such-dataset", "--out", str(tmp_path / "w")]) == 2
    assert sat.main(["--dataset", "no-such-dataset", "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert err.count("error: unknown dataset 'no-such-dataset'") == 2 and "Traceback" not in err
    assert not (tmp_path / "w").exists() and not (tmp_path / "s").exists()
