"""The shared test world (tests/worlds.py) with its ten classics (50 items: three clusters of 12 movies, a
blockbuster, three documentaries, and real-looking movies with directors and casts), a small LRURec trained on
it here (seconds), and failure injectors. The LLM is the real SmolLM2 (``smollm2`` in tests/conftest.py); the
classes below are fakes that exist only to make a call fail or answer nonsense, and are named so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import worlds
from convrec.catalog.items import Catalog
from convrec.data.dataset import CRSDataset, Split
from convrec.data.model import Dialogue, RecSample, Turn
from convrec.llm import ChatRequest, ChatResponse, LLMRequestError
from convrec.retrieval import build_recommender

# A conversation about the classics, in no split: what the re-ranker and reply tests ask about.
HORROR = Dialogue("horror", "test", [
    Turn("seeker", "Hi! I love scary horror movies like The Conjuring.", ("conjuring",)),
    Turn("recommender", "Have you seen Insidious? Same director, very creepy.", ("insidious",)),
])


@pytest.fixture(scope="session")
def world() -> CRSDataset:
    return worlds.world(classics=True).dataset()


@pytest.fixture(scope="session")
def catalog(world: CRSDataset) -> Catalog:
    return world.catalog


@pytest.fixture
def horror_sample() -> RecSample:
    return RecSample(HORROR, 1, "insidious")


@pytest.fixture
def splits(world: CRSDataset) -> tuple[Split, Split, Split]:
    return world.split("train"), world.split("valid"), world.split("test")


@pytest.fixture(scope="session")
def lrurec_run(world: CRSDataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished `convrec train`-style run dir of lrurec on the world: it has learned the clusters, and its
    scores differ between cluster mates (unlike itemknn's), so fusing them with the LLM's is not a no-op."""
    previous = torch.get_num_threads()
    run = tmp_path_factory.mktemp("lrurec") / "run"
    recommender = build_recommender("lrurec", world.catalog, {**worlds.FAST_LRUREC, "run_dir": str(run)})
    recommender.fit(world.split("train"), world.split("valid"))
    torch.set_num_threads(previous)
    return run


class FailingLLM:
    """A fake: every call fails as a backend does after its retries are exhausted."""

    def __init__(self) -> None:
        self.calls = 0

    def complete(self, request: ChatRequest) -> ChatResponse:
        self.calls += 1
        raise LLMRequestError("FailingLLM: injected failure")


@dataclass
class GarbageLLM:
    """A fake: answers every request with the same nonsense text and no logprobs."""

    text: str = "As an AI, I have no opinion on cinema ~~~"

    def complete(self, request: ChatRequest) -> ChatResponse:
        return ChatResponse(text=self.text, model="garbage", backend="fake")


@pytest.fixture
def failing_llm() -> FailingLLM:
    return FailingLLM()


@pytest.fixture
def garbage_llm() -> GarbageLLM:
    return GarbageLLM()
