"""A tiny movie world for alignment: a catalogue with real-looking metadata, dialogues with text, and a small
supervised LRURec trained on it here (seconds). The LLM is the real SmolLM2 (``smollm2`` in tests/conftest.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from convrec.catalog.items import Catalog, Item
from convrec.data.dataset import CRSDataset
from convrec.data.model import Dialogue, Turn
from convrec.retrieval import build_recommender

MOVIES = [
    Item("conjuring", "The Conjuring", 2013, {"genre": ["horror", "mystery"]}),
    Item("insidious", "Insidious", 2010, {"genre": ["horror", "thriller"]}),
    Item("halloween", "Halloween", 1978, {"genre": ["horror"]}),
    Item("alien", "Alien", 1979, {"genre": ["horror", "sci-fi"]}),
    Item("toystory", "Toy Story", 1995, {"genre": ["animation", "comedy"]}),
    Item("nemo", "Finding Nemo", 2003, {"genre": ["animation", "adventure"]}),
    Item("up", "Up", 2009, {"genre": ["animation", "adventure"]}),
    Item("notebook", "The Notebook", 2004, {"genre": ["drama", "romance"]}),
    Item("titanic", "Titanic", 1997, {"genre": ["drama", "romance"]}),
    Item("aliens", "Aliens", 1986, {"genre": ["action", "sci-fi"]}),
]
PAIRS = [("conjuring", "insidious"), ("halloween", "conjuring"), ("insidious", "halloween"), ("toystory", "nemo"),
         ("nemo", "up"), ("up", "toystory"), ("notebook", "titanic"), ("titanic", "notebook"), ("alien", "aliens")]
NAMES = {item.item_id: item.title for item in MOVIES}

# What the supervised retriever is trained with: small and quick (seconds), items only.
FAST_SFT = {"hidden": 16, "n_blocks": 1, "dropout": 0.0, "text_init": False,
            "train": {"epochs": 15, "batch_size": 8, "lr": 0.01, "patience": 15, "threads": 1}}


def dialogue(dialogue_id: str, split: str, liked: str, recommended: str) -> Dialogue:
    return Dialogue(dialogue_id, split, [
        Turn("seeker", f"Hi! I really liked {NAMES[liked]}, can you suggest something like it?", (liked,)),
        Turn("recommender", f"You should watch {NAMES[recommended]}.", (recommended,)),
    ])


@pytest.fixture(scope="session")
def movie_world() -> CRSDataset:
    dialogues = [dialogue(f"t{n}-{r}", "train", a, b) for r in range(2) for n, (a, b) in enumerate(PAIRS)]
    dialogues += [dialogue(f"v{n}", "valid", a, b) for n, (a, b) in enumerate(PAIRS[::2])]
    return CRSDataset("tiny-align", Catalog(MOVIES, name="tiny-align"), dialogues, {"fingerprint": "tiny-align"})


@pytest.fixture(scope="session")
def sft_run(movie_world: CRSDataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished `convrec train`-style run dir of lrurec on the tiny world."""
    previous = torch.get_num_threads()
    run = tmp_path_factory.mktemp("sft") / "lrurec"
    recommender = build_recommender("lrurec", movie_world.catalog, {**FAST_SFT, "run_dir": str(run)})
    recommender.fit(movie_world.split("train"), movie_world.split("valid"))
    torch.set_num_threads(previous)
    return run


@pytest.fixture(scope="session")
def sft_options() -> dict:
    return FAST_SFT
