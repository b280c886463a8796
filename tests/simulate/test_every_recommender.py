"""Every registered recommender plays simulated episodes (the issue: `convrec simulate` runs for every one), on the
shared test world: the ranking ones through the ranking adapter (rar with its LLM stage, SmolLM2), harpo as an
agent. A recommender added to the registry without a case here fails the first test."""

from __future__ import annotations

import pytest

import worlds
from convrec.resources import Resources
from convrec.retrieval import RECOMMENDERS
from convrec.simulate.runner import SimulationConfig, build_system, simulate


def options(name: str, tmp_path) -> dict:
    lrurec = {**worlds.FAST_LRUREC, "run_dir": str(tmp_path / name)}
    return {
        "popularity": {}, "repeat": {}, "itemknn": {}, "ease": {},
        "dense-text": {"cache_dir": str(tmp_path / "dense")},
        "lrurec": lrurec, "lrurec-text": {**lrurec, "text_init": True},
        "rar": {"retriever": "itemknn", "k": 3, "fusion_weight": 0.5, "llm": {"model": "smollm2-135m"},
                "llm_cache": False},
        "harpo": {"retriever": "itemknn"},
        "bridge": {"hidden": 32, "epochs": 3, "batch_size": 32, "run_dir": str(tmp_path / name)},
        "learned-ranker": {"retrievers": {"popularity": {}, "itemknn": {}}, "per_retriever": 10, "min_leaf": 5,
                           "folds": 3, "run_dir": str(tmp_path / name)},
    }[name]


@pytest.fixture(scope="module")
def world():
    return worlds.world(classics=True).dataset()


def test_every_registered_recommender_has_a_case_here(tmp_path):
    for name in RECOMMENDERS:
        options(name, tmp_path)  # a KeyError names the one without a case


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RECOMMENDERS))
def test_every_registered_recommender_plays_simulated_episodes(name, world, tmp_path):
    config = SimulationConfig(dataset=world.name, recommender=name, options=options(name, tmp_path), episodes=4,
                              turns=2, slate=3)
    with Resources.from_env(cache_dir=tmp_path / "cache") as resources:
        system = build_system(config, world, resources)
        result = simulate(config, world, system, progress=False, resources=resources)
    assert result["n_episodes"] == 4 and result["system"] == ("agent" if name == "harpo" else "ranking")
    assert 0.0 <= result["metrics"]["success"] <= 1.0
    assert result["metrics"]["recommend_share"] > 0  # every system recommends at some turn
