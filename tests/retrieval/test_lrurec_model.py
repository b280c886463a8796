"""The LRURec network: scan vs recurrence, padding, causality, initialisation, text embeddings, a tiny overfit."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from convrec.retrieval.lrurec import LRURec, LRURecConfig, parallel_scan
from convrec.retrieval.lrurec.model import LRULayer, sequential_scan

N_ITEMS = 30


@pytest.fixture(autouse=True)
def single_thread():
    """Tiny tensors: one intra-op thread is fastest, and avoids oversubscription on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_model(seed: int = 0, **overrides) -> LRURec:
    torch.manual_seed(seed)
    params = {"n_items": N_ITEMS, "hidden": 16, "n_blocks": 2} | overrides
    return LRURec(LRURecConfig(**params)).eval()


def random_batch(batch: int, length: int, n_pad: list[int], seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, N_ITEMS + 1, (batch, length), generator=gen)
    for row, pad in enumerate(n_pad):
        ids[row, :pad] = 0
    return ids


def stepwise_hidden(model: LRURec, ids: torch.Tensor) -> torch.Tensor:
    states = model.init_state(ids.shape[0])
    hidden = []
    for k in range(ids.shape[1]):
        states, h = model.step_hidden(states, ids[:, k])
        hidden.append(h)
    return torch.stack(hidden, dim=1)


# ---------------------------------------------------------------------------------------------------------
# 1. parallel scan
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [1, 2, 5, 8, 13, 32, 50])
def test_parallel_scan_matches_sequential_loop(length):
    torch.manual_seed(length)
    n = 12
    lambda_ = torch.polar(0.8 + 0.19 * torch.rand(n), 2 * math.pi * torch.rand(n))
    u = torch.randn(3, length, n, dtype=torch.complex64)
    got = parallel_scan(lambda_, u)
    assert got.shape == u.shape and got.dtype == torch.complex64
    torch.testing.assert_close(got, sequential_scan(lambda_, u), rtol=0, atol=1e-5)


def test_parallel_scan_gradients_match_sequential_loop():
    torch.manual_seed(0)
    nu = torch.randn(4, requires_grad=True)
    u = torch.randn(2, 7, 4, dtype=torch.complex64, requires_grad=True)
    grads = []
    for scan in (parallel_scan, sequential_scan):
        lambda_ = torch.exp(torch.complex(-torch.exp(nu), torch.ones(4)))
        out = scan(lambda_, u)
        (out.real.sum() + 2 * out.imag.sum()).backward()
        grads.append((nu.grad.clone(), u.grad.clone()))
        nu.grad, u.grad = None, None
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------------------
# 2. scan-based forward == recurrent inference
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bc_init", ["lru", "reference"])
@pytest.mark.parametrize("n_pad", [[0, 0, 0], [0, 4, 8]], ids=["unpadded", "left-padded"])
def test_forward_equals_step_by_step(n_pad, bc_init):
    model = make_model(bc_init=bc_init)
    ids = random_batch(3, 11, n_pad)
    with torch.no_grad():
        torch.testing.assert_close(model(ids), stepwise_hidden(model, ids), rtol=0, atol=1e-5)


def test_encode_then_step_continues_the_sequence():
    model = make_model()
    ids = random_batch(3, 9, [0, 2, 5])
    with torch.no_grad():
        states, last = model.encode(ids[:, :6])
        torch.testing.assert_close(last, model(ids[:, :6])[:, -1], rtol=0, atol=1e-6)
        assert len(states) == 2 and states[0].shape == (3, 32) and states[0].is_complex()
        for k in range(6, 9):
            states, scores = model.step(states, ids[:, k])
        torch.testing.assert_close(scores, model.score_sequences(ids), rtol=0, atol=1e-5)
    assert scores.shape == (3, N_ITEMS + 1)
    assert torch.isneginf(scores[:, 0]).all() and torch.isfinite(scores[:, 1:]).all()


# ---------------------------------------------------------------------------------------------------------
# 3. padding never leaks
# ---------------------------------------------------------------------------------------------------------


