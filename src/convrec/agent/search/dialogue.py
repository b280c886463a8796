"""A conversation with the agent, turn by turn, and the moves it can make in it.

:class:`AgentDialogue` holds what one conversation with :class:`~convrec.agent.harpo.HarpoAgent` has been so far
(the turns, which of them are logged and which were played, what the agent proposed and asked, and the items it
may never recommend), and plays one :class:`Move` in it. It is copied cheaply, so that a search can play a move
in a copy and look at what follows without touching the real conversation. The simulator's ``HarpoSystem`` and
the search's roll-outs play through the same :meth:`AgentDialogue.play`: one copy of the loop.

The moves of one turn (:meth:`AgentDialogue.moves`):

- ``recommend``: the agent's own slate (the Recommender's proposal after the Critic's review), what the
  greedy agent does once anything is known;
- ``recommend-spread``: another slate from the same ranked candidates, whose items share fewer attribute values
  with one another (each next item the best-ranked one that adds the most values the slate does not hold yet):
  a rejection of a varied slate says more about what the seeker does not want;
- ``ask <attribute>``: a question about one attribute the agent has not asked about (a categorical or person
  attribute, in the schema's order; the value network reads how the belief splits over its values).

The greedy agent asks once, at the start, while nothing is known (``ask_first``), and recommends after; a search
chooses among the moves instead (:mod:`convrec.agent.search.star`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from convrec.agent.harpo import HarpoAgent, HarpoTurn, PrecomputedScores
from convrec.agent.maven import ExplainerAgent, hard_constraints, ruled_out
from convrec.agent.state import AgentState
from convrec.catalog.items import Catalog
from convrec.data.model import ContextView, Turn

MoveKind = Literal["ask", "recommend"]
# how many of the ranked candidates a spread slate is chosen from
SPREAD_POOL = 20


@dataclass(frozen=True)
class Move:
    """One thing the agent can do this turn. ``label``: what the trace and the value network call it."""

    kind: MoveKind
    label: str
    slate: tuple[str, ...] = ()
    attribute: str | None = None

    def describe(self) -> str:
        if self.kind == "ask":
            return f"ask about {self.attribute}"
        return f"{self.label}: {len(self.slate)} items"


@dataclass(frozen=True)
class Reply:
    """What the agent said: its text, its slate (recommending) or the attribute (asking), and its ranking of the
    whole catalogue (higher first, -inf for the items it will not recommend) when it recommends."""

    action: Literal["ask", "recommend", "chat"]
    text: str
    slate: tuple[str, ...] = ()
    ask_about: str | None = None
    scores: np.ndarray | None = None
    reasons: tuple[str, ...] = ()  # the Explainer's reason for each item of the slate


@dataclass
class Options:
    """The turn's greedy answer and the moves it allows (see :meth:`AgentDialogue.moves`)."""

    turn: HarpoTurn  # the agent's greedy answer; when it asks, ``recommending`` is what it would recommend
    recommending: HarpoTurn
    scores: np.ndarray  # the retriever's scores of the whole catalogue for this turn
    moves: tuple[Move, ...]
    greedy: Move

    @property
    def state(self) -> AgentState:
        return self.recommending.state


