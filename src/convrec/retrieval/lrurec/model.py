"""LRURec: a stack of Linear Recurrent Units for next-item prediction (Yue et al., WSDM 2024, arXiv 2310.02367).

Each block is an LRU layer (a diagonal complex linear recurrence, run as a parallel scan in training and
step by step at inference) followed by a position-wise feed-forward network::

    x      = LayerNorm(Dropout(E[item]))                                   input, (B, L, H)
    u_k    = gamma * (B x_k + b)                                           complex, (B, L, N), N = 2H
    h_k    = Lambda h_{k-1} + u_k          Lambda = diag(exp(-exp(nu_log) + i exp(theta_log)))
    y_k    = LayerNorm(Dropout(Re(C h_k) + c) + x_k)                       LRU layer output
    z_k    = LayerNorm(Dropout(W2 Dropout(GELU(W1 y_k))) + y_k)            block output
    scores = z_L E^T + bias                                                tied to the item embedding

The recurrence is causal (the LRURec paper's model is unidirectional). Item id 0 is padding and sequences
are left-padded: the scan input ``u_k`` is zeroed at padded positions, so the state stays exactly zero until
the first real item and padding never reaches a real position.

The parameterisation follows the reference implementation (yueqirex/LRURec, ``model/lru.py``): ring
initialisation of ``Lambda``, a trainable normalisation ``gamma_log``, state size ``2 * hidden``, biases on
the input and output projections, truncated-normal (std 0.02) initialisation of embeddings and linear layers.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor, nn

__all__ = [
    "LRUBlock",
    "LRULayer",
    "LRURec",
    "LRURecConfig",
    "PositionwiseFeedForward",
    "parallel_scan",
    "sequential_scan",
]

TRUNC_STD = 0.02
"""Std of the truncated-normal init of the reference (truncated at +-2 std)."""


class LRURecConfig(BaseModel):
    """Hyper-parameters of :class:`LRURec`; defaults are the reference's (hidden 64, 2 blocks, dropout 0.2)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_items: int = Field(..., ge=1, description="catalogue size; item ids are 1..n_items, 0 is padding")
    hidden: int = Field(64, ge=1, description="embedding / model width H; the LRU state has 2H complex units")
    n_blocks: int = Field(2, ge=1)
    dropout: float = Field(0.2, ge=0, lt=1, description="dropout on the input item embeddings")
    attn_dropout: float = Field(0.2, ge=0, lt=1,
                                description="dropout on the LRU layer's output (the reference's attn dropout)")
    ffn_dropout: float = Field(0.2, ge=0, lt=1, description="dropout inside and after the feed-forward network")
    r_min: float = Field(0.8, ge=0, lt=1, description="smallest |lambda| of the ring initialisation")
    r_max: float = Field(0.99, gt=0, lt=1, description="largest |lambda| of the ring initialisation")
    max_phase: float = Field(2 * math.pi, gt=0, description="phases of lambda are drawn in [0, max_phase]")
    max_len: int = Field(200, ge=1, description="training window; the model itself accepts any length")
    text_dim: int | None = Field(None, ge=1, description="if set, E = text_proj(text) + delta (see LRURec)")
    bc_init: Literal["lru", "reference"] = Field(
        "lru", description="'lru': B ~ N(0, 1/(2H)), C ~ N(0, 1/N) per real/imag part, zero biases (Orvieto et "
        "al. 2023); 'reference': truncated normal std 0.02 for B, C and their biases (yueqirex/LRURec)")

    @model_validator(mode="after")
    def _check_ring(self) -> LRURecConfig:
        if not self.r_min < self.r_max:
            raise ValueError(f"need r_min < r_max, got {self.r_min} and {self.r_max}")
        return self

    @property
    def state_dim(self) -> int:
        """Complex state size N of each LRU layer."""
        return 2 * self.hidden


def _trunc_normal_(tensor: Tensor, std: float = TRUNC_STD) -> Tensor:
    return nn.init.trunc_normal_(tensor, mean=0.0, std=std, a=-2 * std, b=2 * std)


# ---------------------------------------------------------------------------------------------------------
# Scans
# ---------------------------------------------------------------------------------------------------------


