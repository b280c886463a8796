"""LLM feedback as reward: sets without the target cost nothing, each (context, item) is asked once, and the
reward is NDCG of the target in the LLM's ranking. The LLM is the real SmolLM2, the catalogue the shared test
world's (tests/worlds.py)."""

from __future__ import annotations

import numpy as np
import pytest

from convrec.align.feedback import LLMFeedback, context_key
from convrec.data.model import RecSample
from convrec.llm import LLMClient, ResponseCache
from convrec.rerank.fusion import ndcg_at
from convrec.rerank.pointwise import PointwiseReranker


@pytest.fixture
def sample(movie_world) -> RecSample:
    return movie_world.split("train").selection_samples[0]


@pytest.fixture
def client(smollm2, tmp_path):
    llm = LLMClient(smollm2, ResponseCache(tmp_path / "llm.sqlite"))
    yield llm
    llm.cache.close()


@pytest.mark.slow
def test_rewards_ask_only_for_sets_with_the_target_and_each_item_once(movie_world, sample, client):
    assert sample.context_items == ("horror0",) and sample.target == "horror1"
    feedback = LLMFeedback(PointwiseReranker(client, movie_world.catalog), reward_k=2)
    sets = [["animation0", "animation1", "animation2"], ["horror1", "horror2", "heist"],
            ["heist", "horror1", "romance0"]]
    retriever = [np.array([3.0, 2.0, 1.0])] * 3
    rewards = feedback.rewards(sample, sets, retriever)

    assert rewards[0].reward == 0.0 and rewards[0].target_rank is None  # no target: no LLM call for it
    counts = feedback.counts
    assert counts.sets == 3 and counts.sets_with_target == 2
    assert counts.llm_requests == 4 and counts.llm_calls == 4 and counts.cache_hits == 0  # union of 2 sets
    key = context_key(sample)
    for g in (1, 2):
        llm = np.array([feedback.memo[(key, item)] for item in sets[g]])
        order = sorted(range(3), key=lambda i: (-llm[i], i))  # LLM score, ties by the retriever's order
        rank = [sets[g][i] for i in order].index("horror1")
        assert rewards[g].target_rank == rank and rewards[g].reward == pytest.approx(ndcg_at(rank, 2))
        assert rewards[g].retriever_rank == sets[g].index("horror1")  # scores 3 > 2 > 1: the set's own order

    again = feedback.rewards(sample, [["romance0", "horror1", "horror2"]], [np.array([1.0, 2.0, 3.0])])
    assert feedback.counts.llm_requests == 4 and feedback.counts.memo_hits == 3  # all scored already
    assert again[0].target_rank is not None and again[0].retriever_rank == 1  # scores 1, 2, 3: horror1 2nd

    fresh = LLMFeedback(PointwiseReranker(client, movie_world.catalog), reward_k=2)
    assert [r.reward for r in fresh.rewards(sample, sets, retriever)] == [r.reward for r in rewards]
    assert fresh.counts.llm_requests == 4 and fresh.counts.cache_hits == 4 and fresh.counts.llm_calls == 0


def test_settings_are_checked():
    with pytest.raises(ValueError, match="reward_k"):
        LLMFeedback(None, reward_k=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="weight"):
        LLMFeedback(None, weight=1.5)  # type: ignore[arg-type]
