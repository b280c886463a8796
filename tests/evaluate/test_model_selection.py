"""One validation metric: every choice made on validation (EASE's l2, dense-text's popularity weight,
LRURec's best epoch, the aligned policy's validation, rar's fusion weight) scores with
:func:`recall_and_ndcg_at`, the reported metric, whose ties are broken at random in expectation.

The worlds have 40 items and ties at the target (items never seen together score exactly 0), so counting
only the items scored strictly higher, which hands the target the best place in its tie, gives a visibly
higher number than the reported one: each test fails if its site goes back to that.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from convrec.align.trainer import validation_metrics
from convrec.catalog.items import Catalog, Item
from convrec.data.dataset import Split
from convrec.data.model import Dialogue, Turn
from convrec.evaluate.metrics import recall_and_ndcg_at
from convrec.evaluate.protocol import Protocol
from convrec.evaluate.runner import evaluate
from convrec.rerank.fusion import choose_weight
from convrec.retrieval.baselines import EASE, EASEConfig
from convrec.retrieval.dense import DenseText, DenseTextConfig
from convrec.retrieval.lrurec.training import evaluate_samples

N_ITEMS = 40
CATALOG = Catalog([Item(f"m{i}", f"Movie {i}") for i in range(N_ITEMS)])


def chat(dialogue_id: str, split: str, liked: int, recommended: int) -> Dialogue:
    return Dialogue(dialogue_id, split, [Turn("seeker", f"I liked Movie {liked}", (f"m{liked}",)),
                                         Turn("recommender", f"Try Movie {recommended}", (f"m{recommended}",))])


# Train: m0..m9 each seen with its neighbour. Valid: half the targets follow the pattern, half were never
# seen with the context item (EASE scores them 0, tied with about 37 other items).
TRAIN = Split("train", CATALOG, [chat(f"t{i}-{r}", "train", i, (i + 1) % 10) for i in range(10) for r in range(3)])
VALID = Split("valid", CATALOG, [chat(f"v{i}", "valid", i, (i + 1) % 10 if i % 2 else 20 + i) for i in range(10)])


def reported_recall_at_10(score_fn, split: Split) -> float:
    result = evaluate(score_fn, split.selection_samples, CATALOG, Protocol.STANDARD, np.ones(N_ITEMS),
                      dataset="t", split=split.name, recommender="x", progress=False)
    return result.metrics["recall@10"]


def target_wins_its_ties(scores: np.ndarray, split: Split) -> float:
    """What the inline code computed: Recall@10 counting only the items scored strictly higher."""
    targets = np.asarray(CATALOG.indices(s.target for s in split.selection_samples))
    target_scores = scores[np.arange(len(targets)), targets][:, None]
    return float(((scores > target_scores).sum(axis=1) < 10).mean())


def test_a_tie_is_shared_not_won():
    scores = np.zeros((1, N_ITEMS))
    scores[0, :3] = 1.0  # 3 items above; the target (item 5) ties with the 36 others at 0
    recall, ndcg = recall_and_ndcg_at(scores, np.array([5]))
    assert recall[0] == pytest.approx(7 / 37)
    assert ndcg[0] == pytest.approx(sum(1 / np.log2(p + 1) for p in range(4, 11)) / 37)


def test_the_helper_is_the_reported_metric():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, size=(60, N_ITEMS)).astype(np.float32)  # heavily tied
    targets = rng.integers(0, N_ITEMS, size=60)
    dialogue = Dialogue("d", "test", [Turn("recommender", "", (f"m{t}",)) for t in targets])
    split = Split("test", CATALOG, [dialogue])
    samples = split.samples
    assert [s.target for s in samples] == [f"m{t}" for t in targets]
    result = evaluate(lambda views: scores[[v.turn_index for v in views]], samples, CATALOG, Protocol.STANDARD,
                      np.ones(N_ITEMS), dataset="t", split="test", recommender="x", progress=False)
    recall, ndcg = recall_and_ndcg_at(scores, targets)
    np.testing.assert_allclose(recall, result.per_sample["recall@10"])
    np.testing.assert_allclose(ndcg, result.per_sample["ndcg@10"])


def test_nan_counts_as_the_worst_score():
    scores = np.tile(np.arange(N_ITEMS, dtype=np.float64), (2, 1))
    scores[0, 39] = np.nan  # the best item's score is NaN: it is now the worst, not the best
    scores[1] = np.nan  # a diverged model: every item tied, chance
    recall, _ = recall_and_ndcg_at(scores, np.array([39, 0]))
    assert recall.tolist() == [0.0, pytest.approx(10 / N_ITEMS)]


def test_ease_chooses_l2_on_the_reported_recall():
    ease = EASE(CATALOG, EASEConfig(l2_grid=(1.0, 10.0)))
    ease.fit(TRAIN, VALID)
    reported = reported_recall_at_10(ease.score, VALID)
    assert ease.validation_[ease.l2_] == pytest.approx(reported, abs=1e-5)
    assert target_wins_its_ties(ease.score(VALID.selection_samples), VALID) > reported + 0.2  # ties matter here


def test_dense_text_chooses_its_weight_on_the_reported_recall(monkeypatch, tmp_path):
    def similarity(self, samples):
        # No encoder: each context item is "similar" to its successor only, everything else ties at 0.
        out = np.zeros((len(samples), N_ITEMS), dtype=np.float32)
        for row, sample in enumerate(samples):
            out[row, (CATALOG.index_of[sample.context_items[-1]] + 1) % 10] = 1.0
        return out

    monkeypatch.setattr(DenseText, "item_vectors", property(lambda self: np.zeros((N_ITEMS, 4), np.float32)))
    monkeypatch.setattr(DenseText, "_similarity", similarity)
    dense = DenseText(CATALOG, DenseTextConfig(cache_dir=str(tmp_path), popularity_grid=(0.0, 0.1)))
    dense.fit(TRAIN, VALID)
    reported = reported_recall_at_10(dense.score, VALID)
    assert dense.validation_[dense.popularity_weight_] == pytest.approx(reported, abs=1e-5)
    assert target_wins_its_ties(dense.score(VALID.selection_samples), VALID) > reported + 0.2


class TiedNetwork:
    """Stands in for a trained LRURec: the context item's successor scores 1, all else ties at 0."""

    def eval(self) -> None:
        pass

    def catalogue_scores(self, tokens: torch.Tensor, queries) -> torch.Tensor:
        scores = torch.zeros(len(tokens), N_ITEMS)
        last = tokens[:, -1] - 1  # token = catalogue index + 1
        scores[torch.arange(len(tokens)), (last + 1) % 10] = 1.0
        return scores