@dataclass
class AgentDialogue:
    """One conversation with the agent (see the module docstring)."""

    agent: HarpoAgent
    dialogue_id: str
    turns: list[Turn]
    real_turns: int  # the logged context's turns; those after were played
    excluded: set[str] = field(default_factory=set)
    slate_size: int = 5
    proposed: set[str] = field(default_factory=set)
    last_slate: tuple[str, ...] = ()
    asked: tuple[str, ...] = ()  # attributes asked about in the played turns
    played: int = 0  # system turns played
    marks: tuple[tuple[str, str], ...] = ()  # the seeker's explicit marks (a chat's /like, /dislike, /seen)

    @classmethod
    def start(cls, agent: HarpoAgent, dialogue_id: str, context: Sequence[Turn], exclude: Iterable[str] = (),
              slate_size: int = 5) -> AgentDialogue:
        return cls(agent, dialogue_id, list(context), len(context), set(exclude), slate_size)

    def copy(self) -> AgentDialogue:
        """A copy to play ahead in: its own turns and sets, the same agent."""
        return replace(self, turns=list(self.turns), excluded=set(self.excluded), proposed=set(self.proposed))

    def hear(self, text: str) -> None:
        """The seeker's message."""
        self.turns.append(Turn("seeker", text))

    def view(self) -> ContextView:
        return ContextView(self.dialogue_id, tuple(self.turns))

    def retriever_view(self) -> ContextView:
        """The dialogue without the items of the agent's own played turns (the seeker has not endorsed them)."""
        played = [Turn(t.role, t.text) for t in self.turns[self.real_turns:]]
        return ContextView(self.dialogue_id, (*self.turns[: self.real_turns], *played))

    def _respond(self, scores: np.ndarray, ask_first: bool) -> HarpoTurn:
        agent = self.agent
        options = agent.ctx.options.model_copy(update={"slate": self.slate_size, "ask_first": ask_first})
        ctx = replace(agent.ctx, retriever=PrecomputedScores(agent.ctx.retriever, scores), options=options)
        return agent.respond(self.view(), self.marks, scores=scores, last_proposed=self.last_slate, ctx=ctx)

    def options(self, spread: bool = True, asks: int = 2) -> Options:
        """The greedy answer and the moves of this turn: ``spread``, a varied slate too; ``asks``, questions
        about at most this many attributes not asked yet (0 with ``spread`` off: the greedy move alone, and
        when it asks, no second answer to see what it would recommend)."""
        retriever = self.agent.ctx.retriever
        scores = np.asarray(retriever.score([self.retriever_view()])[0], dtype=np.float64)
        ask_first = self.agent.ctx.options.ask_first and not self.asked
        turn = self._respond(scores, ask_first)
        if turn.action.action == "ask" and not spread and not asks:
            attribute = turn.action.ask_about or "genre"
            move = Move("ask", f"ask {attribute}", attribute=attribute)
            return Options(turn, turn, scores, (move,), move)
        recommending = turn if turn.action.action != "ask" else self._respond(scores, False)
        slate = self._allowed(recommending.slate, recommending)
        moves: list[Move] = [Move("recommend", "recommend", slate)]
        if spread:
            varied = self._allowed(self.spread_slate(recommending), recommending)
            if varied and set(varied) != set(slate):
                moves.append(Move("recommend", "recommend-spread", varied))
        askable = self.askable()
        if turn.action.action == "ask" and turn.action.ask_about:
            askable = [turn.action.ask_about, *(a for a in askable if a != turn.action.ask_about)]
        if turn.action.action == "ask":
            asks = max(asks, 1)  # the greedy move is among the moves
        moves += [Move("ask", f"ask {a}", attribute=a) for a in askable[:asks]]
        greedy = moves[0] if turn.action.action != "ask" else next(m for m in moves if m.kind == "ask")
        return Options(turn, recommending, scores, tuple(moves), greedy)

    def askable(self) -> list[str]:
        """Categorical and person attributes not asked about yet, in the schema's order."""
        done = set(self.asked)
        return [a.name for a in self.agent.ctx.adapter.attributes
                if a.kind in ("categorical", "person") and not a.derived and a.name not in done]

    def never(self, turn: HarpoTurn) -> set[str]:
        return self.excluded | self.proposed | set(ruled_out(turn.state, self.agent.ctx.options))

    def _allowed(self, slate: Sequence[str], turn: HarpoTurn) -> tuple[str, ...]:
        never = self.never(turn)
        return tuple(i for i in slate if i not in never)

    def spread_slate(self, turn: HarpoTurn) -> tuple[str, ...]:
        """A varied slate from the ranked candidates (see the module docstring)."""
        adapter = self.agent.ctx.adapter
        removed = {item_id for item_id, _ in turn.removed}
        never = self.never(turn) | known_before(turn)
        pool = [i for i in dict.fromkeys((*turn.slate, *turn.proposed, *turn.candidates))
                if i not in removed and i not in never]
        if not pool:
            return ()
        pool = pool[:SPREAD_POOL]
        values = {i: {(f.attribute, str(f.value).lower()) for f in adapter.facts(i)
                      if f.kind in ("categorical", "person")} for i in pool}
        chosen = [pool[0]]
        held = set(values[pool[0]])
        while len(chosen) < min(self.slate_size, len(pool)):
            rest = [i for i in pool if i not in chosen]
            # new values added, then the ranking (earlier first): max() keeps the first of equals
            best = max(rest, key=lambda i: len(values[i] - held))
            chosen.append(best)
            held |= values[best]
        return tuple(chosen)

    def play(self, move: Move, options: Options) -> Reply:
        """Say ``move`` (one of ``options.moves``) and remember it."""
        self.played += 1
        agent = self.agent
        if move.kind == "ask":
            assert move.attribute is not None
            text = ExplainerAgent(agent.ctx).ask(move.attribute)
            self.asked = (*self.asked, move.attribute)
            self.turns.append(Turn("recommender", text))
            return Reply("ask", text, ask_about=move.attribute)
        turn = options.recommending
        slate = tuple(move.slate)
        if move.label == "recommend":
            text, reasons = turn.reply, turn.reasons
        else:
            explained = ExplainerAgent(agent.ctx).reply(self.view(), slate, turn.state, None, turn.relaxed)
            text, reasons = explained.text, explained.reasons
        ranking = self.ranking(move, options)  # before the slate joins what was proposed (and is never again)
        self.proposed.update(slate)
        self.last_slate = slate
        self.turns.append(Turn("recommender", text, slate))
        return Reply("recommend" if slate else "chat", text, slate, scores=ranking,
                     reasons=tuple(r.text for r in reasons))

    def ranking(self, move: Move, options: Options) -> np.ndarray:
        """The slate first, in its order, then the rest of the agent's draft, then the retriever's order;
        never what is ruled out or was proposed before (the slate's own items aside)."""
        catalog = self.agent.ctx.adapter.catalog
        turn = options.recommending
        removed = {item_id for item_id, _ in turn.removed}
        ranked = list(dict.fromkeys((*move.slate, *(i for i in turn.proposed if i not in removed))))
        out = masked_scores(catalog, options.scores, self.never(turn))
        finite = np.isfinite(out)
        top = out[finite].max() if finite.any() else 0.0
        listed = [i for i in catalog.indices(ranked) if finite[i]]
        out[listed] = top + 1.0 + np.arange(len(listed), 0, -1)
        return out


