"""The system side of a simulated conversation: one small interface that every recommender fits.

Why not drive :meth:`convrec.serve.engine.Engine.turn` directly, as the architecture sketch suggests? The
protocol starts each episode from a real dialogue's context (iEvaLM's setting) and measures the system's
ranking of the target at every turn; ``Engine.turn`` starts from a user message, re-links titles in it (the
logged context's items are already linked), and shows only its top few items. A ranking recommender has no
chat engine at all, and the issue asks for every registered recommender. So a :class:`System` opens a
:class:`Conversation` on the logged context, and the conversation answers each
:class:`~convrec.simulate.turns.UserTurn` with a :class:`~convrec.simulate.turns.SystemTurn`. Three adapters
fit it:

- :class:`RankingSystem`, any registered recommender (``rar`` keeps its LLM stage): it recommends its top
  ``slate`` items every turn, never one it recommended before in the episode (the user turned them down) nor
  one of ``exclude``. Its context is the dialogue so far (the simulated turns appended to the real context)
  as the same :class:`~convrec.data.model.ContextView` offline evaluation gives it; the items of its own
  simulated turns are left out of that view (the user has not endorsed them; the chat engine does the same).
  Its first turn therefore scores exactly the offline sample. Its reply is the chat's template
  (:class:`~convrec.rerank.reply.ReplyWriter`);
- :class:`HarpoSystem`, the HARPO agent (:class:`~convrec.agent.harpo.HarpoAgent`): it reads the whole dialogue
  (a rejection of its previous slate included), asks about an attribute once while nothing is known, or
  recommends its critiqued slate; its ranking for Recall@k is its slate, then the rest of its draft, then the
  retriever's order, without what it ruled out or proposed before;
- :class:`EngineSystem`, the chat's :class:`~convrec.serve.engine.Engine` (and ``AgentEngine``): the same
  ``turn`` a person's message goes through, on a session whose turns are the logged context (the first turn
  answers an empty message); a rejection marks the slate disliked, as ``/dislike`` would. It shows its top 10
  (the slate is their first ``slate``), so its Recall@k counts that list.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence

import numpy as np

from convrec.agent.harpo import HarpoAgent
from convrec.agent.search.dialogue import AgentDialogue, masked_scores
from convrec.agent.search.star import StarSearch
from convrec.catalog.items import Catalog
from convrec.catalog.vocabulary import domain_for
from convrec.data.model import ContextView, Turn
from convrec.rerank.prompts import PromptOptions
from convrec.rerank.reply import ReplyOptions, ReplyWriter
from convrec.retrieval.base import Recommender, top_indices
from convrec.serve.engine import Engine
from convrec.serve.state import SessionState
from convrec.simulate.turns import SystemTurn, UserTurn

LIST_SIZE = 10  # the list a slate-only system shows, so that Recall@10 means the same for every system


class Conversation(ABC):
    """The system side of one episode."""

    @abstractmethod
    def respond(self, user: UserTurn | None) -> SystemTurn:
        """The system's turn after ``user`` (None: the first turn, right after the logged context)."""


class System(ABC):
    """Opens one :class:`Conversation` per episode; shared by all of them (and threads), so it holds no
    episode's state."""

    name: str

    @abstractmethod
    def start(self, dialogue_id: str, context: Sequence[Turn], exclude: Iterable[str] = ()) -> Conversation:
        """A conversation that continues the logged ``context``; ``exclude``: items it may never recommend."""

    def describe(self) -> dict:
        return {"system": type(self).__name__}


def _without_items(turn: Turn) -> Turn:
    return Turn(turn.role, turn.text)


class RankingSystem(System):
    """A fitted ranking recommender as a conversational system (see the module docstring)."""

    def __init__(self, recommender: Recommender, slate: int = 5, dataset_name: str | None = None):
        self.recommender = recommender
        self.catalog = recommender.catalog
        self.slate = slate
        self.name = recommender.name
        domain = domain_for(dataset_name or self.catalog.name, self.catalog)
        self.writer = ReplyWriter(self.catalog, None, ReplyOptions(n_items=slate, prompt=PromptOptions(domain=domain)))

    def start(self, dialogue_id: str, context: Sequence[Turn], exclude: Iterable[str] = ()) -> Conversation:
        return _RankingConversation(self, dialogue_id, context, exclude)

    def describe(self) -> dict:
        return {"system": "ranking", "slate": self.slate, "recommender": self.recommender.describe()}


