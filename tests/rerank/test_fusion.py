"""Fusing retriever and LLM scores, and choosing the weight on a validation set whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from convrec.rerank.fusion import choose_weight, fuse, fused_order, ndcg_at, normalise_retriever_scores


def test_rank_normalisation_is_even_and_shares_ties():
    assert normalise_retriever_scores(np.array([10.0, 3.0, 2.0, -5.0])).tolist() == pytest.approx([1, 2 / 3, 1 / 3, 0])
    assert normalise_retriever_scores(np.array([5.0, 5.0, 1.0])).tolist() == [1.0, 1.0, 0.0]
    assert normalise_retriever_scores(np.array([7.0])).tolist() == [1.0]


def test_minmax_normalisation_keeps_gaps_and_survives_infinities():
    values = normalise_retriever_scores(np.array([10.0, 9.0, 0.0, -np.inf]), "minmax")
    assert values.tolist() == pytest.approx([1.0, 0.9, 0.0, 0.0])
    assert normalise_retriever_scores(np.array([2.0, 2.0]), "minmax").tolist() == [1.0, 1.0]


def test_fuse_is_the_stated_convex_mix():
    retriever, llm = np.array([3.0, 2.0, 1.0]), np.array([0.0, 0.5, 1.0])
    assert fuse(retriever, llm, 0.0).tolist() == pytest.approx([1.0, 0.5, 0.0])
    assert fuse(retriever, llm, 1.0).tolist() == pytest.approx([0.0, 0.5, 1.0])
    assert fuse(retriever, llm, 0.25).tolist() == pytest.approx([0.75, 0.5, 0.25])
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        fuse(retriever, llm, 1.5)


def test_ties_keep_the_retriever_order():
    order, _ = fused_order(np.array([3.0, 2.0, 1.0]), np.full(3, 0.5), 1.0)
    assert order.tolist() == [0, 1, 2]


def test_ndcg_of_one_target():
    assert ndcg_at(0) == 1.0 and ndcg_at(1) == pytest.approx(1 / np.log2(3)) and ndcg_at(10) == 0.0
    assert ndcg_at(None) == 0.0


def _validation(llm_is_right: bool, n: int = 6):
    """5 candidates per sample; the target is the retriever's 4th. A right LLM scores the target highest,
    a wrong one scores it lowest."""
    retriever = [np.array([5.0, 4.0, 3.0, 2.0, 1.0])] * n
    llm = []
    for _ in range(n):
        scores = np.array([0.5, 0.4, 0.3, 0.2, 0.1])
        scores[3] = 0.99 if llm_is_right else 0.0
        llm.append(scores)
    return retriever, llm, [3] * n


def test_a_helpful_llm_earns_weight_and_a_harmful_one_none():
    grid = [0.0, 0.25, 0.5, 0.75, 1.0]
    helpful = choose_weight(*_validation(llm_is_right=True), grid=grid)
    # target first needs 0.99 w + 0.25 (1 - w) > 0.5 w + (1 - w), i.e. w > 0.6: 0.75 is the smallest such
    assert helpful.weight == 0.75
    assert helpful.ndcg_by_weight[0.75] == 1.0 and helpful.ndcg_by_weight[0.0] == pytest.approx(1 / np.log2(5))
    harmful = choose_weight(*_validation(llm_is_right=False), grid=grid)
    assert harmful.weight == 0.0
    assert harmful.n_samples == 6 and harmful.n_target_in_candidates == 6


def test_samples_whose_target_was_not_retrieved_cannot_decide():
    retriever, llm, _ = _validation(llm_is_right=True, n=3)
    choice = choose_weight(retriever, llm, [None, None, None], grid=[0.0, 0.5, 1.0])
    assert choice.weight == 0.0 and set(choice.ndcg_by_weight.values()) == {0.0}
    assert choice.n_target_in_candidates == 0
    assert choice.to_json()["validation_ndcg@10_by_weight"] == {"0.0": 0.0, "0.5": 0.0, "1.0": 0.0}
