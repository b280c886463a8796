"""The HARPO agent behind the chat's engine interface: :class:`AgentEngine`.

The same operations as :class:`~convrec.serve.engine.Engine` (``new_state``, ``turn``, ``reset``, ``why``,
``feedback``) on the same :class:`~convrec.serve.state.SessionState`, so ``convrec chat --agent harpo`` and,
later, the HTTP API drive it unchanged. Per user message the titles are linked as in the two-stage engine,
then :class:`~convrec.agent.harpo.HarpoAgent` reads the whole dialogue into its state (explicit ``/like``,
``/dislike`` and ``/seen`` marks included), reads a rejection of its previous slate, and either asks about an
attribute (once per conversation, while nothing is known), answers a "why?" about its previous slate (action
``explain``: the reasons of the items asked about, the slate shown again unchanged), or recommends a critiqued
slate with a reason for each item. The agent state is not stored: it is derived from the dialogue and the marks every turn (a few ms), so
a saved session needs nothing new to continue. The turn record carries the VTO calls, the Critic's edits and
the reasons, for ``/trace`` and ``/why``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from convrec.agent.config import HarpoOptions
from convrec.agent.domain import DomainAdapter
from convrec.agent.harpo import HarpoAgent, HarpoTurn, PrecomputedScores
from convrec.agent.search.dialogue import AgentDialogue
from convrec.agent.search.star import RolloutUsers, StarSearch
from convrec.agent.why import asked_why
from convrec.catalog.items import Catalog
from convrec.catalog.mentions import find_titles
from convrec.data.dataset import Split
from convrec.data.model import ContextView, Turn
from convrec.errors import ConfigError
from convrec.llm.types import LLM
from convrec.rerank.reply import Reason, Reply, ReplyWriter
from convrec.serve.engine import Engine, Why, _nth
from convrec.serve.state import Recommendation, SessionOptions, SessionState, TurnRecord, TurnTiming
from convrec.trace import Stage, TraceRecord, brief_list

MAX_MESSAGE_CHARS = 4000  # longer messages are cut: linking titles in 100 KB takes seconds


class AgentEngine(Engine):
    """Answers conversations with the HARPO agent (see the module docstring)."""

    def __init__(self, catalog: Catalog, agent: HarpoAgent, writer: ReplyWriter, options: SessionOptions | None = None,
                 popularity: dict[str, float] | None = None, config: object = None, search: StarSearch | None = None):
        """``search``: STAR, choosing each turn's move (None: the greedy agent)."""
        super().__init__(catalog, agent.ctx.retriever, writer, None, options, popularity, config)
        self.agent = agent
        self.search = search

    def turn(self, state: SessionState, message: str) -> tuple[SessionState, TurnRecord]:
        started = time.monotonic()
        note = None
        if len(message) > MAX_MESSAGE_CHARS:
            message, note = message[:MAX_MESSAGE_CHARS], f"message cut to its first {MAX_MESSAGE_CHARS:,} characters"
        mentions = tuple(find_titles(message, self.linker, self.popularity, not_titles=self.vocabulary.not_titles))
        linked_s = time.monotonic() - started
        turns = (*state.turns, Turn("seeker", message.strip(), tuple(m.item_id for m in mentions)))
        last = tuple(r.item_id for r in state.last.recommendations) if state.last else ()
        # a "why?" about the last slate is answered, not searched: STAR chooses between moves that change it
        if self.search is not None and not asked_why(message, last, self.catalog):
            return self._searched_turn(state, message, mentions, turns, note, started, linked_s)
        view = ContextView(f"chat-{state.conversation}", turns)
        scores = np.asarray(self.retriever.score([view])[0], dtype=np.float64)
        retrieval_s = time.monotonic() - started - linked_s
        asked = any(r.action == "ask" for r in state.history if r.conversation == state.conversation)
        options: HarpoOptions = self.agent.ctx.options.model_copy(update={
            "slate": state.options.top, "ask_first": self.agent.ctx.options.ask_first and not asked})
        ctx = replace(self.agent.ctx, retriever=PrecomputedScores(self.retriever, scores), options=options)
        answer = self.agent.respond(view, _marks(state), scores=scores, last_proposed=last, ctx=ctx)
        recommendations = _recommendations(self.catalog, answer, scores)
        # who wrote the reply (the Explainer's template, or its LLM rewrite) and why a rewrite was not kept, where
        # the two-stage engine records its own polish
        reply = Reply(answer.reply, answer.slate, Reason("none", answer.reasons[0].text if answer.reasons else ""),
                      source=answer.explainer_source, rejected=answer.explainer_rejected,
                      rejection=answer.explainer_refusal)
        total_s = time.monotonic() - started
        number = state.turns_in_conversation + 1
        record = TurnRecord(
            conversation=state.conversation, number=number, user_text=message, mentions=mentions,
            context_items=view.context_items, n_candidates=options.candidates, recommendations=recommendations,
            reply=reply, timing=TurnTiming(retrieval_s * 1000, 0.0, total_s - linked_s - retrieval_s, total_s),
            fallback=note, reply_rejection=answer.explainer_refusal,
            trace=self._agent_trace(message, mentions, answer, linked_s, retrieval_s),
            action=answer.action.action, vto_calls=answer.trace, critique=answer.critique,
            reasons=tuple(r.text for r in answer.reasons), constraints=tuple(answer.state.constraints.describe()),
            asked=answer.action.ask_about if answer.action.action == "ask" else None)
        return _after(state, turns, record), record

    def _searched_turn(self, state: SessionState, message: str, mentions, turns: tuple[Turn, ...], note: str | None,
                       started: float, linked_s: float) -> tuple[SessionState, TurnRecord]:
        """The turn when STAR chooses the move: the conversation so far as an
        :class:`~convrec.agent.search.dialogue.AgentDialogue` (every turn logged; what the agent asked and
        proposed in this conversation remembered, and the user's marks), searched, and the chosen move played."""
        assert self.search is not None
        earlier = [r for r in state.history if r.conversation == state.conversation]
        dialogue = AgentDialogue.start(self.agent, f"chat-{state.conversation}", turns, slate_size=state.options.top)
        dialogue.marks = tuple(_marks(state))
        dialogue.asked = tuple(r.asked for r in earlier if r.asked)
        dialogue.proposed = {rec.item_id for r in earlier for rec in r.recommendations}
        dialogue.last_slate = tuple(rec.item_id for rec in state.last.recommendations) if state.last else ()
        options, move, searched = self.search.choose(dialogue)
        said = dialogue.play(move, options)
        answer = options.turn if move.kind == "ask" and options.turn.action.action == "ask" else options.recommending
        slate = said.slate if move.kind == "recommend" else ()
        recommendations = _recommendations(self.catalog, answer, options.scores, slate)
        reply = Reply(said.text, slate, Reason("none", said.reasons[0] if said.reasons else ""),
                      source=answer.explainer_source if move.label == "recommend" else "template",
                      rejected=answer.explainer_rejected if move.label == "recommend" else None,
                      rejection=answer.explainer_refusal if move.label == "recommend" else None)
        total_s = time.monotonic() - started
        number = state.turns_in_conversation + 1
        action = "ask" if move.kind == "ask" else said.action
        trace = (TraceRecord.of(Stage.LINK, message, brief_list([self.catalog.get(m.item_id).display_title
                                                                  for m in mentions]), linked_s),
                 TraceRecord.of(Stage.SEARCH, f"{searched.kind}: {len(searched.nodes)} moves",
                                f"{move.label} ({searched.reason})", searched.seconds),
                 TraceRecord.of(Stage.REPLY, f"{action}: {move.describe()}", said.text,
                                max(total_s - linked_s - searched.seconds, 0.0)))
        record = TurnRecord(
            conversation=state.conversation, number=number, user_text=message, mentions=mentions,
            context_items=ContextView(dialogue.dialogue_id, turns).context_items,
            n_candidates=self.agent.ctx.options.candidates, recommendations=recommendations, reply=reply,
            timing=TurnTiming(0.0, 0.0, total_s - linked_s, total_s), fallback=note,
            reply_rejection=reply.rejection, trace=trace, action=action, vto_calls=answer.trace,
            critique=answer.critique if move.label == "recommend" else (), reasons=said.reasons,
            constraints=tuple(answer.state.constraints.describe()), asked=said.ask_about, search=searched)
        return _after(state, turns, record), record

    def _agent_trace(self, message: str, mentions, answer: HarpoTurn, linked_s: float,
                     retrieval_s: float) -> tuple[TraceRecord, ...]:
        titles = [self.catalog.get(m.item_id).display_title for m in mentions]
        agent_s = sum(call.seconds for call in answer.trace)
        return (TraceRecord.of(Stage.LINK, message, brief_list(titles), linked_s),
                TraceRecord.of(Stage.RETRIEVE, "the whole dialogue", "scores over the catalogue", retrieval_s),
                TraceRecord.of(Stage.REPLY, f"{answer.action.action}: {answer.action.reason}",
                               _reply_summary(answer), agent_s))

    def why(self, state: SessionState, number: int) -> Why:
        recommendation = _nth(state.last, number)
        last = state.last
        reason = last.reasons[number - 1] if last is not None and number - 1 < len(last.reasons) else ""
        return Why(number, recommendation, self.catalog.get(recommendation.item_id), last.n_candidates if last else 0,
                   reason)