class _RankingConversation(Conversation):
    def __init__(self, system: RankingSystem, dialogue_id: str, context: Sequence[Turn], exclude: Iterable[str]):
        self.system = system
        self.dialogue_id = dialogue_id
        self.view_turns = list(context)  # what the recommender reads: its own simulated turns without items
        self.excluded = set(exclude)

    def respond(self, user: UserTurn | None) -> SystemTurn:
        system, catalog = self.system, self.system.catalog
        if user is not None:
            self.view_turns.append(Turn("seeker", user.text))
        view = ContextView(self.dialogue_id, tuple(self.view_turns))
        scores = masked_scores(catalog, system.recommender.score([view])[0], self.excluded)
        top = top_indices(scores, system.slate, np.flatnonzero(np.isneginf(scores)))
        slate = tuple(catalog.id_at(int(i)) for i in top)
        text = system.writer.write(view, slate).text if slate else "Sorry, I have nothing more to suggest."
        self.excluded.update(slate)
        self.view_turns.append(Turn("recommender", text))
        return SystemTurn("recommend" if slate else "chat", text, slate, scores=scores)


class HarpoSystem(System):
    """The HARPO agent as a conversational system (see the module docstring); with ``search``, STAR chooses each
    move (:mod:`convrec.agent.search.star`) and the turn carries the searched tree."""

    name = "harpo"

    def __init__(self, agent: HarpoAgent, slate: int = 5, search: StarSearch | None = None):
        self.agent = agent
        self.catalog = agent.ctx.adapter.catalog
        self.slate = slate
        self.search = search

    def start(self, dialogue_id: str, context: Sequence[Turn], exclude: Iterable[str] = ()) -> Conversation:
        return _HarpoConversation(self, dialogue_id, context, exclude)

    def describe(self) -> dict:
        return {"system": "agent", "slate": self.slate, "options": self.agent.ctx.options.model_dump(mode="json"),
                "retriever": self.agent.ctx.retriever.describe()}


class _HarpoConversation(Conversation):
    def __init__(self, system: HarpoSystem, dialogue_id: str, context: Sequence[Turn], exclude: Iterable[str]):
        self.system = system
        self.dialogue = AgentDialogue.start(system.agent, dialogue_id, context, exclude, system.slate)

    def respond(self, user: UserTurn | None) -> SystemTurn:
        if user is not None:
            self.dialogue.hear(user.text)
        search = None
        if self.system.search is None:
            options = self.dialogue.options(spread=False, asks=0)
            move = options.greedy
        else:
            options, move, trace = self.system.search.choose(self.dialogue)
            search = trace.model_dump(mode="json")
        reply = self.dialogue.play(move, options)
        return SystemTurn(reply.action, reply.text, reply.slate, ask_about=reply.ask_about, scores=reply.scores,
                          search=search)


class EngineSystem(System):
    """The chat's engine as a conversational system (see the module docstring)."""

    def __init__(self, engine: Engine, slate: int = 5):
        self.engine = engine
        self.slate = slate
        self.name = f"chat:{engine.retriever.name}"
        options = engine.options
        self.options = options.model_copy(update={"top": max(slate, LIST_SIZE), "k": max(options.k, slate, LIST_SIZE)})

    def start(self, dialogue_id: str, context: Sequence[Turn], exclude: Iterable[str] = ()) -> Conversation:
        return _EngineConversation(self, context, exclude)

    def describe(self) -> dict:
        config = self.engine.config
        return {"system": "chat", "slate": self.slate, "session": self.options.model_dump(mode="json"),
                "chat": config.model_dump(mode="json") if hasattr(config, "model_dump") else None}


class _EngineConversation(Conversation):
    def __init__(self, system: EngineSystem, context: Sequence[Turn], exclude: Iterable[str]):
        self.system = system
        self.state: SessionState = system.engine.new_state(system.options).model_copy(update={"turns": tuple(context)})
        self.excluded = set(exclude)
        self.slate: tuple[str, ...] = ()

    def respond(self, user: UserTurn | None) -> SystemTurn:
        engine = self.system.engine
        if user is not None and user.act == "reject":  # what a person does with /dislike N
            for number in range(1, len(self.slate) + 1):
                self.state, _ = engine.feedback(self.state, number, "dislike")
        self.state, record = engine.turn(self.state, "" if user is None else user.text)
        shown = [r.item_id for r in record.recommendations if r.item_id not in self.excluded]
        self.slate = tuple(shown[: self.system.slate])
        return SystemTurn("recommend" if self.slate else "chat", record.reply.text, self.slate,
                          scores=_list_scores(engine.catalog, shown))


def _list_scores(catalog: Catalog, shown: Sequence[str]) -> np.ndarray:
    """A shown list as a ranking: its items in order, every other item tied last (-inf: never shown)."""
    scores = np.full(len(catalog), -np.inf)
    scores[catalog.indices(shown)] = np.arange(len(shown), 0, -1, dtype=np.float64)
    return scores