def test_extra_left_padding_does_not_change_real_positions():
    model = make_model()
    ids = random_batch(2, 5, [0, 2])
    extra = 8
    padded = torch.cat([torch.zeros(2, extra, dtype=torch.long), ids], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(model(padded)[:, extra:], model(ids), rtol=0, atol=1e-6)
        torch.testing.assert_close(model.score_sequences(padded), model.score_sequences(ids), rtol=0, atol=1e-6)


def test_state_is_exactly_zero_before_the_first_item_and_padding_values_are_irrelevant():
    model = make_model()
    ids = random_batch(2, 7, [3, 0])
    layer = model.blocks[0].lru
    x = torch.randn(2, 7, 16)
    with torch.no_grad():
        h = parallel_scan(layer.lambda_(), layer._inputs(x, ids > 0))
        assert torch.count_nonzero(h[0, :3]) == 0 and torch.count_nonzero(h[0, 3]) > 0
        before = model(ids)
        model.item_embedding.weight[0] = 5 * torch.randn(16)  # whatever padding embeds to, real items ignore it
        after = model(ids)
    torch.testing.assert_close(after[0, 3:], before[0, 3:], rtol=0, atol=1e-6)
    torch.testing.assert_close(after[1], before[1], rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------------------------------------
# 4. ring initialisation
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("r_min", "r_max"), [(0.8, 0.99), (0.4, 0.6)])
def test_ring_initialisation(r_min, r_max):
    torch.manual_seed(0)
    layer = LRULayer(hidden=64, r_min=r_min, r_max=r_max)
    with torch.no_grad():
        lambda_, gamma = layer.lambda_(), layer.gamma()
    assert lambda_.shape == (128,) and lambda_.dtype == torch.complex64
    modulus = lambda_.abs()
    assert modulus.min() >= r_min - 1e-6 and modulus.max() <= r_max + 1e-6
    assert modulus.max() - modulus.min() > 0.5 * (r_max - r_min)  # spread over the ring, not one value
    phase = torch.exp(layer.theta_log.detach())
    assert phase.min() >= 0 and phase.max() <= 2 * math.pi
    torch.testing.assert_close(gamma, torch.sqrt(1 - modulus**2), rtol=1e-5, atol=1e-6)


def test_config_rejects_an_empty_ring():
    with pytest.raises(ValueError, match="r_min < r_max"):
        LRURecConfig(n_items=3, r_min=0.9, r_max=0.8)


# ---------------------------------------------------------------------------------------------------------
# 5. causality
# ---------------------------------------------------------------------------------------------------------


def test_later_items_do_not_change_earlier_positions():
    model = make_model()
    ids = random_batch(2, 10, [0, 3])
    changed = ids.clone()
    changed[:, 6] = changed[:, 6] % N_ITEMS + 1
    with torch.no_grad():
        a, b = model(ids), model(changed)
    torch.testing.assert_close(a[:, :6], b[:, :6], rtol=0, atol=1e-6)
    assert (a[:, 6:] - b[:, 6:]).abs().amax(dim=-1).min() > 1e-4


# ---------------------------------------------------------------------------------------------------------
# 6. text-initialised item embeddings
# ---------------------------------------------------------------------------------------------------------


def test_text_embeddings_define_item_embeddings_and_stay_fixed():
    torch.manual_seed(0)
    text = torch.randn(N_ITEMS + 1, 10)
    text[5] = text[3]
    model = LRURec(LRURecConfig(n_items=N_ITEMS, hidden=16, text_dim=10), text_embeddings=text)
    assert "text_embeddings" in dict(model.named_buffers())
    assert all(p is not model.text_embeddings for p in model.parameters())
    emb = model.item_embeddings()
    assert emb.shape == (N_ITEMS + 1, 16)
    torch.testing.assert_close(emb[3], emb[5], rtol=0, atol=0)
    assert not torch.allclose(emb[3], emb[4])
    torch.testing.assert_close(model.embed_items(torch.tensor([[3, 4]])), emb[[3, 4]].unsqueeze(0))

    new_text = text.clone()
    new_text[3] = torch.randn(10)
    model.set_text_embeddings(new_text)
    emb2 = model.item_embeddings()
    assert not torch.allclose(emb2[3], emb[3])
    torch.testing.assert_close(emb2[4], emb[4], rtol=0, atol=0)

    ids = random_batch(2, 6, [0, 2])
    loss = model.score_sequences(ids)[:, 1:].logsumexp(-1).sum()
    loss.backward()
    assert not model.text_embeddings.requires_grad and model.text_embeddings.grad is None
    assert model.text_proj.weight.grad is not None and model.delta.grad.abs().sum() > 0


def test_text_config_needs_a_matching_matrix():
    config = LRURecConfig(n_items=4, hidden=8, text_dim=6)
    with pytest.raises(ValueError, match="needs text_embeddings"):
        LRURec(config)
    with pytest.raises(ValueError, match="shape"):
        LRURec(config, text_embeddings=torch.zeros(4, 6))


def test_param_groups_cover_every_parameter_once():
    model = make_model()
    groups = model.param_groups(0.01)
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())
    no_decay = {id(p) for p in groups[1]["params"]}
    assert id(model.output_bias) in no_decay and id(model.input_norm.weight) in no_decay
    assert id(model.blocks[0].lru.B_re) not in no_decay


# ---------------------------------------------------------------------------------------------------------
# 7. tiny overfit
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text_dim", [None, 8])
def test_overfits_deterministic_sequences(text_dim):
    torch.manual_seed(0)
    n_items = 12
    seqs = torch.tensor([
        [0, 0, 1, 2, 3, 4],
        [5, 6, 7, 8, 9, 10],
        [0, 11, 12, 1, 2, 3],
        [0, 0, 0, 4, 7, 10],
    ])
    inputs, labels = seqs[:, :-1], seqs[:, 1:].clone()
    labels[inputs == 0] = 0  # no target for padded inputs
    config = LRURecConfig(n_items=n_items, hidden=32, dropout=0.0, attn_dropout=0.0, ffn_dropout=0.0,
                          text_dim=text_dim)
    text = torch.randn(n_items + 1, text_dim) if text_dim else None
    model = LRURec(config, text_embeddings=text)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    for _ in range(200):
        logits = model.scores(model(inputs))
        loss = F.cross_entropy(logits.reshape(-1, n_items + 1), labels.reshape(-1), ignore_index=0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        pred = model.scores(model(inputs)).argmax(-1)
    real = labels > 0
    assert (pred[real] == labels[real]).float().mean().item() == 1.0


def test_text_item_embeddings_are_cached_only_for_inference():
    config = LRURecConfig(n_items=5, hidden=8, n_blocks=1, text_dim=4)
    model = LRURec(config, torch.randn(6, 4))
    model.eval()
    with torch.no_grad():
        first = model.item_embeddings()
        assert model.item_embeddings() is first  # reused while serving
        model.set_text_embeddings(torch.randn(6, 4))
        assert not torch.equal(model.item_embeddings(), first)  # new text, new embeddings
        cached = model.item_embeddings()
        model.load_state_dict({k: v + 0.5 if k == "delta" else v for k, v in model.state_dict().items()})
        assert torch.allclose(model.item_embeddings(), cached + 0.5)
    model.train()
    assert model.item_embeddings().requires_grad  # training always recomputes, with gradients
