"""What a re-ranker returns (:class:`Ranking`) and the :class:`Reranker` interface (RAR stage 2).

A re-ranker only ever re-orders the candidates it was given: a :class:`Ranking` holds exactly those item
ids, so nothing outside the catalogue (or outside the retriever's top-K) can come out of stage 2. What
the LLM did on the way (calls, cache hits, fallbacks, titles it invented) travels with the ranking as
:class:`RerankDiagnostics`, so an evaluation can report it next to the accuracy.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from convrec.data.model import ContextView
from convrec.llm.types import ChatResponse


@dataclass
class RerankDiagnostics:
    """What one re-ranking cost and where it went wrong.

    ``llm_calls`` counts answered requests, ``cache_hits`` those answered by the response cache (free);
    tokens count generated replies only. ``failed_calls`` are requests that got no reply (transport
    failures: unreachable, time-outs, HTTP errors, retries exhausted), ``call_errors`` their messages.
    ``unusable_replies`` are quality failures: replies that came back but could not be used (pointwise: no
    Yes or No among the first token's alternatives; listwise: no title that names a candidate).
    ``fallback`` is None when the LLM's answer was used, else why the retriever's order was kept.
    ``neutral_scores``: pointwise answers with neither Yes nor No among the first token's alternatives
    (scored 0.5). ``cached_prompt_tokens``: of ``prompt_tokens``, those the backend reused from its prompt-prefix
    cache instead of reading them again. Listwise only: ``generated_titles`` as parsed from the reply, ``unmatched_titles`` that
    link to no catalogue item, ``outside_candidates`` that link to a catalogue item that is not a candidate,
    ``duplicate_titles`` that repeat a candidate already ranked. ``latency_s`` is wall time, seconds.
    """

    llm_calls: int = 0
    cache_hits: int = 0
    failed_calls: int = 0
    call_errors: list[str] = field(default_factory=list)
    unusable_replies: int = 0
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    completion_tokens: int = 0
    fallback: str | None = None
    neutral_scores: int = 0
    generated_titles: list[str] = field(default_factory=list)
    unmatched_titles: list[str] = field(default_factory=list)
    outside_candidates: list[str] = field(default_factory=list)
    duplicate_titles: list[str] = field(default_factory=list)
    latency_s: float = 0.0

    def count_responses(self, responses: Iterable[ChatResponse | BaseException]) -> None:
        """Add the calls, cache hits, failures and tokens of these replies (an exception is a failed call)."""
        for response in responses:
            if isinstance(response, BaseException):
                self.failed_calls += 1
                self.call_errors.append(f"{type(response).__name__}: {response}"[:300])
                continue
            self.llm_calls += 1
            if response.cached:
                self.cache_hits += 1
            else:
                self.prompt_tokens += response.prompt_tokens
                self.cached_prompt_tokens += response.cached_prompt_tokens
                self.completion_tokens += response.completion_tokens


@dataclass
class Ranking:
    """The candidates in their new order, best first, with the scores that ordered them.

    ``item_ids`` is a permutation of the candidates given to :meth:`Reranker.rerank`. ``scores`` (fused,
    see :mod:`convrec.rerank.fusion`) and ``llm_scores`` (the LLM's own score in [0, 1]) are aligned with
    ``item_ids``; ``scores`` is non-increasing.
    """

    item_ids: tuple[str, ...]
    scores: np.ndarray
    llm_scores: np.ndarray
    diagnostics: RerankDiagnostics = field(default_factory=RerankDiagnostics)

    def __post_init__(self) -> None:
        n = len(self.item_ids)
        if self.scores.shape != (n,) or self.llm_scores.shape != (n,):
            raise ValueError(
                f"a ranking of {n} items needs {n} scores and llm_scores, got shapes "
                f"{self.scores.shape} and {self.llm_scores.shape}"
            )
        if len(set(self.item_ids)) != n:
            raise ValueError(f"a ranking lists an item twice: {list(self.item_ids)}")

    def llm_scores_by_item(self) -> dict[str, float]:
        return dict(zip(self.item_ids, self.llm_scores.tolist(), strict=True))


class Reranker(ABC):
    """Re-orders a retriever's top-K candidates for one dialogue, using an LLM.

    ``fusion_weight`` w mixes the two opinions: fused = (1 - w) * normalised retriever score + w * LLM
    score (:func:`convrec.rerank.fusion.fuse`). It is an attribute, not part of a frozen config, because
    the pipeline chooses it on validation samples after the re-ranker is built.
    """

    name: str = "reranker"

    def __init__(self, fusion_weight: float = 1.0):
        self.fusion_weight = fusion_weight

    @abstractmethod
    def rerank(self, sample: ContextView, candidates: Sequence[str], retriever_scores: np.ndarray) -> Ranking:
        """Re-order ``candidates`` (catalogue item ids, the retriever's best first) for ``sample``.

        ``retriever_scores`` is (len(candidates),), aligned with ``candidates``. A failed LLM call or an
        unusable reply does not raise: the retriever's order is returned instead, with
        ``diagnostics.fallback`` saying why. Only :class:`~convrec.llm.errors.LLMUnavailableError` (the
        endpoint cannot serve at all) is raised, since falling back on every sample would pass off the
        retriever's order as the LLM's.
        """

    def rerank_many(
        self,
        samples: Sequence[ContextView],
        candidates: Sequence[Sequence[str]],
        retriever_scores: Sequence[np.ndarray],
    ) -> list[Ranking]:
        """One :class:`Ranking` per sample, in order.

        One sample at a time on purpose: a local model with one slot keeps the dialogue's prompt prefix in
        its cache only while consecutive requests share it, so interleaving samples would lose it.
        """
        if not len(samples) == len(candidates) == len(retriever_scores):
            raise ValueError(
                f"rerank_many needs one candidate list and one score vector per sample: got {len(samples)} "
                f"samples, {len(candidates)} candidate lists, {len(retriever_scores)} score vectors"
            )
        return [
            self.rerank(sample, cands, scores)
            for sample, cands, scores in zip(samples, candidates, retriever_scores, strict=True)
        ]
