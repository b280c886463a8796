"""The trace of one turn: what each stage of the pipeline took in, gave out, and how long it took.

A :class:`TraceRecord` per stage, in order; ``rar`` fills them (retrieve, rerank, fuse) and so does the chat's
engine (link, retrieve, rerank, reply); the agent, the search and the web page's trace view read and extend the same type. Summaries are short on purpose
(:func:`brief`): a trace is read by a person, next to a reply, not replayed.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

SUMMARY_CHARS = 200
LISTED_ITEMS = 5


class Stage(StrEnum):
    LINK = "link"  # titles and people found in the user's message (the chat)
    RETRIEVE = "retrieve"  # scores over the whole catalogue, top-K candidates
    RERANK = "rerank"  # the LLM's opinion of the K candidates
    FUSE = "fuse"  # retriever and LLM combined into the final order over the catalogue
    SEARCH = "search"  # the agent's move chosen by STAR (the tree is on the turn record)
    REPLY = "reply"  # the reply's text: the template, or the LLM's rewrite of it (the chat)


class TraceRecord(BaseModel):
    """One stage of one turn: ``input`` and ``output`` are one-line summaries, ``seconds`` its wall time."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stage: Stage
    input: str = Field(max_length=SUMMARY_CHARS)
    output: str = Field(max_length=SUMMARY_CHARS)
    seconds: float = Field(ge=0.0)

    @classmethod
    def of(cls, stage: Stage, input: str, output: str, seconds: float) -> TraceRecord:
        """A record whose summaries are cut to fit (:func:`brief`)."""
        return cls(stage=stage, input=brief(input), output=brief(output), seconds=seconds)


def brief(text: str, limit: int = SUMMARY_CHARS) -> str:
    """``text`` on one line (runs of whitespace become one space), cut to ``limit`` characters with "..."."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: max(limit - 3, 0)] + "..."


def brief_list(names: Sequence[str], shown: int = LISTED_ITEMS) -> str:
    """The first ``shown`` names, then how many more: "A; B; C (+17 more)"; "none" when empty."""
    if not names:
        return "none"
    more = len(names) - shown
    return "; ".join(names[:shown]) + (f" (+{more} more)" if more > 0 else "")
