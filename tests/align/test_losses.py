"""The DPO and GRPO losses: their fixed points, gradient directions, masking and clipping."""

from __future__ import annotations

import math

import pytest
import torch

from convrec.align import dpo_loss, group_advantages, grpo_loss, preference_pairs


def test_preference_pairs_pick_best_and_worst_and_skip_ties() -> None:
    rewards = torch.tensor([[0.1, 0.9, 0.3, 0.9], [0.5, 0.5, 0.5, 0.5], [1.0, 0.0, 0.0, 0.2]])
    chosen, rejected, valid = preference_pairs(rewards)
    assert chosen.tolist() == [1, 0, 0]
    assert rejected.tolist()[0] == 0 and rejected.tolist()[2] == 1
    assert valid.tolist() == [True, False, True]


def _logps(n: int, seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [(-5 * torch.rand(n, generator=generator)).requires_grad_() for _ in range(4)]


def test_dpo_is_log2_at_the_reference() -> None:
    pc, pr, _, _ = _logps(6)
    loss, stats = dpo_loss(pc, pr, pc.detach(), pr.detach(), beta=0.1)
    assert loss.item() == pytest.approx(math.log(2))
    assert stats["dpo_margin"] == pytest.approx(0.0) and stats["pairs"] == 6 and stats["dpo_accuracy"] == 0.0


def test_dpo_gradient_raises_chosen_and_lowers_rejected() -> None:
    pc, pr, rc, rr = _logps(6)
    loss, _ = dpo_loss(pc, pr, rc, rr, beta=0.5)
    loss.backward()
    assert (pc.grad < 0).all() and (pr.grad > 0).all()  # descent moves pc up, pr down
    assert rc.grad is None and rr.grad is None  # the reference is a constant


def test_dpo_stats() -> None:
    pc, pr = torch.tensor([-1.0, -3.0]), torch.tensor([-2.0, -1.0])
    zeros = torch.zeros(2)
    _, stats = dpo_loss(pc, pr, zeros, zeros, beta=2.0)
    assert stats["dpo_accuracy"] == 0.5
    assert stats["dpo_margin"] == pytest.approx((2.0 * 1.0 + 2.0 * -2.0) / 2)


def test_dpo_ignores_invalid_rows() -> None:
    pc, pr, rc, rr = _logps(5)
    valid = torch.tensor([True, False, True, True, False])
    loss, stats = dpo_loss(pc, pr, rc, rr, 0.3, valid)
    loss.backward()
    grad = pc.grad.clone()
    assert stats["pairs"] == 3 and (grad[~valid] == 0).all()

    changed = [t.detach().clone() for t in (pc, pr, rc, rr)]
    for t in changed:
        t[~valid] = float("nan")
    changed[0].requires_grad_()
    other, _ = dpo_loss(*changed, 0.3, valid)
    other.backward()
    assert other.item() == pytest.approx(loss.item())
    assert torch.allclose(changed[0].grad[valid], grad[valid]) and (changed[0].grad[~valid] == 0).all()


def test_dpo_without_pairs_is_a_backwardable_zero() -> None:
    pc, pr, rc, rr = _logps(3)
    loss, stats = dpo_loss(pc, pr, rc, rr, 0.1, torch.zeros(3, dtype=torch.bool))
    assert loss.item() == 0.0 and loss.requires_grad and stats["pairs"] == 0
    loss.backward()
    assert (pc.grad == 0).all()


def test_group_advantages_standardise_and_zero_constant_groups() -> None:
    rewards = torch.tensor([[0.1, 0.7, 0.3, 0.9], [0.2, 0.2, 0.2, 0.2], [0.0, 1.0, 0.0, 0.0], [0.3, 0.8, 0.8, 0.1]])
    advantages = group_advantages(rewards)
    live = torch.tensor([0, 2, 3])
    assert torch.allclose(advantages[live].mean(dim=1), torch.zeros(3), atol=1e-6)
    assert torch.allclose(advantages[live].std(dim=1, unbiased=False), torch.ones(3), atol=1e-4)
    assert torch.equal(advantages[1], torch.zeros(4))
    assert torch.allclose(group_advantages(torch.tensor([[0.0, 1.0]])), torch.tensor([[-1.0, 1.0]]), atol=1e-5)
    assert torch.equal(group_advantages(torch.tensor([[0.4]])), torch.zeros(1, 1))


def test_grpo_at_the_reference_is_minus_mean_advantage_without_kl() -> None:
    logp = torch.randn(4, 6, generator=torch.Generator().manual_seed(0))
    rewards = torch.rand(4, 6, generator=torch.Generator().manual_seed(1))
    advantages = group_advantages(rewards)
    new = logp.clone().requires_grad_()
    loss, stats = grpo_loss(new, logp, logp, advantages)
    assert loss.item() == pytest.approx(-advantages.mean().item(), abs=1e-6)
    assert abs(loss.item()) < 1e-5
    assert stats["kl"] == 0.0 and stats["clip_fraction"] == 0.0 and stats["mean_ratio"] == pytest.approx(1.0)


def test_grpo_clipping_stops_the_gradient() -> None:
    old = torch.zeros(1, 4)
    new = torch.tensor([[1.0, 1.0, -1.0, 0.05]], requires_grad=True)  # ratios e, e, 1/e, ~1.05
    advantages = torch.tensor([[1.0, -1.0, -1.0, 1.0]])
    loss, stats = grpo_loss(new, old, old, advantages, clip_eps=0.2, kl_coef=0.0)
    loss.backward()
    grad = new.grad[0]
    assert grad[0] == 0 and grad[2] == 0  # moved too far already in the advantage's direction
    assert grad[1] > 0 and grad[3] < 0  # still rewarded (or penalised) to move back / further
    assert stats["clip_fraction"] == 0.5


def test_kl_estimator_is_non_negative_and_zero_only_at_equality() -> None:
    ref = torch.zeros(1, 5)
    new = torch.tensor([[-3.0, -0.5, 0.0, 0.5, 3.0]])
    zeros = torch.zeros(1, 5)
    for column in range(5):
        _, stats = grpo_loss(new[:, column : column + 1], new[:, column : column + 1], ref[:, :1], zeros[:, :1])
        assert stats["kl"] >= 0.0
        assert (stats["kl"] == 0.0) == (column == 2)


def test_grpo_gradient_follows_the_advantage() -> None:
    old = torch.randn(2, 3, generator=torch.Generator().manual_seed(2))
    new = old.clone().requires_grad_()
    advantages = torch.tensor([[1.0, -1.0, 0.0], [-0.5, 2.0, -1.5]])
    loss, _ = grpo_loss(new, old, old, advantages)
    loss.backward()
    assert torch.equal(torch.sign(-new.grad), torch.sign(advantages))  # descent raises logp where A > 0
