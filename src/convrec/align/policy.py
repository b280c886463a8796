"""The retriever as a stochastic policy over ordered candidate sets (Plackett-Luce without replacement).

The retriever scores the whole catalogue; ``softmax(logits)`` is its distribution over one item. A candidate
set of ``k`` items is drawn the Plackett-Luce way: pick one item from the softmax, remove it, renormalise,
repeat. That gives every ordered set an exact, differentiable probability, which is what DPO and GRPO need
(:mod:`convrec.align.losses`), and sampling it is cheap through the Gumbel top-k trick.

Unpickable items: an item is never picked, and takes no probability mass, when its logit is ``-inf`` or
``exclude`` marks it. Both ways are equivalent, so callers may mask the logits once (``masked_fill(mask,
-inf)``) and omit ``exclude`` everywhere after.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["greedy_top_k", "gumbel_top_k", "plackett_luce_log_prob"]


def _masked(logits: Tensor, exclude: Tensor | None) -> Tensor:
    """``logits`` with the excluded items at ``-inf`` (shape-checked), so one rule covers both kinds."""
    if logits.dim() != 2:
        raise ValueError(f"logits must be (B, N), got shape {tuple(logits.shape)}")
    if exclude is None:
        return logits
    if exclude.shape != logits.shape or exclude.dtype != torch.bool:
        raise ValueError(f"exclude must be a bool tensor of shape {tuple(logits.shape)}, "
                         f"got {exclude.dtype} {tuple(exclude.shape)}")
    return logits.masked_fill(exclude, float("-inf"))


def _check_k(masked: Tensor, k: int) -> None:
    """Refuse a ``k`` some row cannot supply: top-k would silently return excluded items instead."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    pickable = (masked > float("-inf")).sum(dim=1)
    if masked.shape[0] and int(pickable.min()) < k:
        row = int(pickable.argmin())
        raise ValueError(f"k={k} exceeds the number of pickable items ({int(pickable[row])}) in row {row} "
                         "(items with a -inf logit or marked in exclude cannot be picked)")


@torch.no_grad()
def gumbel_top_k(logits: Tensor, k: int, generator: torch.Generator | None = None,
                 exclude: Tensor | None = None) -> Tensor:
    """Samples ``k`` distinct items per row, in order, exactly as Plackett-Luce sampling without replacement.

    Adding i.i.d. Gumbel(0, 1) noise to the logits and sorting is equivalent to drawing the items one by one
    from the renormalised softmax (Yellott 1977; Kool et al. 2019), in a single vectorised ``topk``. The
    noise is drawn from ``generator`` (which must live on ``logits``' device) for reproducibility.

    Returns a ``(B, k)`` long tensor, the first column the first item drawn.
    """
    masked = _masked(logits, exclude)
    _check_k(masked, k)
    dtype = torch.promote_types(masked.dtype, torch.float32)
    uniform = torch.rand(masked.shape, generator=generator, device=masked.device, dtype=dtype)
    # rand can return exactly 0, whose Gumbel would be -inf and tie with the excluded items.
    uniform.clamp_(min=torch.finfo(dtype).tiny)
    gumbel = -torch.log(-torch.log(uniform))
    return (masked.to(dtype) + gumbel).topk(k, dim=1, sorted=True).indices


@torch.no_grad()
def greedy_top_k(logits: Tensor, k: int, exclude: Tensor | None = None) -> Tensor:
    """The ``k`` highest-scoring pickable items per row, best first: the policy's mode, for evaluation."""
    masked = _masked(logits, exclude)
    _check_k(masked, k)
    return masked.topk(k, dim=1, sorted=True).indices


class _PlackettLuceLogProb(torch.autograd.Function):
    """``sum_j [l[s_j] - logsumexp(l over the items still pickable at step j)]`` with an O(B*N) backward.

    Plain autograd through a loop of masked ``logsumexp`` would keep one ``(B, N)`` tensor per position
    (``B*k*N`` floats: 64 contexts x 8 sets x 50 positions x 7,000 items is ~0.7 GB). The gradient has a
    closed form, ``d/dl = sum_j onehot(s_j) - sum_j softmax_j(l)``, which the backward recomputes position by
    position from the saved logits, so memory stays one ``(B, N)`` buffer.
    """

    @staticmethod
    def forward(ctx, logits: Tensor, sequences: Tensor) -> Tensor:  # type: ignore[override]
        removed = torch.zeros_like(logits, dtype=torch.bool)
        total = logits.new_zeros(logits.shape[0])
        for j in range(sequences.shape[1]):
            step = logits.masked_fill(removed, float("-inf"))
            picked = step.gather(1, sequences[:, j : j + 1]).squeeze(1)
            # A repeated or unpickable item has probability 0: -inf, not the NaN of (-inf) - (-inf).
            term = picked - torch.logsumexp(step, dim=1)
            total = total + torch.where(picked > float("-inf"), term, torch.full_like(term, float("-inf")))
            removed.scatter_(1, sequences[:, j : j + 1], True)
        ctx.save_for_backward(logits, sequences, total)
        return total

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        logits, sequences, total = ctx.saved_tensors
        removed = torch.zeros_like(logits, dtype=torch.bool)
        grad = torch.zeros_like(logits)
        for j in range(sequences.shape[1]):
            grad -= torch.softmax(logits.masked_fill(removed, float("-inf")), dim=1)
            grad.scatter_add_(1, sequences[:, j : j + 1], torch.ones_like(sequences[:, j : j + 1], dtype=grad.dtype))
            removed.scatter_(1, sequences[:, j : j + 1], True)
        # Probability-0 rows (log-prob -inf) have no useful direction; give them 0 rather than NaN.
        grad = torch.where(torch.isfinite(total)[:, None], grad, torch.zeros_like(grad))
        return grad * grad_output[:, None], None


def plackett_luce_log_prob(logits: Tensor, sequences: Tensor, exclude: Tensor | None = None) -> Tensor:
    """``(B,)`` log-probability of each ordered sequence under Plackett-Luce sampling without replacement.

    ``log P(s) = sum_j [ logits[s_j] - logsumexp(logits over items not excluded and not in s_1..s_{j-1}) ]``,
    the probability with which :func:`gumbel_top_k` draws ``s``. Differentiable w.r.t. ``logits`` (no
    gradient reaches excluded or ``-inf`` items); the loop runs over the ``k`` positions only. A sequence that
    repeats an item or contains an unpickable one gets ``-inf`` and a zero gradient. Computed in at least
    float32.
    """
    masked = _masked(logits, exclude)
    if sequences.dim() != 2 or sequences.shape[0] != masked.shape[0]:
        raise ValueError(f"sequences must be (B, k) with B={masked.shape[0]}, got shape {tuple(sequences.shape)}")
    dtype = torch.promote_types(masked.dtype, torch.float32)
    return _PlackettLuceLogProb.apply(masked.to(dtype), sequences.long())
