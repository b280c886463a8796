"""Pointwise re-ranking: ask the LLM "is this a good next recommendation? Yes or No" once per candidate.

The LLM score of a candidate is P(Yes) / (P(Yes) + P(No)), read from the alternatives of the first
generated token (``max_tokens`` 1, greedy, ``top_logprobs``). Why pointwise: small local models cannot
rank a list (they copy the input order, shared/docs/MODELS.md), but their Yes/No probabilities carry
signal, and with the dialogue and question before the candidate each extra candidate costs only its own
tokens thanks to llama.cpp's prompt-prefix cache.

Every (dialogue, candidate) question is a fixed request, so the LLM client's response cache answers it
for free the second time (another protocol, another fusion weight, a rerun); the diagnostics say how many
calls were real.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from convrec.catalog.items import Catalog
from convrec.data.model import ContextView
from convrec.llm.errors import LLMError, LLMUnavailableError
from convrec.llm.types import LLM, ChatRequest, ChatResponse
from convrec.rerank.fusion import Normalisation, fused_order
from convrec.rerank.prompts import PromptOptions, pointwise_messages, pointwise_prefix
from convrec.rerank.types import Ranking, RerankDiagnostics, Reranker

NEUTRAL = 0.5  # the score of a candidate whose answer said neither Yes nor No
_STRIP = " \t\n\r.,!?:;\"'`*▁Ġ"  # whitespace, punctuation, and SentencePiece/BPE space markers


class PointwiseOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    top_logprobs: int = Field(10, ge=2, le=20, description="alternatives read at the first generated token")
    max_workers: int | None = Field(None, ge=1, description="parallel requests per dialogue (None: the "
                                    "client's max_concurrency); a local model with one slot runs them in turn")
    prompt: PromptOptions = PromptOptions()


def answer_word(token: str) -> str | None:
    """``"Yes"``, ``" yes"``, ``"YES."``, ``"▁Yes"`` -> ``"yes"``; the same for no; anything else -> None."""
    word = token.strip(_STRIP).lower()
    return word if word in ("yes", "no") else None


def yes_probability(response: ChatResponse) -> float | None:
    """P(Yes) / (P(Yes) + P(No)) at the first generated token, or None when neither appears.

    Every spelling of the two words is summed. Without logprobs (a server that does not return them) the
    generated text decides: 1.0 for yes, 0.0 for no.
    """
    if response.top_logprobs:
        mass = {"yes": 0.0, "no": 0.0}
        for token, logprob in response.top_logprobs[0].items():
            word = answer_word(token)
            if word is not None:
                mass[word] += math.exp(logprob)
        total = mass["yes"] + mass["no"]
        return mass["yes"] / total if total > 0 else None
    words = response.text.split()
    word = answer_word(words[0]) if words else None
    return None if word is None else float(word == "yes")


def complete_all(
    llm: LLM, requests: Sequence[ChatRequest], max_workers: int | None = None
) -> list[ChatResponse | LLMError]:
    """Every reply in request order, a failed request as its :class:`LLMError` (after the client's retries).

    Uses the client's thread pool when it has one (:class:`convrec.llm.LLMClient`), else asks in turn. An
    :class:`LLMUnavailableError` (the endpoint cannot serve at all) is raised, and so is any exception that
    is no LLM failure (a bug, Ctrl-C): only a failed call is reported per candidate.
    """
    many = getattr(llm, "complete_many", None)
    if many is not None:
        results = many(requests, max_workers=max_workers, return_exceptions=True)
    else:
        results = []
        for request in requests:
            try:
                results.append(llm.complete(request))
            except LLMUnavailableError:
                raise
            except LLMError as exc:
                results.append(exc)
    for result in results:
        if isinstance(result, LLMUnavailableError) or (
            isinstance(result, BaseException) and not isinstance(result, LLMError)
        ):
            raise result
    return results


class PointwiseReranker(Reranker):
    """One Yes/No question per candidate; candidates ordered by the fused score (see :mod:`fusion`)."""

    name = "pointwise"

    def __init__(
        self,
        llm: LLM,
        catalog: Catalog,
        options: PointwiseOptions | None = None,
        fusion_weight: float = 1.0,
        normalisation: Normalisation = "rank",
    ):
        super().__init__(fusion_weight)
        self.llm = llm
        self.catalog = catalog
        self.options = options or PointwiseOptions()
        self.normalisation = normalisation

    def requests(self, sample: ContextView, candidates: Sequence[str]) -> list[ChatRequest]:
        """One request per candidate; they differ only after the shared prefix (dialogue + question)."""
        prefix = pointwise_prefix(sample, self.options.prompt)
        return [
            ChatRequest(
                messages=pointwise_messages(prefix, self.catalog.get(item_id), self.options.prompt),
                max_tokens=1,
                temperature=0.0,
                logprobs=True,
                top_logprobs=self.options.top_logprobs,
            )
            for item_id in candidates
        ]

    def llm_scores(self, sample: ContextView, candidates: Sequence[str]) -> tuple[np.ndarray, RerankDiagnostics]:
        """(K,) P(Yes) per candidate (0.5 where the answer had neither word or the call failed)."""
        diagnostics = RerankDiagnostics()
        if not candidates:
            return np.zeros(0), diagnostics
        responses = complete_all(self.llm, self.requests(sample, candidates), self.options.max_workers)
        diagnostics.count_responses(responses)
        scores = np.full(len(candidates), NEUTRAL)
        errors = []
        for position, response in enumerate(responses):
            if isinstance(response, LLMError):
                errors.append(response)
                continue
            probability = yes_probability(response)
            if probability is None:
                diagnostics.neutral_scores += 1
                diagnostics.unusable_replies += 1
            else:
                scores[position] = probability
        if len(errors) == len(candidates):
            diagnostics.fallback = f"every LLM call failed ({type(errors[0]).__name__}: {errors[0]})"[:300]
        elif diagnostics.neutral_scores + len(errors) == len(candidates):
            diagnostics.fallback = "no answer had Yes or No among the first token's alternatives"
        return scores, diagnostics

    def rerank(self, sample: ContextView, candidates: Sequence[str], retriever_scores: np.ndarray) -> Ranking:
        started = time.monotonic()
        retriever_scores = np.asarray(retriever_scores, dtype=np.float64)
        if retriever_scores.shape != (len(candidates),):
            raise ValueError(f"{len(candidates)} candidates but retriever_scores of shape {retriever_scores.shape}")
        llm, diagnostics = self.llm_scores(sample, candidates)
        if diagnostics.fallback is not None:
            llm = np.full(len(candidates), NEUTRAL)  # constant: the retriever's order decides
        order, fused = fused_order(retriever_scores, llm, self.fusion_weight, self.normalisation)
        diagnostics.latency_s = time.monotonic() - started
        return Ranking(tuple(candidates[i] for i in order), fused[order], llm[order], diagnostics)
