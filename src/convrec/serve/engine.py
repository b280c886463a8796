"""The models that answer conversations, shared by all of them: :class:`Engine`. What ``convrec chat``
drives, and what an HTTP API serves to many sessions at once.

An engine holds the catalogue, the retriever, the re-ranker, the reply writer and the title and people
indexes, all read-only once built, so any number of threads may call it at once (the LLM client is
thread-safe). Nothing of a conversation lives in it: each operation takes a
:class:`~convrec.serve.state.SessionState` and returns a new one, leaving the given state as it was.

Per user message (:meth:`Engine.turn`):

1. titles in the message are linked to the catalogue (:func:`convrec.catalog.mentions.find_titles`); they
   become the items of the seeker's turn, so the retriever sees them as mentioned items. People who make
   items (an author, a director: :func:`convrec.catalog.people.find_people`) are found too: their items come
   first among this turn's candidates, in the retriever's order ("The Shining by Stephen King" asks for
   Stephen King's books, whether or not The Shining is in the catalogue);
2. the retriever's top-k for the dialogue so far (a :class:`ContextView` at its end), asked of its
   :meth:`~convrec.retrieval.base.Recommender.retrieve` with the named people's items first (``prefer``), go
   to the re-ranker with the retriever's score of each. Items already in the dialogue are left out unless
   asked otherwise (``exclude``), and so are those the user disliked or has seen (``/dislike N``,
   ``/seen N``); items the user liked (``/like N``) count as items the user named. The items of the
   recommender's own turns are not shown to the retriever unless ``count_recommended``: the user has not
   endorsed them (naming one again makes it the user's), and three per turn would drown the one or two the
   user named;
3. the re-ranker (an LLM; none: the retriever's order) orders them, the top ``top`` are the
   recommendations, and :class:`~convrec.rerank.reply.ReplyWriter` writes a reply that names exactly those
   items; the reply becomes a recommender turn holding them.

The turn's LLM usage is counted from its own responses (the re-ranker's diagnostics and the reply's polish
call), never from the client's counters, which every session shares.

Why the LLM sees a window of the dialogue: pointwise scoring is fast because llama.cpp reuses the cached
prompt prefix (system message + dialogue) from one candidate to the next and from one turn to the next, as
long as the dialogue text only grows at its end. Cutting the oldest characters each turn would change the
start of the prompt every turn and re-read all of it (seconds on CPU), so when the text outgrows
``window_chars`` the window drops its oldest turns in one go, down to half, and then grows again. The
retriever always sees the whole dialogue.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from convrec.catalog.items import Catalog, Item
from convrec.catalog.mentions import TitleMention, find_titles
from convrec.catalog.people import PeopleIndex, PersonMention, find_people
from convrec.catalog.titles import TitleLinker
from convrec.catalog.vocabulary import Vocabulary
from convrec.data.model import ContextView, Dialogue, RecSample, Turn, render_turns
from convrec.errors import ConvrecError
from convrec.rerank.reply import Reply, ReplyWriter, choose_reason, seeker_text
from convrec.rerank.types import Ranking, RerankDiagnostics, Reranker
from convrec.retrieval.base import Recommender
from convrec.serve.state import (
    FeedbackKind,
    ItemFeedback,
    Recommendation,
    SessionOptions,
    SessionState,
    TurnRecord,
    TurnTiming,
)
from convrec.trace import Stage, TraceRecord, brief_list

_MARKS: dict[str, dict[str, bool | None]] = {
    "like": {"liked": True}, "dislike": {"liked": False}, "neutral": {"liked": None},
    "seen": {"seen": True}, "unseen": {"seen": False}}


class NoSuchRecommendation(ConvrecError):
    """A command named the N-th recommendation of the latest turn, and there is none: ``count`` there are."""

    def __init__(self, number: Any, count: int):
        self.number = number
        self.count = count
        where = f"choose 1 to {count}" if count else "no recommendations yet in this conversation"
        super().__init__(f"no recommendation {number!r}: {where}")


@dataclass(frozen=True)
class Why:
    """What ``/why N`` shows: the recommendation, its catalogue item and the reason the reply would give."""

    number: int
    recommendation: Recommendation
    item: Item
    n_candidates: int
    reason: str


class Engine:
    """Answers any number of conversations (see the module docstring); ``reranker`` None: the retriever alone.
    ``options`` are those of a new session; ``popularity`` breaks ties between items of the same title."""

    def __init__(self, catalog: Catalog, retriever: Recommender, writer: ReplyWriter,
                 reranker: Reranker | None = None, options: SessionOptions | None = None,
                 popularity: dict[str, float] | None = None, config: Any = None):
        self.catalog = catalog
        self.retriever = retriever
        self.writer = writer
        self.reranker = reranker
        self.options = options or SessionOptions()
        self.linker: TitleLinker = writer.linker
        self.popularity = popularity
        self.config = config  # what it was built from (a ChatConfig), for reports
        self.vocabulary: Vocabulary = writer.options.prompt.vocabulary
        self.people_index = PeopleIndex(catalog, self.vocabulary.creator_fields)

    def new_state(self, options: SessionOptions | None = None) -> SessionState:
        return SessionState(options=options or self.options)

    def turn(self, state: SessionState, message: str) -> tuple[SessionState, TurnRecord]:
        """Answer one user message (see the module docstring): the state after it, and the turn's record."""
        started = time.monotonic()
        options = state.options
        mentions = tuple(find_titles(message, self.linker, self.popularity, not_titles=self.vocabulary.not_titles))
        people = tuple(find_people(message, self.people_index, [(m.start, m.end) for m in mentions]))
        linked_s = time.monotonic() - started
        turns = (*state.turns, Turn("seeker", message.strip(), tuple(m.item_id for m in mentions)))
        dialogue_id = f"chat-{state.conversation}"
        view = self._retrieval_view(dialogue_id, turns, state.liked(), options.count_recommended)
        excluded = state.excluded()
        if not options.include_mentioned:
            excluded |= {item for turn in turns for item in turn.items}
        preferred = list(dict.fromkeys(i for person in people for i in person.item_ids))
        retrieved = self.retriever.retrieve([view], options.k, [excluded], prefer=[preferred])[0]
        candidates, scores = list(retrieved.item_ids), np.asarray(retrieved.scores, dtype=np.float64)
        retrieval_ms = (time.monotonic() - started) * 1000
        window_start = _window_start(turns, state.window_start, options.window_chars)
        llm_sample = RecSample(Dialogue(dialogue_id, "test", list(turns[window_start:])), len(turns) - window_start, "")
        # With people named, the candidates' order is not the scores' order: the re-ranker gets it as a rank.
        order = np.arange(len(candidates), 0, -1, dtype=np.float64) if preferred else scores
        ranking = self._rerank(llm_sample, candidates, scores, order)
        rerank_s = ranking.diagnostics.latency_s if self.reranker is not None else 0.0
        recommendations = self._recommendations(ranking, candidates, scores, options.top)
        reply_started = time.monotonic()
        reply = self.writer.write(llm_sample, [r.item_id for r in recommendations])
        reply_s = time.monotonic() - reply_started
        usage = _usage(ranking.diagnostics, reply.response)
        trace = self._trace(message, mentions, people, view, candidates, ranking, recommendations, reply,
                            (linked_s, retrieval_ms / 1000 - linked_s, rerank_s, reply_s))
        number = state.turns_in_conversation + 1
        record = TurnRecord(
            conversation=state.conversation, number=number, user_text=message, mentions=mentions,
            context_items=view.context_items, n_candidates=len(candidates), recommendations=tuple(recommendations),
            reply=replace(reply, response=None), timing=TurnTiming(retrieval_ms, rerank_s, reply_s, time.monotonic() - started, **usage),
            fallback=ranking.diagnostics.fallback, reply_rejection=reply.rejection, people=people, trace=trace)
        new_state = state.model_copy(update={
            "turns": (*turns, Turn("recommender", reply.text, reply.item_ids)),
            "turns_in_conversation": number,
            "window_start": window_start,
            "history": (*state.history, record)[-options.max_history :],
        })
        return new_state, record

    def _trace(self, message: str, mentions: Sequence[TitleMention], people: Sequence[PersonMention],
               view: ContextView, candidates: list[str], ranking: Ranking,
               recommendations: Sequence[Recommendation], reply: Reply,
               seconds: tuple[float, float, float, float]) -> tuple[TraceRecord, ...]:
        """The turn's records: link, retrieve, rerank, reply (seconds of each, in that order)."""
        def titles(ids: Sequence[str]) -> str:
            return brief_list([self.catalog.get(item_id).display_title for item_id in ids])

        linked = [self.catalog.get(m.item_id).display_title for m in mentions] + [p.name for p in people]
        reranked = ("no re-ranker: the retriever's order" if self.reranker is None
                    else ranking.diagnostics.fallback or titles(ranking.item_ids))
        link_s, retrieve_s, rerank_s, reply_s = seconds
        return (
            TraceRecord.of(Stage.LINK, message, brief_list(linked), link_s),
            TraceRecord.of(Stage.RETRIEVE, f"{len(view.context_items)} context items", titles(candidates),
                           max(retrieve_s, 0.0)),
            TraceRecord.of(Stage.RERANK, f"{len(candidates)} candidates", reranked, rerank_s),
            TraceRecord.of(Stage.REPLY, titles([r.item_id for r in recommendations]),
                           f"{reply.source}: {reply.text}" + (f" [the LLM's text was refused: {reply.rejection}]"
                                                              if reply.rejection else ""), reply_s),
        )

    def reset(self, state: SessionState) -> SessionState:
        """A new conversation: the dialogue and the feedback are forgotten, the history of turns is kept."""
        return state.model_copy(update={"conversation": state.conversation + 1, "turns": (), "feedback": {},
                                        "window_start": 0, "turns_in_conversation": 0})

    def why(self, state: SessionState, number: int) -> Why:
        """The N-th recommendation of the latest turn, its item and its reason."""
        recommendation = _nth(state.last, number)
        item = self.catalog.get(recommendation.item_id)
        said = RecSample(Dialogue(f"chat-{state.conversation}", "test", list(state.turns)), len(state.turns), "")
        reason = choose_reason(item, seeker_text(said), self.vocabulary).text
        return Why(number, recommendation, item, state.last.n_candidates if state.last else 0, reason)

    def feedback(self, state: SessionState, number: int, kind: FeedbackKind) -> tuple[SessionState, Item]:
        """Mark the N-th recommendation of the latest turn liked, disliked or seen: the new state, and the item.
        Disliked and seen items are not recommended again in this conversation; liked ones count as named."""
        item_id = _nth(state.last, number).item_id
        return self.mark(state, item_id, kind), self.catalog.get(item_id)

    def mark(self, state: SessionState, item_id: str, kind: FeedbackKind) -> SessionState:
        """Mark the catalogue item ``item_id`` liked, disliked or seen (or take the mark back: ``neutral``,
        ``unseen``), recommended or not (the HTTP API gives feedback by id): the new state. A KeyError for an
        item the catalogue does not hold."""
        self.catalog.get(item_id)
        mark = state.feedback.get(item_id, ItemFeedback())
        mark = mark.model_copy(update=_MARKS[kind])
        feedback = {key: value for key, value in state.feedback.items() if key != item_id}
        if mark != ItemFeedback():  # no mark left: the item has no feedback at all
            feedback[item_id] = mark
        return state.model_copy(update={"feedback": feedback})

    def _retrieval_view(self, dialogue_id: str, turns: Sequence[Turn], liked: Sequence[str],
                        count_recommended: bool) -> ContextView:
        """The whole dialogue; the recommender's turns without their items unless ``count_recommended``; the
        liked items the user has not named, as a turn of theirs before the latest message."""
        if not count_recommended:
            turns = [turn if turn.role == "seeker" else Turn(turn.role, turn.text) for turn in turns]
        named = {item for turn in turns for item in turn.items}
        unnamed = tuple(item for item in liked if item not in named)
        if unnamed:
            turns = [*turns[:-1], Turn("seeker", "", unnamed), turns[-1]]
        return ContextView(dialogue_id, tuple(turns))

    def _rerank(self, sample: RecSample, candidates: list[str], retriever_scores: np.ndarray,
                order: np.ndarray) -> Ranking:
        if self.reranker is None or not candidates:
            n = len(candidates)
            return Ranking(tuple(candidates), retriever_scores.copy(), np.full(n, np.nan))
        return self.reranker.rerank(sample, candidates, order)

    def _recommendations(self, ranking: Ranking, candidates: list[str], retriever_scores: np.ndarray,
                         top: int) -> list[Recommendation]:
        position = {item_id: i for i, item_id in enumerate(candidates)}
        result = []
        for item_id, score, llm in list(zip(ranking.item_ids, ranking.scores, ranking.llm_scores,
                                            strict=True))[:top]:
            i = position[item_id]
            result.append(Recommendation(
                item_id, self.catalog.get(item_id).display_title, float(retriever_scores[i]), i + 1,
                None if self.reranker is None else float(llm), float(score)))
        return result


