"""The chat engine takes its candidates from the retriever's ``retrieve()`` (issue 14, item 3), so that an
approximate index plugs in by overriding it: a retriever whose ``score()`` fails and whose ``retrieve()``
records its calls and reverses its answer is what a turn's recommendations follow. The people-first order
(the items of a named director first, however low the retriever ranks them) is asked of ``retrieve`` as
``prefer``.

On the shared 40-item world (tests/worlds.py), its movies given directors here (four movies each), with a
real ``itemknn`` fitted on its train split and no LLM (the retriever's order is the recommendations')."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pytest

from convrec.catalog.items import Catalog
from convrec.data.dataset import CRSDataset
from convrec.data.model import ContextView
from convrec.retrieval import build_recommender
from convrec.retrieval.base import Candidates, Recommender
from convrec.serve.build import ChatConfig, build_engine
from convrec.serve.state import SessionOptions
from worlds import GENRES, cluster_ids

DIRECTORS = {"horror": ["Ava Kowalski", "Bruno Lindqvist", "Carmen Okafor"],
             "animation": ["Dmitri Halvorsen", "Esther Quaye", "Farid Montclair"],
             "romance": ["Greta Vasquez", "Hugo Brannigan", "Ingrid Solberg"]}


def directed(test_world) -> CRSDataset:
    """The world, each cluster movie n directed by its genre's director n // 4."""
    items = []
    for item in test_world.catalog:
        genre = item.metadata["genre"][0]
        if genre in GENRES:
            director = DIRECTORS[genre][int(item.item_id.removeprefix(genre)) // 4]
            item = replace(item, metadata={**item.metadata, "director": [director]})
        items.append(item)
    world = test_world.dataset()
    return CRSDataset(world.name, Catalog(items, name=world.catalog.name), world.dialogues, world.info)


@dataclass
class Call:
    samples: list[ContextView]
    k: int
    exclude: list[set[str]]
    prefer: list[list[str]]


class RecordingRetriever(Recommender):
    """Answers from ``inner.retrieve`` reversed (worst first), records each call; ``score`` is off limits."""

    name = "recording"

    def __init__(self, inner: Recommender):
        super().__init__(inner.catalog, inner.config)
        self.inner = inner
        self.calls: list[Call] = []

    def score(self, samples: Sequence[ContextView]) -> np.ndarray:
        raise AssertionError("the engine must ask retrieve(), not score()")

    def retrieve(self, samples: Sequence[ContextView], k: int, exclude: Sequence[Iterable[str]] | None = None,
                 prefer: Sequence[Iterable[str]] | None = None) -> list[Candidates]:
        self.calls.append(Call(list(samples), k, [set(e) for e in exclude or []], [list(p) for p in prefer or []]))
        found = self.inner.retrieve(samples, k, exclude, prefer)
        return [Candidates(c.item_ids[::-1], c.scores[::-1]) for c in found]


@pytest.fixture(scope="module")
def dataset(test_world) -> CRSDataset:
    return directed(test_world)


@pytest.fixture(scope="module")
def itemknn(dataset):
    recommender = build_recommender("itemknn", dataset.catalog)
    recommender.fit(dataset.split("train"))
    return recommender


def engine_over(dataset, retriever: Recommender, k: int):
    config = ChatConfig(llm=None, session=SessionOptions(k=k, top=k))
    return build_engine(dataset, config, retriever=retriever)


def test_a_turn_recommends_what_the_retrievers_retrieve_returns(dataset, itemknn):
    recording = RecordingRetriever(itemknn)
    engine = engine_over(dataset, recording, k=4)
    _, turn = engine.turn(engine.new_state(), "I liked The Farmhouse (2000), another scary one?")
    (call,) = recording.calls
    assert call.k == 4 and call.exclude == [{"horror0"}] and call.prefer == [[]]
    assert [s.context_items for s in call.samples] == [("horror0",)]
    (plain,) = itemknn.retrieve(call.samples, 4, [{"horror0"}])
    assert set(plain.item_ids) <= set(cluster_ids("horror"))  # what itemknn itself would propose
    # The recommendations are the override's answer, in its (reversed) order, with its scores.
    assert [r.item_id for r in turn.recommendations] == plain.item_ids[::-1]
    assert [r.retriever_score for r in turn.recommendations] == plain.scores[::-1].tolist()
    assert [r.retriever_rank for r in turn.recommendations] == [1, 2, 3, 4]
    assert turn.n_candidates == 4


def test_a_named_directors_movies_come_first_however_low_the_retriever_ranks_them(dataset, itemknn):
    recording = RecordingRetriever(itemknn)
    engine = engine_over(dataset, recording, k=6)
    _, turn = engine.turn(engine.new_state(), "I liked The Farmhouse (2000). Anything by Hugo Brannigan?")
    hugo = cluster_ids("romance")[4:8]
    assert [p.name for p in turn.people] == ["Hugo Brannigan"]
    (call,) = recording.calls
    assert call.exclude == [{"horror0"}] and sorted(call.prefer[0]) == sorted(hugo)
    # Expected from itemknn's own scores, sorted here: his four movies (romance, the horror context's last
    # choices), then the two best of the rest; the override then reverses the six.
    catalog = dataset.catalog
    row = itemknn.score(call.samples)[0]
    preferred = catalog.indices(hugo)
    rest = [c for c in range(len(catalog)) if c not in preferred and catalog.ids[c] != "horror0"]
    assert max(row[preferred]) < max(row[rest])

    def best_first(columns: list[int]) -> list[str]:
        return [catalog.ids[c] for c in sorted(columns, key=lambda c: (-row[c], c))]

    expected = best_first(preferred) + best_first(rest)[:2]
    assert [r.item_id for r in turn.recommendations] == expected[::-1]
    assert set(expected[4:]) <= set(cluster_ids("horror"))


def test_the_people_first_order_is_the_same_without_the_override(dataset, itemknn):
    """The default ``retrieve`` (one ``score`` call) puts the director's movies first for the engine too."""
    engine = engine_over(dataset, itemknn, k=5)
    _, turn = engine.turn(engine.new_state(), "I liked The Farmhouse (2000). Anything by Hugo Brannigan?")
    ids = [r.item_id for r in turn.recommendations]
    assert set(ids[:4]) == set(cluster_ids("romance")[4:8]) and ids[4] in cluster_ids("horror")
    assert "Hugo Brannigan" in turn.reply.text
