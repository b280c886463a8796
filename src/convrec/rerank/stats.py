"""What re-ranking cost over a run, for the evaluation's result file: latency, LLM calls, fallbacks, grounding.

One :class:`RunStats` per evaluated protocol (the pipeline resets it), so each result JSON describes the
run that produced its numbers.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from convrec.rerank.grounding import GroundingStats
from convrec.rerank.types import Ranking


def _reason_kind(reason: str) -> str:
    """"every LLM call failed (RetriesExhaustedError: ...)" -> "every LLM call failed": countable kinds."""
    return reason.split(" (", 1)[0]


@dataclass
class RunStats:
    """Totals over the re-ranked samples; latencies in seconds per sample (one dialogue turn)."""

    samples: int = 0
    llm_calls: int = 0
    cache_hits: int = 0
    failed_calls: int = 0
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    completion_tokens: int = 0
    neutral_scores: int = 0
    fallbacks: Counter = field(default_factory=Counter)
    rerank_latency_s: list[float] = field(default_factory=list)
    retrieval_latency_s: list[float] = field(default_factory=list)
    grounding: GroundingStats = field(default_factory=GroundingStats)

    def add(self, ranking: Ranking, retrieval_s: float = 0.0, listwise: bool = False) -> None:
        diagnostics = ranking.diagnostics
        self.samples += 1
        self.llm_calls += diagnostics.llm_calls
        self.cache_hits += diagnostics.cache_hits
        self.failed_calls += diagnostics.failed_calls
        self.prompt_tokens += diagnostics.prompt_tokens
        self.cached_prompt_tokens += diagnostics.cached_prompt_tokens
        self.completion_tokens += diagnostics.completion_tokens
        self.neutral_scores += diagnostics.neutral_scores
        if diagnostics.fallback is not None:
            self.fallbacks[_reason_kind(diagnostics.fallback)] += 1
        self.rerank_latency_s.append(diagnostics.latency_s)
        self.retrieval_latency_s.append(retrieval_s)
        if listwise:
            self.grounding.add(
                diagnostics.generated_titles,
                diagnostics.unmatched_titles,
                diagnostics.outside_candidates,
                diagnostics.duplicate_titles,
            )

    def to_json(self) -> dict[str, Any]:
        rerank = np.asarray(self.rerank_latency_s)
        total = rerank + np.asarray(self.retrieval_latency_s)

        def summary(values: np.ndarray) -> dict[str, float | None]:
            if len(values) == 0:
                return {"mean": None, "p50": None, "p90": None, "max": None}
            return {
                "mean": round(float(values.mean()), 4),
                "p50": round(float(np.percentile(values, 50)), 4),
                "p90": round(float(np.percentile(values, 90)), 4),
                "max": round(float(values.max()), 4),
            }

        n_fallbacks = sum(self.fallbacks.values())
        return {
            "samples": self.samples,
            "latency_s_per_turn": summary(total),
            "rerank_latency_s_per_turn": summary(rerank),
            "llm_calls": self.llm_calls,
            "llm_cache_hits": self.cache_hits,
            "llm_real_calls": self.llm_calls - self.cache_hits,
            "llm_failed_calls": self.failed_calls,
            "prompt_tokens": self.prompt_tokens,
            "prompt_tokens_from_prefix_cache": self.cached_prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "neutral_scores": self.neutral_scores,
            "fallbacks": n_fallbacks,
            "fallback_share": round(n_fallbacks / self.samples, 5) if self.samples else None,
            "fallback_reasons": dict(self.fallbacks.most_common(10)),
            "grounding": self.grounding.to_json() if self.grounding.replies else None,
        }
