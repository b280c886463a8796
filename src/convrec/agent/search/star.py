"""STAR: the agent chooses its move by looking ahead, with a value network or with simulated users.

Each turn the dialogue offers a few moves (:meth:`~convrec.agent.search.dialogue.AgentDialogue.options`: the
agent's own slate, a varied slate, questions about attributes not asked yet). :class:`StarSearch` picks one:

- ``value``: the move the :class:`~convrec.agent.search.value.ValueNetwork` values most (its expected discounted
  return: success within the horizon, sooner worth more; one step, no simulation: a few milliseconds beyond the
  moves themselves);
- ``rollout``: a tree of width ``width`` (the best moves by the network, or the first ones without it) and depth
  ``depth``: each move is played in copies of the dialogue, each copy against a simulated user whose goal is an
  item drawn from the agent's **belief** (:func:`~convrec.agent.search.dialogue.belief`), never the episode's
  hidden target; after the move the agent plays greedily. A copy that ends in acceptance at its n-th turn is worth
  ``discount ** (n - 1)``, one still going at the depth is worth ``discount ** depth`` times the network's value
  of its next greedy move (0 without a network or past the horizon). The same drawn goals play every move (paired: the comparison is not left to the draw). The move
  of the highest mean wins; the greedy move wins ties.

Who plays the simulated user is given from outside (a :data:`RolloutUsers` factory; the simulator's rule user in
``convrec simulate`` and the chat): the agent does not import the simulator. :class:`SearchTrace` records the tree:
every move, its value, its roll-outs (the drawn item, the turn it was accepted or the leaf's value) and why the
chosen one won; the chat's ``/trace`` and the simulator's transcripts show it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict

from convrec.agent.search.dialogue import AgentDialogue, Move, Options, Reply, belief
from convrec.agent.search.options import SearchOptions
from convrec.agent.search.value import VALUE, ValueNetwork, move_features


class RolloutUser(Protocol):
    """A simulated user inside a roll-out: answers the agent's reply; says whether it accepted its goal."""

    def answer(self, dialogue: AgentDialogue, reply: Reply) -> tuple[str, bool]: ...


# (the item the simulated user wants, the dialogue it joins) -> the user
RolloutUsers = Callable[[str, AgentDialogue], RolloutUser]


