"""The preference losses that align the retriever with the frozen LLM's judgement of its candidate sets.

Each context has ``G`` candidate sets sampled from the policy (:func:`convrec.align.policy.gumbel_top_k`),
each rewarded by the LLM. Two ways to learn from them, both on sequence log-probabilities
(:func:`convrec.align.policy.plackett_luce_log_prob`):

* DPO (Rafailov et al. 2023), online: the best vs the worst set of each group form one preference pair;
* GRPO (Shao et al. 2024): every set, weighted by its reward standardised within its group, through a
  PPO-style clipped ratio, with a KL penalty to the reference.

The reference and the sampling-time ("old") log-probabilities are constants: they are detached here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["dpo_loss", "group_advantages", "grpo_loss", "preference_pairs"]


def preference_pairs(rewards: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per group (row of ``(B, G)`` rewards): the best set's index, the worst's, and whether they differ.

    Groups whose rewards are all equal say nothing about which set is better, so ``valid`` is False there.
    Ties among the best (or the worst) go to the first index.
    """
    if rewards.dim() != 2:
        raise ValueError(f"rewards must be (B, G), got shape {tuple(rewards.shape)}")
    # argmax/argmin return the first index on ties (max/min(dim) do not promise which).
    chosen, rejected = rewards.argmax(dim=1), rewards.argmin(dim=1)
    return chosen, rejected, rewards.amax(dim=1) > rewards.amin(dim=1)


def dpo_loss(policy_chosen: Tensor, policy_rejected: Tensor, reference_chosen: Tensor,
             reference_rejected: Tensor, beta: float, valid: Tensor | None = None) -> tuple[Tensor, dict[str, float]]:
    """DPO: ``-log sigmoid(beta * ((pc - rc) - (pr - rr)))`` averaged over the valid pairs.

    ``beta * (policy - reference)`` is each set's implicit reward; the loss widens the chosen-minus-rejected
    margin, and ``beta`` sets how far from the reference that is worth going. Invalid rows are dropped
    before any arithmetic, so whatever they hold (even NaN or -inf) affects neither loss nor gradient. With
    no valid row the loss is a zero still attached to the graph, so ``backward()`` works unconditionally.

    Stats: ``dpo_loss``, ``dpo_accuracy`` (share of pairs with a positive margin), ``dpo_margin`` (mean
    implicit-reward margin, beta included) and ``pairs`` (how many were used).
    """
    if valid is None:
        valid = torch.ones_like(policy_chosen, dtype=torch.bool)
    pairs = int(valid.sum())
    if pairs == 0:
        stats = {"dpo_loss": 0.0, "dpo_accuracy": 0.0, "dpo_margin": 0.0, "pairs": 0.0}
        return (policy_chosen.sum() + policy_rejected.sum()) * 0.0, stats
    chosen = policy_chosen[valid] - reference_chosen[valid].detach()
    rejected = policy_rejected[valid] - reference_rejected[valid].detach()
    margin = beta * (chosen - rejected)
    loss = -F.logsigmoid(margin).mean()
    margin = margin.detach()
    stats = {"dpo_loss": loss.item(), "dpo_accuracy": (margin > 0).float().mean().item(),
             "dpo_margin": margin.mean().item(), "pairs": float(pairs)}
    return loss, stats


def group_advantages(rewards: Tensor, eps: float = 1e-6) -> Tensor:
    """GRPO advantages: each reward standardised within its group, ``(r - mean_g) / (std_g + eps)``.

    The std is the population one (``unbiased=False``): it is defined for ``G = 1`` and gives non-constant
    groups exactly unit spread for any ``G`` (the sample std differs by ``sqrt((G-1)/G)``, a constant factor
    the learning rate absorbs). Constant groups get exact zeros (their rounding residue divided by ``eps``
    would otherwise be noise), so they contribute only through the KL term.
    """
    if rewards.dim() != 2:
        raise ValueError(f"rewards must be (B, G), got shape {tuple(rewards.shape)}")
    mean = rewards.mean(dim=1, keepdim=True)
    std = rewards.std(dim=1, keepdim=True, unbiased=False)
    advantages = (rewards - mean) / (std + eps)
    constant = rewards.amax(dim=1, keepdim=True) == rewards.amin(dim=1, keepdim=True)
    return torch.where(constant, torch.zeros_like(advantages), advantages)


def grpo_loss(logp_new: Tensor, logp_old: Tensor, logp_ref: Tensor, advantages: Tensor, clip_eps: float = 0.2,
              kl_coef: float = 0.04) -> tuple[Tensor, dict[str, float]]:
    """GRPO on ``(B, G)`` sequence log-probabilities: clipped surrogate plus ``kl_coef`` x KL to the reference.

    ``ratio = exp(new - old)``; the surrogate ``min(ratio * A, clip(ratio, 1-eps, 1+eps) * A)`` stops
    rewarding a set once its probability has moved more than ``eps`` in the advantage's direction, which
    keeps several updates on one batch of samples safe. The KL uses the k3 estimator
    ``exp(ref - new) - (ref - new) - 1``: unbiased for KL(new || ref) on samples from new, never negative.

    Stats: ``grpo_loss``, ``policy_loss`` (the surrogate's part), ``kl`` (mean k3), ``clip_fraction`` (share
    of elements the clip cut off from the gradient), ``mean_ratio``.
    """
    advantages = advantages.detach()
    ratio = torch.exp(logp_new - logp_old.detach())
    clipped = ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps)
    policy_loss = -torch.minimum(ratio * advantages, clipped * advantages).mean()
    delta = logp_ref.detach() - logp_new
    kl = (torch.exp(delta) - delta - 1.0).mean()
    loss = policy_loss + kl_coef * kl
    with torch.no_grad():
        cut = ((ratio > 1.0 + clip_eps) & (advantages > 0)) | ((ratio < 1.0 - clip_eps) & (advantages < 0))
        stats = {"grpo_loss": loss.item(), "policy_loss": policy_loss.item(), "kl": kl.item(),
                 "clip_fraction": cut.float().mean().item(), "mean_ratio": ratio.mean().item()}
    return loss, stats
