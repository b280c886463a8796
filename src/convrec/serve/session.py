"""One conversation with the two-stage recommender, a message at a time: what ``convrec chat`` drives.

Per user message (:meth:`ChatSession.turn`):

1. titles in the message are linked to the catalogue (:func:`convrec.catalog.mentions.find_titles`); they
   become the items of the seeker's turn, so the retriever sees them as mentioned items;
2. the retriever scores the whole catalogue for the dialogue so far (a :class:`RecSample` at its end) and
   its top-k go to the re-ranker (items already in the dialogue are left out unless asked otherwise). The
   items of the recommender's own turns are not shown to the retriever unless ``count_recommended``: the
   user has not endorsed them (naming one again makes it the user's), and three per turn would drown the
   one or two the user named;
3. the re-ranker (an LLM; none: the retriever's order) orders them, the top ``top`` are the
   recommendations, and :class:`~convrec.rerank.reply.ReplyWriter` writes a reply that names exactly those
   items; the reply becomes a recommender turn holding them.

Why the LLM sees a window of the dialogue: pointwise scoring is fast because llama.cpp reuses the cached
prompt prefix (system message + dialogue) from one candidate to the next and from one turn to the next, as
long as the dialogue text only grows at its end. Cutting the oldest characters each turn would change the
start of the prompt every turn and re-read all of it (seconds on CPU), so when the text outgrows
``window_chars`` the window drops its oldest turns in one go, down to half, and then grows again. The
retriever always sees the whole dialogue.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from convrec.catalog.items import Catalog
from convrec.catalog.mentions import TitleMention, find_titles
from convrec.catalog.titles import TitleLinker
from convrec.data.model import Dialogue, RecSample, Turn, render_turns
from convrec.rerank.pipeline import top_indices
from convrec.rerank.reply import Reply, ReplyWriter
from convrec.rerank.types import Ranking, Reranker
from convrec.retrieval.base import Recommender


class SessionOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    k: int = Field(10, ge=1, description="candidates the re-ranker sees")
    top: int = Field(5, ge=1, description="recommendations shown per turn")
    include_mentioned: bool = Field(False, description="let items already in the dialogue be recommended")
    count_recommended: bool = Field(False, description="the retriever sees the recommended items as context")
    window_chars: int = Field(1500, ge=100, description="dialogue characters the LLM sees (see module)")


@dataclass(frozen=True)
class Recommendation:
    """One recommended item. ``retriever_rank`` is 1-based among the k candidates; ``llm_score`` is None
    without a re-ranker, and ``score`` is then the retriever's score (else the fused score)."""

    item_id: str
    title: str
    retriever_score: float
    retriever_rank: int
    llm_score: float | None
    score: float


@dataclass(frozen=True)
class TurnTiming:
    """Seconds (retrieval in ms) and LLM usage of one turn; calls count cache hits too."""

    retrieval_ms: float
    rerank_s: float
    reply_s: float
    total_s: float
    llm_calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    prefix_cached_tokens: int = 0  # of the re-ranker's prompt tokens, reused from the prompt-prefix cache
    completion_tokens: int = 0


@dataclass
class ChatTurn:
    conversation: int  # 1, then 2 after the first /reset, ...
    number: int  # the user's n-th message in this conversation
    user_text: str
    mentions: list[TitleMention]
    context_items: tuple[str, ...]  # the items the retriever saw (this message's included)
    n_candidates: int
    recommendations: list[Recommendation]
    reply: Reply
    timing: TurnTiming
    fallback: str | None = None  # why the re-ranker kept the retriever's order, if it did
    reply_rejection: str | None = None

    def to_json(self, catalog: Catalog) -> dict[str, Any]:
        return {
            "conversation": self.conversation,
            "turn": self.number,
            "user": self.user_text,
            "recognised": [{"text": m.text, "item_id": m.item_id, "title": catalog.get(m.item_id).display_title,
                            "evidence": m.evidence} for m in self.mentions],
            "context_items": list(self.context_items),
            "candidates": self.n_candidates,
            "recommendations": [
                {"rank": rank, "item_id": r.item_id, "title": r.title, "retriever_score": r.retriever_score,
                 "retriever_rank": r.retriever_rank, "llm_score": r.llm_score, "score": r.score}
                for rank, r in enumerate(self.recommendations, start=1)
            ],
            "reply": self.reply.text,
            "reply_items": list(self.reply.item_ids),
            "reply_source": self.reply.source,
            "reply_rejection": self.reply_rejection,  # why the LLM's rewrite was refused (None: kept or not asked)
            "reply_rejected": self.reply.rejected,  # the refused rewrite itself
            "fallback": self.fallback,
            "timing": vars(self.timing),
        }


