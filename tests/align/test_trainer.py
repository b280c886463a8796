"""The online loop end to end with real parts, on the shared test world (tests/worlds.py): a supervised LRURec
trained here, SmolLM2 as the frozen LLM, DPO and GRPO rounds, checkpoints loadable as retrievers, resume after
an interruption, and honest call counts. What a run logs is checked against what the LLM answered, and that
DPO / GRPO moved the retriever the way their losses pull, beyond what the nll control does alone."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from convrec.align.config import AlignConfig
from convrec.align.trainer import Aligner, exact_kl, validation_metrics
from convrec.catalog.items import Catalog
from convrec.data.dataset import CRSDataset
from convrec.data.model import RecSample
from convrec.io import DataError
from convrec.llm import LLMClient, ResponseCache
from convrec.retrieval import build_recommender

CONTEXTS_PER_ROUND = 4
TEMPERATURE = 1.0


def settings(sft_run, **overrides) -> AlignConfig:
    base = {"checkpoint": str(sft_run), "rounds": 2, "contexts_per_round": CONTEXTS_PER_ROUND, "group_size": 3,
            "k": 3, "batch_size": 2, "lr": 0.01, "temperature": TEMPERATURE, "threads": 1, "progress": False,
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


@dataclass
class Group:
    """One context's candidate sets (item ids, in the order drawn) and the rewards the LLM's ranking gave."""

    sample: RecSample
    sets: list[list[str]]
    rewards: list[float]


def record_groups(aligner: Aligner, monkeypatch: pytest.MonkeyPatch) -> list[Group]:
    """Every group the run asks the LLM about, in order, as the real feedback rewards it."""
    groups: list[Group] = []
    rewards = aligner.feedback.rewards

    def recording(sample, sets, retriever_scores):
        result = rewards(sample, sets, retriever_scores)
        groups.append(Group(sample, [list(items) for items in sets], [r.reward for r in result]))
        return result

    monkeypatch.setattr(aligner.feedback, "rewards", recording)
    return groups


def sequence_log_prob(logits: np.ndarray, sequence: list[int]) -> float:
    """log P(drawing ``sequence`` in this order without replacement from softmax(logits)), by its definition."""
    total, left = 0.0, list(range(len(logits)))
    for item in sequence:
        total += logits[item] - np.logaddexp.reduce(logits[left])
        left.remove(item)
    return total


def rl_objective_gain(dataset: CRSDataset, options: dict, run_dir, reference_dir, groups: list[Group],
                      method: str) -> float:
    """How far a run's retriever moved from the reference in the direction its RL loss pulls, on the groups whose
    rewards differ: DPO's implicit-reward margin of the best set over the worst, GRPO's sum of standardised
    advantage x log-probability change (its surrogate to first order), averaged over those groups."""
    catalog: Catalog = dataset.catalog

    def logits(run) -> np.ndarray:
        retriever = build_recommender("lrurec", catalog, {**options, "checkpoint": str(run)})
        retriever.fit(dataset.split("train"))
        return retriever.score([group.sample.view() for group in informative]).astype(np.float64) / TEMPERATURE

    informative = [group for group in groups if max(group.rewards) > min(group.rewards)]
    policy, reference = logits(run_dir), logits(reference_dir)
    gains = []
    for row, group in enumerate(informative):
        change = np.array([sequence_log_prob(policy[row], catalog.indices(items))
                           - sequence_log_prob(reference[row], catalog.indices(items)) for items in group.sets])
        rewards = np.array(group.rewards)
        if method == "dpo":  # the first best and the first worst set, as preference_pairs picks them
            gains.append(change[rewards.argmax()] - change[rewards.argmin()])
        else:
            gains.append(float(np.mean((rewards - rewards.mean()) / rewards.std() * change)))
    return float(np.mean(gains))


@pytest.mark.slow
@pytest.mark.parametrize("method", ["dpo", "grpo"])
def test_a_tiny_real_loop_runs_end_to_end(method, movie_world, sft_run, sft_options, client, tmp_path, monkeypatch):
    out = tmp_path / method
    aligner = Aligner(movie_world, settings(sft_run, method=method), out, llm=client)
    groups = record_groups(aligner, monkeypatch)
    history = aligner.run()

    assert [h.round for h in history] == [0, 1, 2]
    # the log is what the LLM's rewards were, round by round
    assert len(groups) == 2 * CONTEXTS_PER_ROUND
    for h, start in zip(history[1:], (0, CONTEXTS_PER_ROUND), strict=True):
        round_groups = groups[start : start + CONTEXTS_PER_ROUND]
        assert h.reward == pytest.approx(np.mean([r for g in round_groups for r in g.rewards]), abs=1e-6)
        assert h.set_hit_rate == pytest.approx(np.mean([g.sample.target in items for g in round_groups
                                                        for items in g.sets]))
        assert h.informative_contexts == sum(max(g.rewards) > min(g.rewards) for g in round_groups)
        assert np.isfinite(h.rl_loss) and h.nll_loss > 0
    for h in history[1:]:  # the LLM-vs-retriever agreement on the sets holding the target
        assert h.llm_ranks_target_higher + h.llm_ranks_target_lower <= 1
        if h.set_hit_rate > 0:  # reward is 0 off the hit sets, so the mean over all sets is the hit-set mean
            assert h.reward == pytest.approx(h.hit_set_reward * h.set_hit_rate, abs=1e-6)
    phases = history[1].phase_seconds
    assert set(phases) == {"sampling", "llm_feedback", "update", "validation"}
    assert sum(phases.values()) <= history[1].seconds + 1e-6
    counts = aligner.feedback.counts
    assert counts.sets == 2 * 4 * 3 and counts.sets_with_target == sum(
        g.sample.target in items for g in groups for items in g.sets)
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

    # The RL gradient moved the retriever the way its loss pulls, on the groups the LLM told apart: more than
    # the same rounds, seed and settings with L_nll alone (the control) do. The control moves it too, and even
    # partly that way (the best set holds the target more often than the worst, and L_nll raises the target),
    # so "it moved" (KL > 0) or "the objective rose" alone would hold without any RL gradient.
    assert any(max(g.rewards) > min(g.rewards) for g in groups), "no group told its sets apart: nothing to learn"
    Aligner(movie_world, settings(sft_run, method="nll"), tmp_path / "nll").run()
    aligned = rl_objective_gain(movie_world, sft_options, out, sft_run, groups, method)
    control = rl_objective_gain(movie_world, sft_options, tmp_path / "nll", sft_run, groups, method)
    assert aligned > max(control, 0.0), (aligned, control)


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


def test_the_nll_control_moves_the_retriever_without_an_llm(movie_world, sft_run, sft_options, tmp_path,
                                                            monkeypatch):
    aligner = Aligner(movie_world, settings(sft_run, method="nll"), tmp_path / "nll")  # no client given
    assert aligner.llm is None  # the control loads no model
    contexts: list[RecSample] = []
    draw = aligner._round_contexts

    def recording() -> list[RecSample]:
        contexts.extend(drawn := draw())
        return drawn

    monkeypatch.setattr(aligner, "_round_contexts", recording)
    history = aligner.run()
    assert [h.round for h in history] == [0, 1, 2]
    assert all(h.reward == 0 and h.rl_loss == 0 and h.informative_contexts == 0 for h in history[1:])
    assert aligner.feedback.counts.sets == 0 and aligner.feedback.counts.llm_requests == 0
    # L_nll alone moved it, towards the targets of the contexts it trained on: their mean log-probability
    # rose from the SFT retriever's (a step the wrong way, or none, would move it too: KL > 0 says nothing)
    assert len(contexts) == 2 * CONTEXTS_PER_ROUND and history[2].kl_to_reference > 0

    def target_log_prob(run) -> float:
        retriever = build_recommender("lrurec", movie_world.catalog, {**sft_options, "checkpoint": str(run)})
        retriever.fit(movie_world.split("train"))
        scores = torch.from_numpy(retriever.score([sample.view() for sample in contexts]))
        targets = torch.as_tensor(movie_world.catalog.indices(sample.target for sample in contexts))
        return float(torch.log_softmax(scores, dim=1).gather(1, targets[:, None]).mean())

    assert target_log_prob(tmp_path / "nll") > target_log_prob(sft_run) + 0.1


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