def _reply_summary(answer: HarpoTurn) -> str:
    """Who wrote the reply, and why the LLM's rewrite was not kept (before the text: the summary is cut)."""
    refused = f" ({answer.explainer_refusal})" if answer.explainer_refusal else ""
    return f"{answer.explainer_source}{refused}: {answer.reply}"


def _marks(state: SessionState) -> list[tuple[str, str]]:
    """The user's explicit marks, in the order update_beliefs applies them (seen last: it wins)."""
    marks: list[tuple[str, str]] = []
    for item_id, mark in state.feedback.items():
        if mark.liked is not None:
            marks.append((item_id, "like" if mark.liked else "dislike"))
        if mark.seen:
            marks.append((item_id, "seen"))
    return marks


def _after(state: SessionState, turns: tuple[Turn, ...], record: TurnRecord) -> SessionState:
    """The session after ``record``'s turn: the seeker's message and the agent's reply appended."""
    return state.model_copy(update={
        "turns": (*turns, Turn("recommender", record.reply.text, record.reply.item_ids)),
        "turns_in_conversation": record.number,
        "history": (*state.history, record)[-state.options.max_history:],
    })


def _recommendations(catalog: Catalog, answer: HarpoTurn, scores: np.ndarray,
                     slate: tuple[str, ...] | None = None) -> tuple[Recommendation, ...]:
    """The slate (default: the answer's) with the retriever's score and rank of each item and its quality."""
    out = []
    quality = {q.item_id: q for q in answer.quality}
    slate = answer.slate if slate is None else slate
    for position, item_id in enumerate(slate):
        index = catalog.indices([item_id])[0]
        rank = int((scores > scores[index]).sum()) + 1  # the retriever's rank over the whole catalogue
        scored = quality.get(item_id)
        out.append(Recommendation(item_id, catalog.get(item_id).display_title, float(scores[index]), rank, None,
                                  float(len(slate) - position), scored.shown() if scored else None))
    return tuple(out)


