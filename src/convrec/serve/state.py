"""One conversation's state, apart from the models that answer it: what a chat, the HTTP API or a search
over conversations copies, saves and restores.

A :class:`SessionState` is immutable (a frozen pydantic model of tuples): :class:`~convrec.serve.engine.Engine`
returns a new state for every operation and never changes the one it was given, so a copy costs nothing
and two threads can never step on the same conversation. It holds the dialogue (each seeker turn with the
catalogue items linked in it), the user's feedback on recommended items, the options, where the LLM's
window of the dialogue starts, and the records of the latest turns (at most ``options.max_history``).

Saved as JSON with a ``schema_version``; :meth:`SessionState.load` refuses a file it cannot continue (not
JSON, another schema version, a bad field, an item the catalogue does not hold) with a
:class:`~convrec.errors.DataError` that names the file and what was expected.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from convrec.agent.maven import CritiqueNote
from convrec.agent.search.star import SearchTrace
from convrec.agent.vto import VTOCall
from convrec.catalog.items import Catalog
from convrec.catalog.mentions import TitleMention
from convrec.catalog.people import PersonMention
from convrec.data.model import Turn
from convrec.errors import DataError
from convrec.io import atomic_write
from convrec.rerank.reply import Reply
from convrec.trace import TraceRecord

SCHEMA_VERSION = 1
# neutral: neither liked nor disliked; unseen: not seen. An item with neither mark has no feedback at all.
FeedbackKind = Literal["like", "dislike", "neutral", "seen", "unseen"]


class SessionOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    k: int = Field(10, ge=1, description="candidates the re-ranker sees")
    top: int = Field(5, ge=1, description="recommendations shown per turn")
    include_mentioned: bool = Field(False, description="let items already in the dialogue be recommended")
    count_recommended: bool = Field(False, description="the retriever sees the recommended items as context")
    window_chars: int = Field(1500, ge=100, description="dialogue characters the LLM sees (see engine)")
    max_history: int = Field(50, ge=1, description="turn records kept (the dialogue itself is kept whole)")


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
    # the HARPO agent with CHARM's quality weights: each scored dimension of the item (relevance and diversity
    # in [0, 1], satisfaction and engagement as probabilities); None otherwise
    quality: dict[str, float] | None = None


@dataclass(frozen=True)
class TurnTiming:
    """Seconds (retrieval in ms) and LLM usage of one turn, counted from this turn's own responses (the
    re-ranker's and the reply's); calls count cache hits too, tokens only generated replies."""

    retrieval_ms: float
    rerank_s: float
    reply_s: float
    total_s: float
    llm_calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    prefix_cached_tokens: int = 0  # of prompt_tokens, reused from the backend's prompt-prefix cache
    completion_tokens: int = 0


class TurnRecord(BaseModel):
    """What one turn recognised, considered, recommended and said, and what it cost."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    conversation: int  # 1, then 2 after the first reset, ...
    number: int  # the user's n-th message in this conversation
    user_text: str
    mentions: tuple[TitleMention, ...]
    context_items: tuple[str, ...]  # the items the retriever saw (this message's included)
    n_candidates: int
    recommendations: tuple[Recommendation, ...]
    reply: Reply
    timing: TurnTiming
    fallback: str | None = None  # why the re-ranker kept the retriever's order, if it did
    reply_rejection: str | None = None
    people: tuple[PersonMention, ...] = ()  # whose items came first among the candidates
    trace: tuple[TraceRecord, ...] = ()  # each stage of the turn, in order (convrec.trace)
    # An agent's turn (convrec chat --agent harpo): what it chose to do, its VTO calls, the Critic's edits, the
    # reason given for each recommendation and the constraints it held. Empty for the two-stage engine.
    action: str | None = None
    vto_calls: tuple[VTOCall, ...] = ()
    critique: tuple[CritiqueNote, ...] = ()
    reasons: tuple[str, ...] = ()
    constraints: tuple[str, ...] = ()
    asked: str | None = None  # the attribute the agent asked about (action "ask")
    search: SearchTrace | None = None  # STAR's searched tree, when the agent chose its move by search

    def to_json(self, catalog: Catalog) -> dict[str, Any]:
        return {
            "conversation": self.conversation,
            "turn": self.number,
            "user": self.user_text,
            "recognised": [{"text": m.text, "item_id": m.item_id, "title": catalog.get(m.item_id).display_title,
                            "evidence": m.evidence} for m in self.mentions],
            "recognised_people": [{"text": p.text, "name": p.name, "field": p.field, "items": len(p.item_ids)}
                                  for p in self.people],
            "context_items": list(self.context_items),
            "candidates": self.n_candidates,
            "recommendations": [
                {"rank": rank, "item_id": r.item_id, "title": r.title, "retriever_score": r.retriever_score,
                 "retriever_rank": r.retriever_rank, "llm_score": r.llm_score, "score": r.score,
                 **({"quality": r.quality} if r.quality is not None else {})}
                for rank, r in enumerate(self.recommendations, start=1)
            ],
            "reply": self.reply.text,
            "reply_items": list(self.reply.item_ids),
            "reply_source": self.reply.source,
            "reply_rejection": self.reply_rejection,  # why the LLM's rewrite was refused (None: kept or not asked)
            "reply_rejected": self.reply.rejected,  # the refused rewrite itself
            "fallback": self.fallback,
            "timing": vars(self.timing),
            "trace": [record.model_dump(mode="json") for record in self.trace],
            **({"agent": {"action": self.action, "reasons": list(self.reasons),
                          "constraints": list(self.constraints),
                          "critique": [note.model_dump(mode="json") for note in self.critique],
                          "vto_calls": [call.model_dump(mode="json") for call in self.vto_calls],
                          "asked": self.asked,
                          "search": self.search.model_dump(mode="json") if self.search is not None else None}}
               if self.action is not None else {}),
        }


