"""Listwise re-ranking: the LLM reads all K candidates and answers with their titles, best first.

Where the backend supports it the reply is constrained by a JSON schema whose strings are an ``enum`` of
the candidates' titles, so it parses and names only candidates (duplicates are still possible: llama.cpp
ignores ``uniqueItems``). Without a schema the reply is parsed from free text. Either way every title is
grounded to the catalogue (:mod:`convrec.rerank.grounding`), duplicates are dropped, the candidates the
LLM left out follow in the retriever's order, and a failed call or a reply that names no candidate keeps
the retriever's order (counted as a fallback).

Small local models copy the input order here (shared/docs/MODELS.md); this path is for strong LLMs
behind an OpenAI-compatible API, and measured honestly with the local one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from convrec.catalog.items import Catalog
from convrec.catalog.titles import TitleLinker
from convrec.data.model import ContextView
from convrec.llm.errors import LLMError, LLMUnavailableError
from convrec.llm.types import LLM, ChatRequest
from convrec.rerank.fusion import Normalisation, fused_order
from convrec.rerank.grounding import CandidateGrounder, Grounding, candidate_labels, parse_titles
from convrec.rerank.prompts import PromptOptions, listwise_messages
from convrec.rerank.types import Ranking, RerankDiagnostics, Reranker


class ListwiseOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    json_schema: bool = Field(True, description="constrain the reply to {ranking: [candidate titles]} "
                              "(llama.cpp grammar, or response_format json_schema on OpenAI-compatible APIs)")
    tokens_per_candidate: int = Field(24, ge=4, description="reply budget: 16 + this many tokens per candidate")
    prompt: PromptOptions = PromptOptions()


def ranking_schema(labels: Sequence[str]) -> dict[str, Any]:
    """JSON schema of ``{"ranking": [title, ...]}`` with titles restricted to ``labels``, at most K of them.

    An object at the top (not a bare array) because OpenAI's strict structured outputs require one.
    """
    return {
        "type": "object",
        "properties": {
            "ranking": {
                "type": "array",
                "items": {"type": "string", "enum": list(labels)},
                "minItems": 1,
                "maxItems": len(labels),
            }
        },
        "required": ["ranking"],
        "additionalProperties": False,
    }


def rank_scores(n_ranked: int, n_candidates: int) -> np.ndarray:
    """(n_ranked,) LLM scores by position in the LLM's list: 1 for its first, falling by 1/K.

    Candidates the LLM left out score 0, below all of these.
    """
    return 1.0 - np.arange(n_ranked) / max(n_candidates, 1)


class ListwiseReranker(Reranker):
    """One request per dialogue listing every candidate; see the module docstring."""

    name = "listwise"

    def __init__(
        self,
        llm: LLM,
        catalog: Catalog,
        options: ListwiseOptions | None = None,
        fusion_weight: float = 1.0,
        normalisation: Normalisation = "rank",
        linker: TitleLinker | None = None,
    ):
        super().__init__(fusion_weight)
        self.llm = llm
        self.catalog = catalog
        self.options = options or ListwiseOptions()
        self.normalisation = normalisation
        self.linker = linker or TitleLinker(catalog)

    def request(self, sample: ContextView, candidates: Sequence[str]) -> ChatRequest:
        items = [self.catalog.get(item_id) for item_id in candidates]
        labels = candidate_labels(items)
        return ChatRequest(
            messages=listwise_messages(sample, items, labels, self.options.prompt),
            max_tokens=16 + self.options.tokens_per_candidate * len(candidates),
            temperature=0.0,
            json_schema=ranking_schema(labels) if self.options.json_schema else None,
        )

    def rerank(self, sample: ContextView, candidates: Sequence[str], retriever_scores: np.ndarray) -> Ranking:
        started = time.monotonic()
        diagnostics = RerankDiagnostics()
        reply = None
        if candidates:
            try:
                response = self.llm.complete(self.request(sample, candidates))
            except LLMUnavailableError:
                raise  # the endpoint cannot serve at all: stop rather than fall back on every sample
            except LLMError as exc:  # a call that failed after its retries keeps the retriever's order
                diagnostics.count_responses([exc])
                diagnostics.fallback = f"LLM call failed ({type(exc).__name__}: {exc})"[:300]
            else:
                diagnostics.count_responses([response])
                reply = response.text
        ranking = self.rank_from_reply(reply, candidates, retriever_scores, diagnostics)
        ranking.diagnostics.latency_s = time.monotonic() - started
        return ranking

    def rank_from_reply(
        self,
        reply: str | None,
        candidates: Sequence[str],
        retriever_scores: np.ndarray,
        diagnostics: RerankDiagnostics | None = None,
    ) -> Ranking:
        """The ranking an LLM reply implies (no LLM involved): grounded candidates in the reply's order,
        then the rest in the retriever's order, fused with ``fusion_weight``. ``reply`` None: the call failed.
        """
        retriever_scores = np.asarray(retriever_scores, dtype=np.float64)
        if retriever_scores.shape != (len(candidates),):
            raise ValueError(f"{len(candidates)} candidates but retriever_scores of shape {retriever_scores.shape}")
        diagnostics = diagnostics or RerankDiagnostics()
        llm = np.zeros(len(candidates))
        if reply is not None:
            grounding = self.ground(reply, candidates)
            diagnostics.generated_titles = grounding.titles
            diagnostics.unmatched_titles = grounding.unmatched
            diagnostics.outside_candidates = grounding.outside_candidates
            diagnostics.duplicate_titles = grounding.duplicates
            if grounding.item_ids:
                position = {item_id: i for i, item_id in enumerate(candidates)}
                ranked = [position[item_id] for item_id in grounding.item_ids]
                llm[ranked] = rank_scores(len(ranked), len(candidates))
            elif candidates:
                what = "no title could be parsed" if not grounding.titles else "no title names a candidate"
                diagnostics.unusable_replies += 1
                diagnostics.fallback = f"unusable reply: {what} ({reply[:80]!r})"
        order, fused = fused_order(retriever_scores, llm, self.fusion_weight, self.normalisation)
        return Ranking(tuple(candidates[i] for i in order), fused[order], llm[order], diagnostics)

    def ground(self, text: str, candidates: Sequence[str]) -> Grounding:
        """Parse and ground one reply against these candidates (see :mod:`convrec.rerank.grounding`)."""
        items = [self.catalog.get(item_id) for item_id in candidates]
        grounder = CandidateGrounder(self.linker, items, candidate_labels(items))
        return grounder.ground(parse_titles(text))