class Leaf(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    goal: str  # the item the simulated user wanted
    accepted_turn: int | None = None  # turns after the move (1: the move itself)
    value: float  # discount ** (turn - 1) on acceptance, else the discounted value of the leaf


class Node(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    move: str
    kind: str
    slate: tuple[str, ...] = ()
    attribute: str | None = None
    accept_now: float | None = None  # the network's outputs (None without it)
    success: float | None = None
    value: float | None = None  # the expected discounted return
    rollout_value: float | None = None  # the mean of the leaves
    leaves: tuple[Leaf, ...] = ()
    chosen: bool = False


class SearchTrace(BaseModel):
    """The searched tree of one turn (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str
    greedy: str
    chosen: str
    reason: str
    belief: tuple[tuple[str, float], ...]  # the belief's top five items
    nodes: tuple[Node, ...]
    seconds: float

    def render(self, title: Callable[[str], str] = str) -> str:
        """The tree as text (the chat's ``/trace``)."""
        lines = [f"search ({self.kind}): {self.reason}",
                 "belief: " + ", ".join(f"{title(i)} {p:.2f}" for i, p in self.belief)]
        for node in self.nodes:
            mark = "*" if node.chosen else " "
            scores = []
            if node.value is not None:
                scores.append(f"value {node.value:.3f} (P(success) {node.success:.3f}, P(accept now) "
                              f"{node.accept_now:.3f})")
            if node.rollout_value is not None:
                hits = sum(1 for leaf in node.leaves if leaf.accepted_turn is not None)
                scores.append(f"roll-outs {node.rollout_value:.3f} ({hits}/{len(node.leaves)} accepted)")
            lines.append(f"{mark} {node.move}" + (f": {'; '.join(scores)}" if scores else ""))
            if node.slate:
                lines.append("    slate: " + ", ".join(title(i) for i in node.slate))
            for leaf in node.leaves:
                end = (f"accepted at turn {leaf.accepted_turn}" if leaf.accepted_turn is not None
                       else f"leaf value {leaf.value:.3f}")
                lines.append(f"    wants {title(leaf.goal)}: {end}")
        return "\n".join(lines)


class StarSearch:
    """Chooses the move of each turn (see the module docstring)."""

    def __init__(self, options: SearchOptions, value: ValueNetwork | None = None,
                 users: RolloutUsers | None = None):
        if options.kind == "value" and value is None:
            raise ValueError("search kind 'value' needs a value network")
        if options.kind == "rollout" and users is None:
            raise ValueError("search kind 'rollout' needs simulated users")
        self.options = options
        self.value = value
        self.users = users

    @classmethod
    def build(cls, options: SearchOptions, users: RolloutUsers | None = None) -> StarSearch | None:
        """The search of ``options`` (None for greedy), its value network loaded from its run dir."""
        if options.kind == "greedy":
            return None
        value = ValueNetwork.load(options.value_network) if options.value_network else None
        return cls(options, value, users)

    def choose(self, dialogue: AgentDialogue) -> tuple[Options, Move, SearchTrace]:
        started = time.perf_counter()
        o = self.options
        options = dialogue.options(spread=o.spread, asks=o.asks)
        ids, probabilities = belief(dialogue, options, o.belief_top)
        moves = list(options.moves)
        predicted: dict[str, np.ndarray] = {}
        if self.value is not None:
            rows = np.stack([move_features(dialogue, options, m, ids, probabilities, o.horizon) for m in moves])
            predicted = dict(zip((m.label for m in moves), self.value.predict(rows), strict=True))
        leaves: dict[str, list[Leaf]] = {}
        if o.kind == "rollout":
            searched = sorted(moves, key=lambda m: -predicted[m.label][VALUE]) if predicted else moves
            searched = searched[: o.width]
            if options.greedy not in searched:
                searched[-1] = options.greedy
            goals = self._draw(dialogue, ids, probabilities)
            for move in searched:
                leaves[move.label] = [self._rollout(dialogue, options, move, goal) for goal in goals]
        chosen, reason = self._pick(options, moves, predicted, leaves)
        nodes = tuple(Node(move=m.label, kind=m.kind, slate=m.slate, attribute=m.attribute,
                           accept_now=float(predicted[m.label][0]) if predicted else None,
                           success=float(predicted[m.label][1]) if predicted else None,
                           value=float(predicted[m.label][VALUE]) if predicted else None,
                           rollout_value=(float(np.mean([x.value for x in leaves[m.label]]))
                                          if m.label in leaves else None),
                           leaves=tuple(leaves.get(m.label, ())), chosen=m is chosen) for m in moves)
        trace = SearchTrace(kind=o.kind, greedy=options.greedy.label, chosen=chosen.label, reason=reason,
                            belief=tuple((i, round(float(p), 4)) for i, p in zip(ids[:5], probabilities[:5],
                                                                                    strict=False)),
                            nodes=nodes, seconds=round(time.perf_counter() - started, 4))
        return options, chosen, trace

    def _pick(self, options: Options, moves: list[Move], predicted: dict[str, np.ndarray],
              leaves: dict[str, list[Leaf]]) -> tuple[Move, str]:
        greedy = options.greedy
        if leaves:
            score = {label: float(np.mean([x.value for x in found])) for label, found in leaves.items()}
            what = "roll-out mean"
        else:
            score = {m.label: float(predicted[m.label][VALUE]) for m in moves}
            what = "value"
        best = max(score.values())
        if score.get(greedy.label, -1.0) >= best:
            return greedy, f"the greedy move {greedy.label!r} is best ({what} {best:.3f})"
        chosen = next(m for m in moves if m.label in score and score[m.label] == best)
        return chosen, (f"{chosen.label!r} ({what} {best:.3f}) beats the greedy {greedy.label!r} "
                        f"({score.get(greedy.label, float('nan')):.3f})")

    def _draw(self, dialogue: AgentDialogue, ids: list[str], probabilities: np.ndarray) -> list[str]:
        if not ids:
            return []
        rng = np.random.default_rng(random.Random(f"{self.options.seed}:{dialogue.dialogue_id}:"
                                                  f"{dialogue.played}:{len(dialogue.turns)}").getrandbits(63))
        picked = rng.choice(len(ids), size=self.options.rollouts, replace=True, p=probabilities)
        return [ids[k] for k in picked]

    def _rollout(self, dialogue: AgentDialogue, options: Options, move: Move, goal: str) -> Leaf:
        """Play ``move`` in a copy of ``dialogue`` against a user who wants ``goal``, then greedily."""
        assert self.users is not None
        o = self.options
        copy = dialogue.copy()
        user = self.users(goal, copy)
        reply = copy.play(move, options)
        for step in range(1, o.depth + 1):
            text, accepted = user.answer(copy, reply)
            if accepted:
                return Leaf(goal=goal, accepted_turn=step, value=o.discount ** (step - 1))
            if copy.played >= o.horizon:
                return Leaf(goal=goal, value=0.0)
            copy.hear(text)
            following = copy.options(spread=False, asks=0)
            if step == o.depth:
                return Leaf(goal=goal, value=o.discount ** step * self._leaf_value(copy, following))
            reply = copy.play(following.greedy, following)
        return Leaf(goal=goal, value=0.0)  # pragma: no cover - the loop always returns

    def _leaf_value(self, dialogue: AgentDialogue, options: Options) -> float:
        if self.value is None:
            return 0.0
        ids, probabilities = belief(dialogue, options, self.options.belief_top)
        row = move_features(dialogue, options, options.greedy, ids, probabilities, self.options.horizon)
        return float(self.value.predict(row[None, :])[0, VALUE])