def masked_scores(catalog: Catalog, scores: np.ndarray, excluded: Iterable[str]) -> np.ndarray:
    """A float64 copy of ``scores``, NaN and the ``excluded`` items at -inf (ranked last, never recommended)."""
    out = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf, copy=True)
    out[catalog.indices(set(excluded))] = -np.inf
    return out


def known_before(turn: HarpoTurn) -> set[str]:
    """The items the seeker knows before ``turn``: its state counts its own slate as recommended already."""
    return set(turn.state.known) - set(turn.slate)


def belief(dialogue: AgentDialogue, options: Options, top: int = 200) -> tuple[list[str], np.ndarray]:
    """The agent's belief over what the seeker wants: a softmax of the retriever's scores over the ``top`` items
    it may still recommend (not ruled out, not known, holding the hard constraints). Ids and probabilities."""
    agent = dialogue.agent
    adapter = agent.ctx.adapter
    state = options.state
    blocked = dialogue.never(options.recommending) | known_before(options.recommending)
    scores = masked_scores(adapter.catalog, options.scores, blocked)
    for constraint in hard_constraints(state, agent.ctx.options):
        satisfied, known = adapter.mask(constraint)
        scores[known & ~satisfied] = -np.inf
    finite = np.flatnonzero(np.isfinite(scores))
    if finite.size == 0:
        return [], np.zeros(0)
    order = finite[np.argsort(-scores[finite], kind="stable")][:top]
    logits = scores[order] - scores[order].max()
    probability = np.exp(logits)
    probability /= probability.sum()
    ids = [adapter.catalog.items[i].item_id for i in order]
    return ids, probability
