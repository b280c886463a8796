"""The shared test world (tests/worlds.py: 40 items, three clusters of 12 movies, a blockbuster, three
documentaries) and a small supervised LRURec trained on it here (seconds), the SFT retriever that alignment
starts from. The LLM is the real SmolLM2 (``smollm2`` in tests/conftest.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import worlds
from convrec.data.dataset import CRSDataset
from convrec.retrieval import build_recommender


@pytest.fixture(scope="session")
def movie_world() -> CRSDataset:
    return worlds.world().dataset()


@pytest.fixture(scope="session")
def sft_run(movie_world: CRSDataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished `convrec train`-style run dir of lrurec on the world: it has learned the clusters."""
    previous = torch.get_num_threads()
    run = tmp_path_factory.mktemp("sft") / "lrurec"
    recommender = build_recommender("lrurec", movie_world.catalog, {**worlds.FAST_LRUREC, "run_dir": str(run)})
    recommender.fit(movie_world.split("train"), movie_world.split("valid"))
    torch.set_num_threads(previous)
    return run


@pytest.fixture(scope="session")
def sft_options() -> dict:
    return worlds.FAST_LRUREC