def parallel_scan(lambda_: Tensor, u: Tensor) -> Tensor:
    """All states of ``h_k = lambda_ * h_{k-1} + u_k`` with ``h_0 = 0``, in ``ceil(log2 L)`` parallel passes.

    The length is left-padded with zeros to ``P = 2^ceil(log2 L)`` (zero inputs keep the state at zero, so the
    real positions are unchanged). At pass ``i`` the sequence is cut into blocks of ``2^(i+1)`` positions;
    every position ``j`` of a block's second half receives ``lambda_^(j+1) * last state of the first half``.
    After the pass, each state covers its whole block, so after the last pass it covers the prefix.

    Args:
        lambda_: (N,) complex diagonal of the transition (anything broadcastable to (N,)).
        u: (B, L, N) complex inputs, already multiplied by gamma and B.

    Returns:
        (B, L, N) complex states ``h_1 .. h_L``.
    """
    if u.dim() != 3:
        raise ValueError(f"u must be (B, L, N), got shape {tuple(u.shape)}")
    batch, length, n = u.shape
    if length <= 1:
        return u
    n_pass = (length - 1).bit_length()  # ceil(log2(length)) for length >= 2
    padded = 1 << n_pass
    h = u
    if padded > length:
        h = torch.cat([u.new_zeros(batch, padded - length, n), u], dim=1)
    powers = lambda_.reshape(1, n).to(u.dtype)  # lambda^1 .. lambda^half, (half, N)
    for i in range(n_pass):
        half = 1 << i
        blocks = h.reshape(batch, padded // (2 * half), 2 * half, n)
        first, second = blocks[:, :, :half], blocks[:, :, half:]
        second = second + powers * first[:, :, -1:]
        h = torch.cat([first, second], dim=2).reshape(batch, padded, n)
        if i + 1 < n_pass:
            powers = torch.cat([powers, powers * powers[-1:]], dim=0)
    return h[:, padded - length:]


def sequential_scan(lambda_: Tensor, u: Tensor, h0: Tensor | None = None) -> Tensor:
    """Reference loop for :func:`parallel_scan`: (N,), (B, L, N) -> (B, L, N); ``h0`` (B, N) defaults to 0."""
    h = u.new_zeros(u.shape[0], u.shape[2]) if h0 is None else h0
    states = []
    for k in range(u.shape[1]):
        h = lambda_ * h + u[:, k]
        states.append(h)
    return torch.stack(states, dim=1)


# ---------------------------------------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------------------------------------


class LRULayer(nn.Module):
    """One causal Linear Recurrent Unit with residual and LayerNorm: (B, L, H) -> (B, L, H).

    Parameters (N = 2H complex state units): ``nu_log``, ``theta_log``, ``gamma_log`` (N,) give
    ``lambda = exp(-exp(nu_log) + i exp(theta_log))`` and ``gamma = exp(gamma_log)``; ``B = B_re + i B_im``
    (N, H) with bias ``b_re + i b_im`` (N,); ``C = C_re + i C_im`` (H, N) with real bias ``c`` (H,) (the
    imaginary part of an output bias would be discarded by ``Re``). Complex quantities are stored as pairs of
    real parameters so any optimiser and weight decay treat them as ordinary tensors.
    """

    def __init__(
        self,
        hidden: int,
        dropout: float = 0.2,
        r_min: float = 0.8,
        r_max: float = 0.99,
        max_phase: float = 2 * math.pi,
        bc_init: Literal["lru", "reference"] = "lru",
    ) -> None:
        super().__init__()
        self.hidden = hidden
        self.state_dim = n = 2 * hidden

        # Ring initialisation: |lambda|^2 uniform in [r_min^2, r_max^2], phase uniform in [0, max_phase].
        u1 = torch.rand(n)
        u2 = torch.rand(n).clamp_min(1e-6)  # log(0) would make theta_log -inf
        nu_log = torch.log(-0.5 * torch.log(u1 * (r_max**2 - r_min**2) + r_min**2))
        theta_log = torch.log(u2 * max_phase)
        modulus = torch.exp(-torch.exp(nu_log))
        gamma_log = torch.log(torch.sqrt(1 - modulus**2))
        self.nu_log = nn.Parameter(nu_log)
        self.theta_log = nn.Parameter(theta_log)
        self.gamma_log = nn.Parameter(gamma_log)

        self.B_re = nn.Parameter(torch.empty(n, hidden))
        self.B_im = nn.Parameter(torch.empty(n, hidden))
        self.b_re = nn.Parameter(torch.zeros(n))
        self.b_im = nn.Parameter(torch.zeros(n))
        self.C_re = nn.Parameter(torch.empty(hidden, n))
        self.C_im = nn.Parameter(torch.empty(hidden, n))
        self.c = nn.Parameter(torch.zeros(hidden))
        with torch.no_grad():
            if bc_init == "lru":
                nn.init.normal_(self.B_re, std=1 / math.sqrt(2 * hidden))
                nn.init.normal_(self.B_im, std=1 / math.sqrt(2 * hidden))
                nn.init.normal_(self.C_re, std=1 / math.sqrt(n))
                nn.init.normal_(self.C_im, std=1 / math.sqrt(n))
            elif bc_init == "reference":
                for p in (self.B_re, self.B_im, self.b_re, self.b_im, self.C_re, self.C_im, self.c):
                    _trunc_normal_(p)
            else:
                raise ValueError(f"unknown bc_init {bc_init!r}")

        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(hidden)

    def lambda_(self) -> Tensor:
        """(N,) complex diagonal of the transition, ``exp(-exp(nu_log) + i exp(theta_log))``."""
        return torch.exp(torch.complex(-torch.exp(self.nu_log), torch.exp(self.theta_log)))

    def gamma(self) -> Tensor:
        """(N,) real input normalisation ``exp(gamma_log)``."""
        return torch.exp(self.gamma_log)

    def _inputs(self, x: Tensor, mask: Tensor | None) -> Tensor:
        """``gamma * (B x + b)``, zeroed where ``mask`` is False: (..., H) real -> (..., N) complex."""
        scale = self.gamma()
        if mask is not None:
            scale = scale * mask.unsqueeze(-1).to(scale.dtype)
        return torch.complex(F.linear(x, self.B_re, self.b_re) * scale, F.linear(x, self.B_im, self.b_im) * scale)

    def _outputs(self, h: Tensor, x: Tensor) -> Tensor:
        """``LayerNorm(Dropout(Re(C h) + c) + x)``: (..., N) complex, (..., H) -> (..., H)."""
        y = F.linear(h.real, self.C_re, self.c) - F.linear(h.imag, self.C_im)
        return self.norm(self.dropout(y) + x)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Scan the whole sequence.

        Args:
            x: (B, L, H) inputs.
            mask: (B, L) bool, True at real items; the scan input is zeroed where it is False.

        Returns:
            ``(y, h_last)``: outputs (B, L, H) and the final complex state (B, N).
        """
        h = parallel_scan(self.lambda_(), self._inputs(x, mask))
        return self._outputs(h, x), h[:, -1]

    def step(self, state: Tensor, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """One recurrent step, O(H * N) = O(H^2) per sequence.

        Args:
            state: (B, N) complex state ``h_{k-1}`` (zeros before the first item).
            x: (B, H) input at position k.
            mask: (B,) bool, False where position k is padding (the state then only decays).

        Returns:
            ``(y_k, h_k)``: output (B, H) and the new state (B, N).
        """
        h = self.lambda_() * state + self._inputs(x, mask)
        return self._outputs(h, x), h


class PositionwiseFeedForward(nn.Module):
    """``LayerNorm(Dropout(W2 Dropout(GELU(W1 x))) + x)``: (..., H) -> (..., H), inner width ``d_ff``."""

    def __init__(self, hidden: int, d_ff: int, dropout: float = 0.2) -> None:
        super().__init__()
        self.w_1 = nn.Linear(hidden, d_ff)
        self.w_2 = nn.Linear(d_ff, hidden)
        self.activation = nn.GELU()
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(hidden)

    def forward(self, x: Tensor) -> Tensor:
        inner = self.dropout(self.activation(self.w_1(x)))
        return self.norm(self.dropout(self.w_2(inner)) + x)


class LRUBlock(nn.Module):
    """LRU layer (with its residual and LayerNorm) then a 4H GELU feed-forward network."""

    def __init__(self, config: LRURecConfig) -> None:
        super().__init__()
        self.lru = LRULayer(config.hidden, config.attn_dropout, config.r_min, config.r_max, config.max_phase,
                            config.bc_init)
        self.ffn = PositionwiseFeedForward(config.hidden, 4 * config.hidden, config.ffn_dropout)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(B, L, H), (B, L) bool -> outputs (B, L, H) and the LRU's final state (B, N) complex."""
        y, h_last = self.lru(x, mask)
        return self.ffn(y), h_last

    def step(self, state: Tensor, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(B, N) complex, (B, H), (B,) bool -> output (B, H) and new state (B, N)."""
        y, h = self.lru.step(state, x, mask)
        return self.ffn(y), h


# ---------------------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------------------


class LRURec(nn.Module):
    """The LRURec network: item ids (B, L) -> hidden states (B, L, H) -> scores over the catalogue.

    Item embeddings ``E`` (n_items + 1, H), row 0 being padding, are used both as input and as the tied
    output layer (``scores = h E^T + bias``). Without ``config.text_dim`` E is an ``nn.Embedding``
    (``item_embedding``). With it, E is ``text_proj(text) + delta``: ``text`` is a fixed, non-trainable
    buffer (n_items + 1, text_dim) given at construction (and replaceable with :meth:`set_text_embeddings`),
    ``text_proj`` a learned Linear(text_dim, H) and ``delta`` (n_items + 1, H) a learned per-item residual
    that starts at zero, so items unseen in training still get a vector from their text.

    Inference can run on the whole sequence (:meth:`forward`, :meth:`score_sequences`, :meth:`encode`, all
    parallel scans) or recurrently (:meth:`init_state`, :meth:`step`), one new item at a time.
    """

    def __init__(self, config: LRURecConfig, text_embeddings: Tensor | None = None) -> None:
        super().__init__()
        self.config = config
        n_rows, hidden = config.n_items + 1, config.hidden
        self.item_embedding: nn.Embedding | None = None
        self.text_proj: nn.Linear | None = None
        self.delta: nn.Parameter | None = None
        self.text_embeddings: Tensor | None
        if config.text_dim is None:
            if text_embeddings is not None:
                raise ValueError("text_embeddings given but config.text_dim is None")
            self.item_embedding = nn.Embedding(n_rows, hidden, padding_idx=0)
            self.register_buffer("text_embeddings", None)
        else:
            if text_embeddings is None:
                raise ValueError(f"config.text_dim={config.text_dim} needs text_embeddings (n_items + 1, text_dim)")
            self.register_buffer("text_embeddings", self._check_text(text_embeddings))
            self.text_proj = nn.Linear(config.text_dim, hidden)
            self.delta = nn.Parameter(torch.zeros(n_rows, hidden))
        self.input_norm = nn.LayerNorm(hidden)
        self.input_dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList([LRUBlock(config) for _ in range(config.n_blocks)])
        self.output_bias = nn.Parameter(torch.zeros(n_rows))
        self._frozen_items: Tensor | None = None
        self._init_weights()

    # -- initialisation and embeddings ----------------------------------------------------------------------

    def _init_weights(self) -> None:
        """Truncated normal (std 0.02, +-2 std) for the embedding and the feed-forward weights, as the reference.

        The LRU's own parameters are initialised in :class:`LRULayer`; biases and LayerNorms keep zeros/ones;
        ``delta`` stays zero.
        """
        with torch.no_grad():
            if self.item_embedding is not None:
                _trunc_normal_(self.item_embedding.weight)
                self.item_embedding.weight[0].zero_()
            if self.text_proj is not None:
                _trunc_normal_(self.text_proj.weight)
                self.text_proj.bias.zero_()
            for block in self.blocks:
                for linear in (block.ffn.w_1, block.ffn.w_2):
                    _trunc_normal_(linear.weight)
                    linear.bias.zero_()

    def _check_text(self, text: Tensor) -> Tensor:
        expected = (self.config.n_items + 1, self.config.text_dim)
        if tuple(text.shape) != expected:
            raise ValueError(f"text_embeddings must have shape {expected}, got {tuple(text.shape)}")
        return text.detach().to(torch.get_default_dtype()).clone()

    @torch.no_grad()
    def set_text_embeddings(self, text: Tensor) -> None:
        """Replace the fixed text matrix (n_items + 1, text_dim); only for a model built with ``text_dim``."""
        if self.text_embeddings is None:
            raise ValueError("this model has no text embeddings (config.text_dim is None)")
        text = self._check_text(text)
        self._frozen_items = None
        self.text_embeddings = text.to(device=self.text_embeddings.device, dtype=self.text_embeddings.dtype)

    @torch.no_grad()
    def insert_items(self, text: Tensor, bias: float) -> None:
        """Append items known by their text alone (m, text_dim): rows before BOS with ``delta = 0`` and the
        given output bias, so a new item's vector is ``text_proj(text)``, what training starts every item
        from. Only for a model built with ``text_dim`` (an item-id-only model knows nothing of a new item)."""
        if self.text_embeddings is None or self.delta is None:
            raise ValueError("items can be added by their text only to a text-initialised model (text_init)")
        bos = self.config.n_items  # the BOS row; new items go just before it
        text = text.to(device=self.text_embeddings.device, dtype=self.text_embeddings.dtype)

        def grown(old: Tensor, rows: Tensor) -> Tensor:
            return torch.cat([old[:bos], rows, old[bos:]])

        self.text_embeddings = grown(self.text_embeddings, text)
        self.delta = nn.Parameter(grown(self.delta.data, self.delta.new_zeros(len(text), self.delta.shape[1])))
        self.output_bias = nn.Parameter(grown(self.output_bias.data, self.output_bias.new_full((len(text),), bias)))
        self.config = self.config.model_copy(update={"n_items": self.config.n_items + len(text)})
        self._frozen_items = None

    @torch.no_grad()
    def reset_to_text(self, rows: Tensor, bias: float) -> None:
        """Forget what training learned of these item rows (``delta = 0``, the given bias): each becomes the
        item :meth:`insert_items` would add from its text. Measures what adding an item without retraining
        gives, on items whose true answers are known."""
        if self.delta is None:
            raise ValueError("only a text-initialised model (text_init) has items defined by their text")
        self.delta[rows] = 0.0
        self.output_bias[rows] = bias
        self._frozen_items = None

    def embed_items(self, item_ids: Tensor) -> Tensor:
        """Rows of E for ``item_ids`` (any shape, long) -> (..., H), without building the whole matrix."""
        if self.item_embedding is not None:
            return self.item_embedding(item_ids)
        assert self.text_proj is not None and self.delta is not None and self.text_embeddings is not None
        return self.text_proj(self.text_embeddings[item_ids]) + F.embedding(item_ids, self.delta)

    def item_embeddings(self) -> Tensor:
        """The (n_items + 1, H) matrix E used as input embedding and as tied output layer (row 0: padding).

        With text, E is a projection of the whole text matrix: computed once and reused while the model is in
        eval mode without gradients (serving), recomputed otherwise; ``train()`` and loading weights drop it."""
        if self.item_embedding is not None:
            return self.item_embedding.weight
        assert self.text_proj is not None and self.delta is not None and self.text_embeddings is not None
        if self.training or torch.is_grad_enabled():
            self._frozen_items = None
            return self.text_proj(self.text_embeddings) + self.delta
        if self._frozen_items is None:
            self._frozen_items = self.text_proj(self.text_embeddings) + self.delta
        return self._frozen_items

    def train(self, mode: bool = True) -> LRURec:
        self._frozen_items = None
        return super().train(mode)

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        self._frozen_items = None
        super()._load_from_state_dict(*args, **kwargs)

    def _embed(self, item_ids: Tensor) -> Tensor:
        return self.input_norm(self.input_dropout(self.embed_items(item_ids)))

    # -- whole sequences (parallel scan) ---------------------------------------------------------------------

    def _run(self, item_ids: Tensor) -> tuple[Tensor, list[Tensor]]:
        if item_ids.dim() != 2:
            raise ValueError(f"item_ids must be (B, L), got shape {tuple(item_ids.shape)}")
        mask = item_ids > 0
        x = self._embed(item_ids)
        states = []
        for block in self.blocks:
            x, h_last = block(x, mask)
            states.append(h_last)
        return x, states

    def forward(self, item_ids: Tensor) -> Tensor:
        """Hidden states for every position: (B, L) long, left-padded with 0 -> (B, L, H).

        Position k depends on items 1..k only; values at padded positions are meaningless but harmless.
        """
        return self._run(item_ids)[0]

    def scores(self, hidden: Tensor) -> Tensor:
        """``hidden E^T + bias``: (..., H) -> (..., n_items + 1), with the padding column set to -inf."""
        logits = hidden @ self.item_embeddings().t() + self.output_bias
        return logits.index_fill(-1, torch.tensor([0], device=logits.device), float("-inf"))

    def score_sequences(self, item_ids: Tensor) -> Tensor:
        """Scores for the item following each sequence: (B, L) long -> (B, n_items + 1)."""
        return self.scores(self.forward(item_ids)[:, -1])

    # -- recurrent inference ------------------------------------------------------------------------------------

    def init_state(self, batch_size: int) -> list[Tensor]:
        """Per-block zero states, each (batch_size, N) complex: the state before any item."""
        ref = self.output_bias
        dtype = torch.complex128 if ref.dtype == torch.float64 else torch.complex64
        return [torch.zeros(batch_size, self.config.state_dim, dtype=dtype, device=ref.device)
                for _ in self.blocks]

    def encode(self, item_ids: Tensor) -> tuple[list[Tensor], Tensor]:
        """Run whole sequences with the scan and return what :meth:`step` continues from.

        Args:
            item_ids: (B, L) long, left-padded with 0 (a 1-D sequence is treated as a batch of one).

        Returns:
            ``(states, hidden_last)``: per-block final states, each (B, N) complex, and the hidden state at
            the last position (B, H) (``scores(hidden_last)`` scores the next item).
        """
        if item_ids.dim() == 1:
            item_ids = item_ids.unsqueeze(0)
        hidden, states = self._run(item_ids)
        return states, hidden[:, -1]

    def step_hidden(self, states: list[Tensor], item_ids: Tensor) -> tuple[list[Tensor], Tensor]:
        """Append one item per sequence: per-block states (B, N), item ids (B,) -> new states, hidden (B, H).

        An id of 0 is padding: the state is not fed (it only decays, and stays 0 before the first item),
        exactly as in the scan.
        """
        if len(states) != len(self.blocks):
            raise ValueError(f"expected {len(self.blocks)} states, got {len(states)}")
        mask = item_ids > 0
        x = self._embed(item_ids)
        new_states = []
        for block, state in zip(self.blocks, states, strict=True):
            x, h = block.step(state, x, mask)
            new_states.append(h)
        return new_states, x

    def step(self, states: list[Tensor], item_ids: Tensor) -> tuple[list[Tensor], Tensor]:
        """Append one item per sequence and score the next: O(H^2) per block plus O(n_items * H) scoring.

        Args:
            states: per-block states, each (B, N) complex (from :meth:`init_state`, :meth:`encode` or a
                previous :meth:`step`).
            item_ids: (B,) long, the new item of each sequence.

        Returns:
            ``(new_states, scores)`` with scores (B, n_items + 1), padding column -inf.
        """
        new_states, hidden = self.step_hidden(states, item_ids)
        return new_states, self.scores(hidden)

    # -- optimiser helper -----------------------------------------------------------------------------------

    def param_groups(self, weight_decay: float) -> list[dict]:
        """AdamW groups as the reference trainer: no weight decay for biases and LayerNorm parameters."""
        decay, no_decay = [], []
        for name, param in self.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            is_bias = leaf in {"bias", "output_bias", "b_re", "b_im", "c"}
            (no_decay if is_bias or "norm" in name else decay).append(param)
        return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