def build_agent_engine(catalog: Catalog, retriever, writer: ReplyWriter, options: SessionOptions,
                       popularity: dict[str, float], config: object, dataset_name: str | None,
                       agent_options: HarpoOptions | None = None, llm: LLM | None = None,
                       llm_problem: str | None = None, train: Split | None = None,
                       rollout_users: Callable[[DomainAdapter], RolloutUsers] | None = None) -> AgentEngine:
    """``llm``: the chat's client, the Explainer's when ``agent_options.explainer`` is "llm" (``llm_problem``:
    why there is none, recorded on each turn that wanted it); ``train``: the split CHARM's answer models read
    (with quality weights on satisfaction or engagement); ``rollout_users``: makes STAR's simulated users for
    ``agent_options.search.kind = "rollout"`` (the simulator lives above serve, so its caller passes them)."""
    agent_options = agent_options or HarpoOptions(slate=options.top)
    if agent_options.search.kind == "rollout" and rollout_users is None:  # before the agent's indexes are built
        raise ConfigError("search.kind = 'rollout' needs simulated users to play ahead with: `convrec chat` gives "
                          "them; elsewhere use search.kind = 'value'")
    agent = HarpoAgent.build(catalog, retriever, agent_options, dataset_name, llm, llm_problem, train)
    users = rollout_users(agent.ctx.adapter) if rollout_users is not None else None
    # (kind "value" without a network is refused by HarpoOptions; a network that is not there by its loader)
    return AgentEngine(catalog, agent, writer, options, popularity, config,
                       StarSearch.build(agent_options.search, users))