def _nth(turn: TurnRecord | None, number: int) -> Recommendation:
    count = len(turn.recommendations) if turn is not None else 0
    if turn is None or not 1 <= number <= count:
        raise NoSuchRecommendation(number, count)
    return turn.recommendations[number - 1]


def _window_start(turns: Sequence[Turn], start: int, window_chars: int) -> int:
    """The first turn the LLM sees: ``start`` until the text from there outgrows ``window_chars``, then the
    first from which it fits in half (see the module docstring)."""
    if len(render_turns(turns[start:])) > window_chars:
        while start < len(turns) - 1 and len(render_turns(turns[start:])) > window_chars // 2:
            start += 1
    return start


def _usage(reranking: RerankDiagnostics, *responses: Any) -> dict[str, int]:
    """The LLM usage of one turn: the re-ranker's requests (its diagnostics) and the other ``responses``."""
    other = RerankDiagnostics()
    other.count_responses(response for response in responses if response is not None)
    return {"llm_calls": reranking.llm_calls + other.llm_calls, "cache_hits": reranking.cache_hits + other.cache_hits,
            "prompt_tokens": reranking.prompt_tokens + other.prompt_tokens,
            "prefix_cached_tokens": reranking.cached_prompt_tokens + other.cached_prompt_tokens,
            "completion_tokens": reranking.completion_tokens + other.completion_tokens}
