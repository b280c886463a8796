"""STAR's value network: how likely a conversation ends in success after one move.

:func:`move_features` describes a state and a move in a few numbers that mean the same in every domain: where
the conversation is (turns played and left), what the agent knows (constraints, rejections, liked items, the
questions asked), how sure its belief is (:func:`~convrec.agent.search.dialogue.belief`: the probability of its
top item, the mass of its top five, its entropy, how many items it still allows), and what the move does (the
belief's mass on the slate; for a question, how much the belief is split over the attribute's values, and how
much of it the attribute describes at all).

:class:`ValueNetwork`, a small MLP over those features with three outputs: the probability that the user accepts
the move's slate now (``accept_now``), that the conversation succeeds within the horizon when the agent plays
greedily after the move (``success``), and the discounted **return**, ``discount ** (turns to success - 1)`` on
success and 0 otherwise (the expected value of a soft label): a success sooner is worth more, so a question
must buy more than the turn it costs. The search ranks moves by the return. It learns from simulated
conversations on the **validation** split (``python -m convrec.simulate.star``): every move of a turn is played
from the same state, and the conversation after it, with the episode's user, so each state gives one example per
move. Never from test.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from convrec.agent.search.dialogue import AgentDialogue, Move, Options
from convrec.errors import ConfigError
from convrec.io import atomic_write, write_json

FEATURES = (
    "turns_played", "turns_left", "ask", "spread",
    "belief_top1", "belief_top5", "belief_entropy", "log_allowed",
    "slate_mass", "slate_size",
    "ask_value_entropy", "ask_known_mass",
    "constraints", "rejected", "liked", "asked", "has_signal",
)
OUTPUTS = ("accept_now", "success", "return")
VALUE = OUTPUTS.index("return")  # what the search ranks moves by
VALUE_FILE = "value_network.pt"
# the belief items a question's value split is measured over (facts of each are read: keep it small)
ASK_POOL = 50


def move_features(dialogue: AgentDialogue, options: Options, move: Move, ids: Sequence[str],
                  probabilities: np.ndarray, horizon: int) -> np.ndarray:
    """The features of ``move`` in ``dialogue`` (see the module docstring), in :data:`FEATURES`' order."""
    state = options.state
    p = np.asarray(probabilities, dtype=np.float64)
    n = len(ids)
    entropy = float(-(p * np.log(np.clip(p, 1e-12, 1))).sum() / math.log(n)) if n > 1 else 0.0
    where = {item_id: k for k, item_id in enumerate(ids)}
    slate_mass = float(sum(p[where[i]] for i in move.slate if i in where))
    value_entropy, known_mass = 0.0, 0.0
    if move.kind == "ask" and move.attribute is not None:
        value_entropy, known_mass = _split(dialogue, move.attribute, ids[:ASK_POOL], p[:ASK_POOL])
    constraints = len(state.constraints.constraints)
    row = [
        dialogue.played, max(horizon - dialogue.played, 0), float(move.kind == "ask"),
        float(move.label == "recommend-spread"),
        float(p[0]) if n else 0.0, float(p[:5].sum()) if n else 0.0, entropy, math.log1p(n),
        slate_mass, len(move.slate),
        value_entropy, known_mass,
        constraints, len(state.rejected), len(state.liked), len(dialogue.asked), float(state.has_signal),
    ]
    return np.asarray(row, dtype=np.float32)


def _split(dialogue: AgentDialogue, attribute: str, ids: Sequence[str], p: np.ndarray) -> tuple[float, float]:
    """How the belief's mass spreads over ``attribute``'s values (entropy in nats, an item's mass shared among its
    values) and how much of it falls on items with any value of it."""
    adapter = dialogue.agent.ctx.adapter
    fields = set(adapter.attribute(attribute).fields)
    mass: dict[str, float] = {}
    known = 0.0
    for item_id, weight in zip(ids, p, strict=False):
        values = {str(f.value).lower() for f in adapter.facts(item_id)
                  if f.attribute == attribute or (f.kind == "person" and f.attribute in fields)}
        if not values:
            continue
        known += weight
        for value in values:
            mass[value] = mass.get(value, 0.0) + weight / len(values)
    if not mass:
        return 0.0, 0.0
    share = np.asarray(list(mass.values()))
    share = share / share.sum()
    return float(-(share * np.log(share)).sum()), float(known / max(p.sum(), 1e-12))


class ValueNetwork(nn.Module):
    """Features (standardised) -> logits of :data:`OUTPUTS`."""

    def __init__(self, n_features: int = len(FEATURES), hidden: int = 32):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))
        self.body = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                  nn.Linear(hidden, len(OUTPUTS)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body((x - self.mean) / self.std)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """P(accept now), P(success), the expected return, per row of ``features`` (n, len(FEATURES))."""
        with torch.no_grad():
            logits = self(torch.as_tensor(np.atleast_2d(features), dtype=torch.float32))
        return torch.sigmoid(logits).numpy()

    def save(self, run_dir: Path, extra: dict[str, Any]) -> None:
        with atomic_write(run_dir / VALUE_FILE, "wb", encoding=None) as handle:
            torch.save({"state": self.state_dict(), "features": list(FEATURES), "outputs": list(OUTPUTS),
                        "hidden": self.body[0].out_features}, handle)
        write_json(run_dir / "value_network.json", {"features": list(FEATURES), "outputs": list(OUTPUTS), **extra})

    @classmethod
    def load(cls, run_dir: str | Path) -> ValueNetwork:
        path = Path(run_dir) / VALUE_FILE
        if not path.is_file():
            raise ConfigError(f"{run_dir}: no trained value network ({VALUE_FILE}); train one with: python -m "
                              f"convrec.simulate.star --dataset <name> --out {run_dir}")
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if tuple(saved["features"]) != FEATURES or tuple(saved.get("outputs", ())) != OUTPUTS:
            raise ConfigError(f"{path}: made for other features or outputs than this version's; train it again")
        model = cls(len(FEATURES), int(saved["hidden"]))
        model.load_state_dict(saved["state"])
        model.eval()
        return model


def fit_value_network(features: np.ndarray, labels: np.ndarray, *, hidden: int = 32, epochs: int = 200,
                      learning_rate: float = 3e-3, weight_decay: float = 1e-4, seed: int = 0) -> ValueNetwork:
    """Full-batch Adam on the binary cross-entropy of every output (``labels``: (n, len(OUTPUTS)) in [0, 1])."""
    torch.manual_seed(seed)
    x = torch.as_tensor(features, dtype=torch.float32)
    y = torch.as_tensor(labels, dtype=torch.float32)
    model = ValueNetwork(x.shape[1], hidden)
    model.mean.copy_(x.mean(0))
    model.std.copy_(x.std(0).clamp_min(1e-3))
    optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate, weight_decay=weight_decay)
    loss = nn.BCEWithLogitsLoss()
    model.train()
    for _ in range(epochs):
        optimiser.zero_grad()
        value = loss(model(x), y)
        value.backward()
        optimiser.step()
    model.eval()
    return model
