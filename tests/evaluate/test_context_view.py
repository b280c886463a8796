"""The harness hands recommenders a context-only view: a recommender that reads the target's turn, a later
turn or the dialogue's ``feedback`` fails, or, reading what it can find, scores chance on real test splits
(where, handed the samples themselves, it would score above 0.9)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from convrec.catalog.items import Catalog, Item
from convrec.data.dataset import CRSDataset
from convrec.data.model import ContextView, Dialogue, ItemFeedback, RecSample, Turn, samples_from_dialogue
from convrec.evaluate.metrics import recall_and_ndcg_at
from convrec.evaluate.protocol import Protocol
from convrec.evaluate.runner import evaluate
from convrec.retrieval.base import Recommender, item_counts


class Oracle(Recommender):
    """Cheats wherever the sample lets it: items of the target's turn and later ones, and the dialogue's
    ``feedback`` keys (the questionnaire filled in after the conversation) score 1, everything else 0."""

    name = "oracle"  # a test double, not registered

    def __init__(self, catalog: Catalog, read_ahead: bool = True, read_feedback: bool = True):
        super().__init__(catalog)
        self.read_ahead, self.read_feedback = read_ahead, read_feedback

    def score(self, samples: Sequence[RecSample | ContextView]) -> np.ndarray:
        scores = np.zeros((len(samples), len(self.catalog)), dtype=np.float32)
        for row, sample in enumerate(samples):
            dialogue = getattr(sample, "dialogue", None)  # whatever the harness lets through
            if dialogue is None:
                continue
            seen = []
            if self.read_ahead:
                seen += [item for turn in dialogue.turns[sample.turn_index :] for item in turn.items]
            if self.read_feedback:
                seen += list(dialogue.feedback)
            scores[row, self.catalog.indices(set(seen))] = 1.0
        return scores


def world() -> tuple[Catalog, list[RecSample]]:
    catalog = Catalog([Item(f"m{i}", f"Movie {i}") for i in range(30)])
    dialogue = Dialogue("d1", "test", [
        Turn("seeker", "I liked Movie 0", ("m0",)),
        Turn("recommender", "Try Movie 7", ("m7",)),
        Turn("seeker", "Seen it. Anything like Movie 3?", ("m3",)),
        Turn("recommender", "Movie 12, then", ("m12",)),
    ], feedback={"m7": ItemFeedback(liked=True), "m12": ItemFeedback(seen=False)})
    return catalog, samples_from_dialogue(dialogue)


def run(score_fn, catalog: Catalog, samples: list[RecSample]):
    return evaluate(score_fn, samples, catalog, Protocol.STANDARD, np.ones(len(catalog)), dataset="t",
                    split="test", recommender="x", progress=False)


def test_the_runner_passes_each_samples_context_view():
    catalog, samples = world()
    seen: list[ContextView] = []

    def spy(views):
        seen.extend(views)
        return np.zeros((len(views), len(catalog)), dtype=np.float32)

    run(spy, catalog, samples)
    assert all(type(view) is ContextView for view in seen)
    assert [(v.dialogue_id, v.turn_index, v.context_items) for v in seen] == [
        ("d1", 1, ("m0",)), ("d1", 3, ("m0", "m7", "m3"))]


def test_reading_the_feedback_or_a_later_turn_fails():
    catalog, samples = world()

    def reads_feedback(views):
        return np.stack([np.isin(catalog.ids, list(view.dialogue.feedback)) for view in views]).astype(np.float32)

    def reads_the_target_turn(views):
        return np.stack([np.isin(catalog.ids, view.context[view.turn_index].items) for view in views])

    for cheat in (reads_feedback, reads_the_target_turn):
        with pytest.raises((AttributeError, IndexError)):
            run(cheat, catalog, samples)


def test_an_oracle_that_reads_what_it_finds_scores_chance():
    catalog, samples = world()
    oracle = Oracle(catalog)
    assert run(oracle.score, catalog, samples).metrics["recall@10"] == pytest.approx(10 / 30)
    # The control: handed the samples themselves, it finds every target (the test can fail).
    targets = np.asarray(catalog.indices(s.target for s in samples))
    assert recall_and_ndcg_at(oracle.score(samples), targets, 10)[0].tolist() == [1.0, 1.0]


@pytest.mark.slow
@pytest.mark.parametrize("name, read_ahead, read_feedback, leaked_recall", [
    ("redial", False, True, 0.9),  # 92.7% of ReDial's test targets are keys of their dialogue's feedback
    ("inspired", True, False, 0.95),  # the target's own turn names it
])
def test_on_a_real_test_split_the_oracle_scores_chance(name, read_ahead, read_feedback, leaked_recall, request):
    dataset: CRSDataset = request.getfixturevalue(name)
    catalog, samples = dataset.catalog, dataset.split("test").samples
    oracle = Oracle(catalog, read_ahead, read_feedback)
    result = evaluate(oracle.score, samples, catalog, Protocol.STANDARD, item_counts(dataset.split("train")),
                      dataset=name, split="test", recommender="oracle", progress=False)
    assert result.metrics["recall@10"] == pytest.approx(10 / len(catalog))  # every item tied: exactly chance
    targets = np.asarray(catalog.indices(s.target for s in samples))
    leaked, _ = recall_and_ndcg_at(oracle.score(samples), targets, 10)
    assert leaked.mean() > leaked_recall