@dataclass
class ChatSession:
    """The dialogue so far and the parts that answer it; ``reranker`` None: the retriever alone."""

    catalog: Catalog
    retriever: Recommender
    writer: ReplyWriter
    reranker: Reranker | None = None
    options: SessionOptions = field(default_factory=SessionOptions)
    linker: TitleLinker | None = None
    popularity: dict[str, float] | None = None  # breaks ties between items of the same title

    def __post_init__(self) -> None:
        self.linker = self.linker or self.writer.linker
        self.conversation = 0
        self.history: list[ChatTurn] = []  # every turn of every conversation, in order
        self.reset()

    def reset(self) -> None:
        """Forget the dialogue (a new conversation starts); the history of turns is kept."""
        self.conversation += 1
        self.dialogue = Dialogue(f"chat-{self.conversation}", "test", [])
        self.window_start = 0
        self.turns_in_conversation = 0

    @property
    def last(self) -> ChatTurn | None:
        """The latest turn of the current conversation."""
        if self.history and self.history[-1].conversation == self.conversation:
            return self.history[-1]
        return None

    def recognise(self, text: str) -> list[TitleMention]:
        assert self.linker is not None
        return find_titles(text, self.linker, self.popularity)

    def turn(self, text: str) -> ChatTurn:
        """Answer one user message (see the module docstring)."""
        started = time.monotonic()
        mentions = self.recognise(text)
        self.dialogue.turns.append(Turn("seeker", text.strip(), tuple(m.item_id for m in mentions)))
        sample = self._retrieval_sample()
        scores = np.asarray(self.retriever.score([sample])[0], dtype=np.float64)
        in_dialogue = set(self.dialogue.items_in_order())
        exclude = [] if self.options.include_mentioned else self.catalog.indices(in_dialogue)
        top = top_indices(scores, self.options.k, exclude)
        ids = self.catalog.ids
        candidates = [ids[i] for i in top]
        retrieval_ms = (time.monotonic() - started) * 1000
        usage_before = _usage(self.reranker)
        ranking = self._rerank(candidates, scores[top])
        rerank_s = ranking.diagnostics.latency_s if self.reranker is not None else 0.0
        recommendations = self._recommendations(ranking, candidates, scores[top])
        reply_started = time.monotonic()
        reply = self.writer.write(self._llm_sample(), [r.item_id for r in recommendations])
        reply_s = time.monotonic() - reply_started
        self.dialogue.turns.append(Turn("recommender", reply.text, reply.item_ids))
        self.turns_in_conversation += 1
        timing = TurnTiming(retrieval_ms, rerank_s, reply_s, time.monotonic() - started,
                            **_usage_delta(usage_before, _usage(self.reranker), ranking))
        turn = ChatTurn(self.conversation, self.turns_in_conversation, text, mentions, sample.context_items,
                        len(candidates), recommendations, reply, timing, ranking.diagnostics.fallback,
                        reply.rejection)
        self.history.append(turn)
        return turn

    def _rerank(self, candidates: list[str], retriever_scores: np.ndarray) -> Ranking:
        if self.reranker is None or not candidates:
            n = len(candidates)
            return Ranking(tuple(candidates), retriever_scores.copy(), np.full(n, np.nan))
        return self.reranker.rerank(self._llm_sample(), candidates, retriever_scores)

    def _recommendations(self, ranking: Ranking, candidates: list[str],
                         retriever_scores: np.ndarray) -> list[Recommendation]:
        position = {item_id: i for i, item_id in enumerate(candidates)}
        result = []
        for item_id, score, llm in list(zip(ranking.item_ids, ranking.scores, ranking.llm_scores,
                                            strict=True))[: self.options.top]:
            i = position[item_id]
            result.append(Recommendation(
                item_id, self.catalog.get(item_id).display_title, float(retriever_scores[i]), i + 1,
                None if self.reranker is None else float(llm), float(score)))
        return result

    def _retrieval_sample(self) -> RecSample:
        """The whole dialogue; the recommender's turns without their items unless ``count_recommended``."""
        turns = self.dialogue.turns
        if not self.options.count_recommended:
            turns = [turn if turn.role == "seeker" else Turn(turn.role, turn.text) for turn in turns]
        return RecSample(Dialogue(self.dialogue.dialogue_id, "test", turns), len(turns), "")

    def _llm_sample(self) -> RecSample:
        """The dialogue as the LLM sees it: the turns from ``window_start`` on (see the module docstring)."""
        turns = self.dialogue.turns
        if len(render_turns(turns[self.window_start :])) > self.options.window_chars:
            start = self.window_start
            while start < len(turns) - 1 and len(render_turns(turns[start:])) > self.options.window_chars // 2:
                start += 1
            self.window_start = start
        window = Dialogue(self.dialogue.dialogue_id, "test", turns[self.window_start :])
        return RecSample(window, len(window.turns), "")


def _usage(reranker: Reranker | None) -> Any:
    """The LLM client's usage counters (an :class:`convrec.llm.Usage`), or None for a bare backend."""
    return getattr(getattr(reranker, "llm", None), "usage", None)


def _usage_delta(before: Any, after: Any, ranking: Ranking) -> dict[str, int]:
    """LLM calls of this turn: from the client's counters (re-ranking and reply together) when it has them,
    else from the ranking's diagnostics."""
    d = ranking.diagnostics
    if before is not None and after is not None:
        return {"llm_calls": after.calls - before.calls, "cache_hits": after.cache_hits - before.cache_hits,
                "prompt_tokens": after.prompt_tokens - before.prompt_tokens,
                "prefix_cached_tokens": d.cached_prompt_tokens,
                "completion_tokens": after.completion_tokens - before.completion_tokens}
    return {"llm_calls": d.llm_calls, "cache_hits": d.cache_hits, "prompt_tokens": d.prompt_tokens,
            "prefix_cached_tokens": d.cached_prompt_tokens, "completion_tokens": d.completion_tokens}
