"""What re-ranking cost over a run, for the evaluation's result file: latency, LLM calls, fallbacks, grounding.

One :class:`RunStats` per evaluated protocol (the pipeline resets it), so each result JSON describes the
run that produced its numbers.

LLM calls that went wrong are counted by kind, as shares of all calls (answered + failed): *transport*
failures got no reply at all (unreachable endpoint, time-outs, HTTP errors, retries exhausted) and say the
LLM was not really asked; *quality* failures got a reply that could not be used (pointwise: no Yes or No
among the first token's alternatives; listwise: no title naming a candidate) and say the model is weak.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from convrec.rerank.grounding import GroundingStats
from convrec.rerank.types import Ranking

MAX_ERROR_EXAMPLES = 5


def _rounded(share: float | None) -> float | None:
    return None if share is None else round(share, 5)


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
    unusable_replies: int = 0
    call_error_examples: list[str] = field(default_factory=list)
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
        self.unusable_replies += diagnostics.unusable_replies
        for error in diagnostics.call_errors:
            if len(self.call_error_examples) < MAX_ERROR_EXAMPLES and error not in self.call_error_examples:
                self.call_error_examples.append(error)
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

    @property
    def calls(self) -> int:
        """Every LLM call of the run: answered (cache hits included) or failed."""
        return self.llm_calls + self.failed_calls

    def transport_failure_share(self) -> float | None:
        """Failed calls (no reply) over all calls; None before the first call."""
        return self.failed_calls / self.calls if self.calls else None

    def quality_failure_share(self) -> float | None:
        """Unusable replies over all calls; None before the first call."""
        return self.unusable_replies / self.calls if self.calls else None

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
            "llm_transport_failure_share": _rounded(self.transport_failure_share()),
            "llm_unusable_replies": self.unusable_replies,
            "llm_quality_failure_share": _rounded(self.quality_failure_share()),
            "llm_call_error_examples": self.call_error_examples,
            "prompt_tokens": self.prompt_tokens,
            "prompt_tokens_from_prefix_cache": self.cached_prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "neutral_scores": self.neutral_scores,
            "fallbacks": n_fallbacks,
            "fallback_share": round(n_fallbacks / self.samples, 5) if self.samples else None,
            "fallback_reasons": dict(self.fallbacks.most_common(10)),
            "grounding": self.grounding.to_json() if self.grounding.replies else None,
        }
