"""The Plackett-Luce policy against brute force: every ordered k-sequence of a tiny catalogue enumerated, its
probability computed from the definition in plain Python, and the sampler's frequencies checked against it."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import pytest
import torch

from convrec.align import greedy_top_k, gumbel_top_k, plackett_luce_log_prob

LOGITS = [[0.5, -1.0, 2.0, 0.0, 1.2], [3.0, 3.0, -2.0, 0.3, -0.7]]
EXCLUDE = [[False, True, False, False, False], [False, False, False, True, True]]


def brute_force(logits: list[float], k: int, excluded: list[bool] | None = None) -> dict[tuple[int, ...], float]:
    """P(s) for every ordered k-sequence of pickable items, straight from the definition."""
    pickable = [i for i in range(len(logits)) if not (excluded and excluded[i])]
    weights = {i: math.exp(logits[i]) for i in pickable}
    probabilities = {}
    for sequence in itertools.permutations(pickable, k):
        remaining, p = set(pickable), 1.0
        for item in sequence:
            p *= weights[item] / sum(weights[i] for i in remaining)
            remaining.remove(item)
        probabilities[sequence] = p
    return probabilities


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("use_exclude", [False, True])
def test_log_prob_matches_brute_force_and_normalises(k: int, use_exclude: bool) -> None:
    for row, logits in enumerate(LOGITS):
        excluded = EXCLUDE[row] if use_exclude else None
        expected = brute_force(logits, k, excluded)
        sequences = torch.tensor(list(expected))
        batch = torch.tensor([logits] * len(sequences), dtype=torch.float64)
        exclude = None if excluded is None else torch.tensor([excluded] * len(sequences))
        got = plackett_luce_log_prob(batch, sequences, exclude).exp()
        assert torch.allclose(got, torch.tensor(list(expected.values()), dtype=torch.float64), atol=1e-12)
        assert got.sum().item() == pytest.approx(1.0, abs=1e-12)


def test_minus_inf_logits_act_as_exclusion() -> None:
    logits = torch.tensor(LOGITS)
    exclude = torch.tensor(EXCLUDE)
    sequences = torch.tensor([[0, 2, 3], [1, 0, 2]])
    via_mask = plackett_luce_log_prob(logits, sequences, exclude)
    via_inf = plackett_luce_log_prob(logits.masked_fill(exclude, float("-inf")), sequences)
    assert torch.allclose(via_mask, via_inf)


def test_impossible_sequences_get_minus_inf_and_zero_gradient() -> None:
    logits = torch.tensor(LOGITS, requires_grad=True)
    exclude = torch.tensor(EXCLUDE)
    sequences = torch.tensor([[1, 0, 2], [0, 0, 2]])  # an excluded item; a repeated item
    logp = plackett_luce_log_prob(logits, sequences, exclude)
    assert torch.isneginf(logp).all()
    logp.sum().backward()
    assert logits.grad is not None and torch.equal(logits.grad, torch.zeros_like(logits))


@pytest.mark.parametrize("k", [2, 3])
def test_gumbel_frequencies_match_plackett_luce(k: int) -> None:
    draws = 20_000
    for row, logits in enumerate(LOGITS):
        for excluded in (None, EXCLUDE[row]):
            expected = brute_force(logits, k, excluded)
            batch = torch.tensor([logits] * draws)
            exclude = None if excluded is None else torch.tensor([excluded] * draws)
            samples = gumbel_top_k(batch, k, torch.Generator().manual_seed(row), exclude)
            counts = Counter(map(tuple, samples.tolist()))
            assert set(counts) <= set(expected)  # distinct, never an excluded item
            worst = max(abs(counts[s] / draws - p) for s, p in expected.items())
            assert worst < 0.015


def test_gumbel_samples_are_distinct_and_avoid_excluded() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 300, generator=generator)
    exclude = torch.rand(64, 300, generator=generator) < 0.5
    logits[:, :10] = 50.0  # the excluded items would win without the mask
    exclude[:, :10] = True
    samples = gumbel_top_k(logits, 40, generator, exclude)
    assert samples.shape == (64, 40) and samples.dtype == torch.long
    assert all(len(set(row)) == 40 for row in samples.tolist())
    assert not exclude.gather(1, samples).any()


def test_gumbel_is_reproducible_and_gradient_free() -> None:
    logits = torch.randn(8, 50, requires_grad=True)
    first = gumbel_top_k(logits, 5, torch.Generator().manual_seed(7))
    second = gumbel_top_k(logits, 5, torch.Generator().manual_seed(7))
    other = gumbel_top_k(logits, 5, torch.Generator().manual_seed(8))
    assert torch.equal(first, second) and not torch.equal(first, other)
    assert not first.requires_grad


@pytest.mark.parametrize("sampler", [lambda lg, k, ex: gumbel_top_k(lg, k, None, ex), greedy_top_k])
def test_too_large_k_is_refused(sampler) -> None:
    logits = torch.tensor(LOGITS)
    with pytest.raises(ValueError, match="pickable"):
        sampler(logits, 6, None)
    with pytest.raises(ValueError, match="row 1"):
        sampler(logits, 4, torch.tensor(EXCLUDE))  # row 1 has only 3 pickable items
    with pytest.raises(ValueError, match=r"\(3\) in row 1"):
        sampler(logits.masked_fill(torch.tensor(EXCLUDE), float("-inf")), 4, None)
    assert sampler(logits, 3, torch.tensor(EXCLUDE)).shape == (2, 3)


def test_greedy_takes_the_best_pickable_items_in_order() -> None:
    got = greedy_top_k(torch.tensor(LOGITS), 3, torch.tensor(EXCLUDE))
    assert got[0].tolist() == [2, 4, 0]
    assert sorted(got[1, :2].tolist()) == [0, 1] and got[1, 2].item() == 2


def test_gradient_matches_autograd_reference() -> None:
    """The closed-form backward against finite differences, with and without exclusion."""
    generator = torch.Generator().manual_seed(3)
    logits = torch.randn(3, 7, dtype=torch.float64, generator=generator, requires_grad=True)
    exclude = torch.zeros(3, 7, dtype=torch.bool)
    exclude[0, 1] = exclude[2, 6] = True
    sequences = torch.tensor([[0, 2, 5], [6, 1, 0], [3, 4, 2]])
    assert torch.autograd.gradcheck(lambda lg: plackett_luce_log_prob(lg, sequences), (logits,))
    assert torch.autograd.gradcheck(lambda lg: plackett_luce_log_prob(lg, sequences, exclude), (logits,))


def test_gradient_flows_and_ascent_raises_probability() -> None:
    logits = torch.randn(2, 20, generator=torch.Generator().manual_seed(1), requires_grad=True)
    sequences = torch.tensor([[4, 9, 1], [0, 19, 7]])
    logp = plackett_luce_log_prob(logits, sequences)
    logp.sum().backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()

    start = logp.detach().clone()
    optimizer = torch.optim.SGD([logits], lr=0.5)
    for _ in range(5):
        optimizer.zero_grad()
        (-plackett_luce_log_prob(logits, sequences).sum()).backward()
        optimizer.step()
    assert (plackett_luce_log_prob(logits, sequences).detach() > start + 0.1).all()


def test_stable_for_extreme_logits() -> None:
    logits = torch.tensor([[1000.0, 0.0, -1000.0, 999.0]], requires_grad=True)
    logp = plackett_luce_log_prob(logits, torch.tensor([[2, 1]]))
    assert torch.isfinite(logp).all() and logp.item() < -1000
    logp.sum().backward()
    assert torch.isfinite(logits.grad).all()