class ItemFeedback(BaseModel):
    """What the user said about a recommended item: ``liked`` True (liked), False (disliked) or None."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    liked: bool | None = None
    seen: bool = False


class SessionState(BaseModel):
    """One conversation, immutable (see the module docstring). ``turns`` is the current conversation's
    dialogue; ``history`` the records of the latest turns of every conversation, oldest first."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int = SCHEMA_VERSION
    options: SessionOptions = SessionOptions()
    conversation: int = Field(1, ge=1)
    turns_in_conversation: int = Field(0, ge=0)
    turns: tuple[Turn, ...] = ()
    feedback: dict[str, ItemFeedback] = Field(default_factory=dict)
    window_start: int = Field(0, ge=0, description="the first turn the LLM sees (see engine)")
    history: tuple[TurnRecord, ...] = ()

    @property
    def last(self) -> TurnRecord | None:
        """The latest turn of the current conversation."""
        if self.history and self.history[-1].conversation == self.conversation:
            return self.history[-1]
        return None

    def excluded(self) -> set[str]:
        """Items the user disliked or has seen: never recommended again in this conversation."""
        return {item_id for item_id, mark in self.feedback.items() if mark.liked is False or mark.seen}

    def liked(self) -> tuple[str, ...]:
        return tuple(item_id for item_id, mark in self.feedback.items() if mark.liked)

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str, catalog: Catalog, source: str | os.PathLike = "<session>") -> SessionState:
        """The state saved in ``text``; every item it names must be in ``catalog`` (the engine's)."""
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"not a saved chat session: invalid JSON at column {exc.colno} ({exc.msg})",
                            source, exc.lineno) from exc
        if not isinstance(raw, dict) or "schema_version" not in raw:
            raise DataError("not a saved chat session: expected a JSON object with a schema_version", source)
        version = raw["schema_version"]
        if version != SCHEMA_VERSION:
            age = "an older" if isinstance(version, int) and version < SCHEMA_VERSION else "another"
            raise DataError(f"saved by {age} convrec (session schema_version {version!r}); this one reads "
                            f"schema_version {SCHEMA_VERSION}", source,
                            hint="start a new session: remove the file or choose another --state")
        try:
            state = cls.model_validate(raw)
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(part) for part in problem["loc"])
            raise DataError(f"field {where}: {problem['msg']} (expected a session of schema_version "
                            f"{SCHEMA_VERSION})", source) from exc
        unknown = state.item_ids() - set(catalog.index_of)
        if unknown:
            raise DataError(f"names {len(unknown)} item(s) that this catalogue ({len(catalog):,} items) does not "
                            f"hold, e.g. {sorted(unknown)[:3]}: it was saved with another catalogue", source)
        return state

    def save(self, path: str | os.PathLike) -> None:
        """Write the state to ``path`` atomically: a kill mid-write leaves the previous state whole."""
        with atomic_write(path) as handle:
            handle.write(self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike, catalog: Catalog) -> SessionState:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise DataError("not a saved chat session: not UTF-8 text", path) from exc
        return cls.from_json(text, catalog, path)

    def item_ids(self) -> set[str]:
        """Every catalogue item the state names: in its dialogue, its feedback and its turn records."""
        ids = {item for turn in self.turns for item in turn.items} | set(self.feedback)
        for record in self.history:
            ids.update(m.item_id for m in record.mentions)
            ids.update(record.context_items)
            ids.update(r.item_id for r in record.recommendations)
            ids.update(record.reply.item_ids)
        return ids
