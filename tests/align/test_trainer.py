"""The online loop end to end with real parts: a supervised LRURec trained here, SmolLM2 as the frozen LLM,
DPO and GRPO rounds, checkpoints loadable as retrievers, resume after an interruption, and honest call counts."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from convrec.align.config import AlignConfig
from convrec.align.trainer import Aligner, exact_kl, validation_metrics
from convrec.io import DataError
from convrec.llm import LLMClient, ResponseCache
from convrec.retrieval import build_recommender


def settings(sft_run, **overrides) -> AlignConfig:
    base = {"checkpoint": str(sft_run), "rounds": 2, "contexts_per_round": 4, "group_size": 3, "k": 3,
            "batch_size": 2, "lr": 0.01, "temperature": 2.0, "threads": 1, "progress": False,
            "valid_samples": 5}
    return AlignConfig(**{**base, **overrides})


@pytest.fixture
def client(smollm2, tmp_path):
    llm = LLMClient(smollm2, ResponseCache(tmp_path / "llm.sqlite"))
    yield llm
    llm.cache.close()


def weights(run_dir) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(run_dir / "model.safetensors")


@pytest.mark.slow
@pytest.mark.parametrize("method", ["dpo", "grpo"])
def test_a_tiny_real_loop_runs_end_to_end(method, movie_world, sft_run, sft_options, client, tmp_path):
    out = tmp_path / method
    aligner = Aligner(movie_world, settings(sft_run, method=method), out, llm=client)
    history = aligner.run()

    assert [h.round for h in history] == [0, 1, 2]
    assert all(0 <= h.reward <= 1 and 0 <= h.set_hit_rate <= 1 for h in history)
    assert all(h.kl_to_reference >= 0 for h in history[1:]) and history[2].kl_to_reference > 0  # it moved
    assert all(np.isfinite(h.rl_loss) and h.nll_loss > 0 for h in history[1:])
    # what sets DPO / GRPO apart from the nll control: the LLM's rewards told sets apart, and the RL loss they
    # gave was not zero (the control's is 0 by construction)
    assert sum(h.informative_contexts for h in history[1:]) > 0
    assert any(h.rl_loss != 0 for h in history[1:])
    for h in history[1:]:  # the LLM-vs-retriever agreement on the sets holding the target
        assert 0 <= h.hit_set_reward <= 1 and 0 <= h.hit_set_retriever_reward <= 1
        assert h.llm_ranks_target_higher + h.llm_ranks_target_lower <= 1
        if h.set_hit_rate > 0:  # reward is 0 off the hit sets, so the mean over all sets is the hit-set mean
            assert h.reward == pytest.approx(h.hit_set_reward * h.set_hit_rate, abs=1e-6)
    phases = history[1].phase_seconds
    assert set(phases) == {"sampling", "llm_feedback", "update", "validation"}
    assert sum(phases.values()) <= history[1].seconds + 1e-6
    counts = aligner.feedback.counts
    assert counts.sets == 2 * 4 * 3 and counts.sets_with_target <= counts.sets
    assert counts.llm_calls + counts.cache_hits == counts.llm_requests  # every request answered once
    assert counts.llm_requests + counts.memo_hits == counts.item_scores
    assert sum(h.llm.llm_calls for h in history) == counts.llm_calls
    for name in ("model.safetensors", "config.json", "state.pt", "history.json", "curves.png"):
        assert (out / name).exists(), name
    config = json.loads((out / "config.json").read_text())
    assert config["aligned"]["method"] == method and config["aligned"]["rounds_done"] == 2

    # the run dir is a checkpoint like any other
    loaded = build_recommender("lrurec", movie_world.catalog, {**sft_options, "checkpoint": str(out)})
    loaded.fit(movie_world.split("train"))
    samples = movie_world.split("valid").samples
    np.testing.assert_allclose(loaded.score(samples), aligner.policy.score(samples), rtol=1e-5, atol=1e-5)
    sft = build_recommender("lrurec", movie_world.catalog, {**sft_options, "checkpoint": str(sft_run)})
    sft.fit(movie_world.split("train"))
    assert not np.allclose(sft.score(samples), loaded.score(samples))

    # the same rounds, seed and settings with the RL term switched off end elsewhere: the RL gradient moved it
    Aligner(movie_world, settings(sft_run, method="nll"), tmp_path / "nll").run()
    aligned, control = weights(out), weights(tmp_path / "nll")
    assert any(not torch.allclose(aligned[name], control[name], atol=1e-6) for name in aligned)


@pytest.mark.slow
def test_an_interrupted_run_resumes_to_the_same_weights(movie_world, sft_run, client, tmp_path):
    straight = Aligner(movie_world, settings(sft_run), tmp_path / "straight", llm=client)
    straight.run()
    first = Aligner(movie_world, settings(sft_run, rounds=1), tmp_path / "resumed", llm=client)
    first.run()
    # how the LLM runs (threads, cache location) may change between the two halves; what it computes may not
    resumed = Aligner(movie_world, settings(sft_run, rounds=2, llm={"local": {"n_threads": 2}, "cache_path": "x"}),
                      tmp_path / "resumed", llm=client)
    history = resumed.run()
    assert [h.round for h in history] == [0, 1, 2]
    a, b = weights(tmp_path / "straight"), weights(tmp_path / "resumed")
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6)
    # the second and third runs asked nothing new: every reply came from the response cache
    assert first.feedback.counts.llm_calls == 0 and resumed.feedback.counts.llm_calls == 0

    with pytest.raises(DataError, match="other settings"):
        Aligner(movie_world, settings(sft_run, rounds=2, k=2), tmp_path / "resumed", llm=client).run()


def test_the_nll_control_moves_the_retriever_without_an_llm(movie_world, sft_run, tmp_path):
    aligner = Aligner(movie_world, settings(sft_run, method="nll"), tmp_path / "nll")  # no client given
    assert aligner.llm is None  # the control loads no model
    history = aligner.run()
    assert [h.round for h in history] == [0, 1, 2]
    assert all(h.reward == 0 and h.rl_loss == 0 and h.informative_contexts == 0 for h in history[1:])
    assert all(h.nll_loss > 0 for h in history[1:]) and history[2].kl_to_reference > 0  # L_nll alone moved it
    assert aligner.feedback.counts.sets == 0 and aligner.feedback.counts.llm_requests == 0
    moved = weights(tmp_path / "nll")
    assert any(not torch.equal(moved[name], tensor) for name, tensor in weights(sft_run).items())


def test_exact_kl_and_validation_metrics():
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.0, float("-inf")]])
    assert torch.allclose(exact_kl(logits, logits), torch.zeros(2), atol=1e-6)
    other = torch.tensor([[0.0, 1.0, 2.0], [1.0, 0.0, 0.0]])
    kl = exact_kl(logits, other)
    p, q = torch.softmax(logits[0], 0), torch.softmax(other[0], 0)
    assert kl[0] == pytest.approx(float((p * (p / q).log()).sum()), rel=1e-5) and torch.all(kl > 0)
    scores = torch.arange(60, dtype=torch.float32).flip(0).repeat(2, 1)  # item 0 best, item 59 worst
    metrics = validation_metrics(scores, torch.tensor([0, 20]))
    assert metrics == pytest.approx({"valid_recall_at_10": 0.5, "valid_ndcg_at_10": 0.5, "valid_recall_at_50": 1.0})