def last_item_token(sample) -> list[int]:
    return [CATALOG.index_of[sample.context_items[-1]] + 1]


def test_lrurec_epochs_are_chosen_on_the_reported_metrics():
    samples = VALID.selection_samples
    recall, ndcg = evaluate_samples(TiedNetwork(), samples, last_item_token, None, CATALOG, batch_size=4)

    def score(views):
        return TiedNetwork().catalogue_scores(torch.tensor([last_item_token(v) for v in views]), None).numpy()

    result = evaluate(score, samples, CATALOG, Protocol.STANDARD, np.ones(N_ITEMS), dataset="t", split="valid",
                      recommender="x", progress=False)
    assert (recall, ndcg) == (pytest.approx(result.metrics["recall@10"]), pytest.approx(result.metrics["ndcg@10"]))
    assert target_wins_its_ties(score(samples), VALID) > recall + 0.2


def test_alignment_validation_uses_the_reported_metrics():
    scores = torch.zeros(2, 60)
    scores[1, 7] = 1.0  # row 1: its target (7) alone on top; row 0: the target ties with all 60 items
    metrics = validation_metrics(scores, torch.tensor([3, 7]))
    assert metrics["valid_recall_at_10"] == pytest.approx((10 / 60 + 1) / 2)
    assert metrics["valid_recall_at_50"] == pytest.approx((50 / 60 + 1) / 2)
    assert metrics["valid_ndcg_at_10"] == pytest.approx(
        (sum(1 / np.log2(p + 1) for p in range(1, 11)) / 60 + 1) / 2)


def test_the_fusion_weight_is_scored_on_rars_output_order():
    # All scores tied: rar's output keeps the retriever's order (ties of the fused score are broken by the
    # retriever's score, then by position), so the target at position 5 ranks 6th for every weight; it is
    # not an expectation over the 12 tied places.
    k = 12
    choice = choose_weight([np.zeros(k)] * 3, [np.full(k, 0.5)] * 3, [5, 5, None], grid=(0.0, 0.5, 1.0))
    assert all(value == pytest.approx(2 / 3 / np.log2(7)) for value in choice.ndcg_by_weight.values())
