"""Exact values of the preference losses where a slip would change them: error messages, the default KL
weight and its sign, the clip's upper bound, what counts as clipped, and exact zeros for constant groups.
Each test was written against a mutant that the tests of test_losses.py let through (docs/development.md)."""

from __future__ import annotations

import math

import pytest
import torch

from convrec.align.losses import dpo_loss, group_advantages, grpo_loss, preference_pairs


@pytest.mark.parametrize("function", [preference_pairs, group_advantages])
def test_rewards_of_the_wrong_shape_are_named_in_the_error(function) -> None:
    with pytest.raises(ValueError, match=r"^rewards must be \(B, G\), got shape \(3,\)$"):
        function(torch.zeros(3))


def test_group_advantages_divide_by_std_plus_eps() -> None:
    advantages = group_advantages(torch.tensor([[0.0, 2.0]]), eps=1.0)  # std 1: (r - 1) / (1 + 1)
    torch.testing.assert_close(advantages, torch.tensor([[-0.5, 0.5]]))


def test_a_constant_group_gives_exact_zeros_beside_a_varied_one() -> None:
    # 0.9 x 3 in float32: its mean differs from 0.9 by a rounding residue, which divided by eps is ~0.06
    rewards = torch.tensor([[0.9, 0.9, 0.9], [0.0, 1.0, 2.0]])
    advantages = group_advantages(rewards)
    assert torch.equal(advantages[0], torch.zeros(3))
    torch.testing.assert_close(advantages[1], torch.tensor([-1.0, 0.0, 1.0]) * math.sqrt(1.5), rtol=1e-4, atol=1e-4)


def test_the_default_kl_weight_is_0_04_and_adds_to_the_surrogate() -> None:
    logp_new = torch.tensor([[-1.0, -2.0]])
    logp_ref = torch.tensor([[-1.5, -1.0]])
    loss, stats = grpo_loss(logp_new, logp_new.clone(), logp_ref, torch.tensor([[1.0, -1.0]]))
    delta = logp_ref - logp_new
    kl = float((torch.exp(delta) - delta - 1.0).mean())
    assert stats["kl"] == pytest.approx(kl) and stats["policy_loss"] == pytest.approx(0.0)
    assert float(loss) == pytest.approx(0.04 * kl)
    assert set(stats) == {"grpo_loss", "policy_loss", "kl", "clip_fraction", "mean_ratio"}
    assert stats["grpo_loss"] == pytest.approx(float(loss))


def test_the_ratio_is_clipped_at_one_plus_eps() -> None:
    logp_old = torch.zeros(1, 1)
    logp_new = torch.full((1, 1), math.log(1.5))  # ratio 1.5, above 1 + 0.2
    loss, stats = grpo_loss(logp_new, logp_old, logp_new.clone(), torch.ones(1, 1), kl_coef=0.0)
    assert float(loss) == pytest.approx(-1.2) and stats["policy_loss"] == pytest.approx(-1.2)
    assert stats["clip_fraction"] == 1.0 and stats["mean_ratio"] == pytest.approx(1.5)


@pytest.mark.parametrize(("ratio", "advantage", "cut"), [
    (1.5, 0.0, 0.0),  # no advantage: nothing for the clip to cut, whatever the ratio
    (0.5, 0.0, 0.0),
    (0.5, 0.5, 0.0),  # a falling ratio is cut only when the advantage is negative
    (0.5, -0.5, 1.0),
    (1.5, -0.5, 0.0),
    (1.1, 1.0, 0.0),  # inside the clip range
])
def test_clip_fraction_counts_only_what_the_clip_cut(ratio, advantage, cut) -> None:
    _, stats = grpo_loss(torch.full((1, 1), math.log(ratio)), torch.zeros(1, 1), torch.zeros(1, 1),
                         torch.full((1, 1), advantage))
    assert stats["clip_fraction"] == cut


@pytest.mark.parametrize(("ratio", "advantage"), [(1.5, 1.0), (0.5, -1.0)])
def test_a_ratio_exactly_at_the_clip_bound_is_not_cut(ratio, advantage) -> None:
    # clip_eps 0.5: the bounds 1.5 and 0.5 and these ratios are exact in float32, so the comparison is exact
    _, stats = grpo_loss(torch.full((1, 1), math.log(ratio)), torch.zeros(1, 1), torch.zeros(1, 1),
                         torch.full((1, 1), advantage), clip_eps=0.5)
    assert stats["mean_ratio"] == ratio and stats["clip_fraction"] == 0.0


def test_dpo_stats_are_named_and_exact_with_pairs_and_without() -> None:
    # margins beta * ((pc - rc) - (pr - rr)): 0.5 and -0.25 with beta 1; a positive margin below 1 still counts
    chosen, rejected = torch.tensor([-1.0, -2.0]), torch.tensor([-1.5, -1.75])
    zeros = torch.zeros(2)
    loss, stats = dpo_loss(chosen, rejected, zeros, zeros, beta=1.0)
    assert stats == pytest.approx({"dpo_loss": float(loss), "dpo_accuracy": 0.5, "dpo_margin": 0.125, "pairs": 2.0})
    assert float(loss) == pytest.approx(-(math.log(1 / (1 + math.exp(-0.5))) + math.log(1 / (1 + math.exp(0.25)))) / 2)
    _, none = dpo_loss(chosen, rejected, zeros, zeros, beta=1.0, valid=torch.zeros(2, dtype=torch.bool))
    assert none == {"dpo_loss": 0.0, "dpo_accuracy": 0.0, "dpo_margin": 0.0, "pairs": 0.0}
