"""A tiny movie world built here (catalogue with real-looking metadata, train/valid/test dialogues), and
failure injectors. The LLM is the real SmolLM2 (``smollm2`` in tests/conftest.py); the classes below are
fakes that exist only to make a call fail or answer nonsense, and are named so.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from convrec.catalog.items import Catalog, Item
from convrec.data.dataset import CRSDataset, Split
from convrec.data.model import Dialogue, RecSample, Turn
from convrec.llm import ChatRequest, ChatResponse, LLMRequestError


def movie(item_id, title, year, genre, director, stars, plot):
    return Item(item_id, title, year, {"genre": genre, "director": [director], "star": stars, "plot": plot})


MOVIES = [
    movie("conjuring", "The Conjuring", 2013, ["horror", "mystery"], "James Wan", ["Vera Farmiga", "Patrick Wilson"],
          "Paranormal investigators work to help a family terrorized by a dark presence in their farmhouse."),
    movie("insidious", "Insidious", 2010, ["horror", "mystery", "thriller"], "James Wan",
          ["Patrick Wilson", "Rose Byrne"], "A family looks to prevent evil spirits from trapping their comatose "
          "child in a realm called The Further."),
    movie("toystory", "Toy Story", 1995, ["animation", "comedy", "family"], "John Lasseter",
          ["Tom Hanks", "Tim Allen"], "A cowboy doll is profoundly threatened when a new spaceman toy arrives."),
    movie("nemo", "Finding Nemo", 2003, ["animation", "adventure"], "Andrew Stanton",
          ["Albert Brooks", "Ellen DeGeneres"], "A clownfish searches the ocean for his captured son."),
    movie("notebook", "The Notebook", 2004, ["drama", "romance"], "Nick Cassavetes", ["Ryan Gosling", "Rachel McAdams"],
          "A poor yet passionate young man falls in love with a rich young woman."),
    movie("halloween78", "Halloween", 1978, ["horror", "thriller"], "John Carpenter",
          ["Jamie Lee Curtis", "Donald Pleasence"], "A masked killer stalks babysitters on Halloween night."),
    movie("halloween07", "Halloween", 2007, ["horror"], "Rob Zombie", ["Malcolm McDowell"],
          "A remake of the slasher classic about Michael Myers."),
    movie("alien", "Alien", 1979, ["horror", "sci-fi"], "Ridley Scott", ["Sigourney Weaver", "Tom Skerritt"],
          "The crew of a commercial spacecraft encounter a deadly lifeform."),
    movie("aliens", "Aliens", 1986, ["action", "sci-fi"], "James Cameron", ["Sigourney Weaver", "Michael Biehn"],
          "Ripley returns to the moon where her crew encountered the hostile creature."),
    movie("up", "Up", 2009, ["animation", "adventure"], "Pete Docter", ["Ed Asner"],
          "An old man ties thousands of balloons to his house to fly to South America."),
]


def dialogue(dialogue_id: str, split: str, *turns: tuple[str, str, tuple[str, ...]]) -> Dialogue:
    return Dialogue(dialogue_id, split, [Turn(role, text, items) for role, text, items in turns])


HORROR = dialogue(
    "horror", "test",
    ("seeker", "Hi! I love scary horror movies like The Conjuring.", ("conjuring",)),
    ("recommender", "Have you seen Insidious? Same director, very creepy.", ("insidious",)),
)
FAMILY = dialogue(
    "family", "test",
    ("seeker", "I want an animated movie to watch with my kids, something like Toy Story.", ("toystory",)),
    ("recommender", "Finding Nemo is a lovely one.", ("nemo",)),
)
VALID = [
    dialogue("v-horror", "valid",
             ("seeker", "Something scary please, I liked Halloween.", ("halloween78",)),
             ("recommender", "Try The Conjuring.", ("conjuring",))),
    dialogue("v-kids", "valid",
             ("seeker", "A cartoon for my kids?", ()),
             ("recommender", "Toy Story is great.", ("toystory",))),
]
TRAIN = [
    dialogue(f"t{n}", "train", ("seeker", "", first), ("recommender", "", second))
    for n, (first, second) in enumerate([
        (("conjuring",), ("insidious",)), (("conjuring",), ("halloween78",)), (("insidious",), ("conjuring",)),
        (("toystory",), ("nemo",)), (("toystory",), ("up",)), (("nemo",), ("toystory",)),
        (("alien",), ("aliens",)), (("notebook",), ("toystory",)), (("up",), ("toystory",)),
    ])
]


@pytest.fixture(scope="session")
def world() -> CRSDataset:
    catalog = Catalog(MOVIES, name="tiny-movies")
    return CRSDataset("tiny-movies", catalog, [*TRAIN, *VALID, HORROR, FAMILY], {"fingerprint": "tiny"})


@pytest.fixture(scope="session")
def catalog(world: CRSDataset) -> Catalog:
    return world.catalog


@pytest.fixture
def horror_sample() -> RecSample:
    return RecSample(HORROR, 1, "insidious")


@pytest.fixture
def splits(world: CRSDataset) -> tuple[Split, Split, Split]:
    return world.split("train"), world.split("valid"), world.split("test")


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
