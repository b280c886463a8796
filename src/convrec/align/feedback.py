"""The frozen LLM's feedback on a candidate set: the reward of RAR's alignment.

For one context (a dialogue so far, with its target item) and a candidate set sampled from the retriever, the
generator stage ranks the set; the reward is NDCG@k of the target in that ranking, 0 when the set misses the
target. With the pointwise strategy the LLM's opinion of an item depends only on (context, item), so:

- a set that misses the target needs no LLM call at all (its reward is 0 whatever the LLM says);
- each (context, item) score is asked once per run (``memo``) and once ever (the LLM client's SQLite cache),
  so re-ranking a new set of already-scored items costs nothing.

:class:`FeedbackCounts` says where every score came from, which is how a run reports the LLM calls it really
made. The ranking of a set is by LLM score alone (``weight`` 1, RAR's "ranking of the LLM's output"), or by
the same fusion with the retriever's scores that the two-stage recommender uses (``weight`` < 1); ties of the
LLM score keep the retriever's order.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel

from convrec.data.model import RecSample
from convrec.llm.affinity import affinity
from convrec.rerank.fusion import Normalisation, fused_order, ndcg_at
from convrec.rerank.pointwise import PointwiseReranker


class FeedbackCounts(BaseModel):
    """Where the scores behind the rewards came from (cumulative over a run).

    ``sets``: candidate sets rewarded; ``sets_with_target``: of those, the ones that needed the LLM.
    ``item_scores``: (context, item) scores read to rank them; ``memo_hits``: of those, already scored in this
    run; ``llm_requests``: the rest, sent to the LLM client, which answered ``cache_hits`` of them from its
    response cache and ``llm_calls`` by running the model; ``failed`` requests raised after the client's
    retries (``llm_requests = cache_hits + llm_calls + failed``) and score neutral (0.5) for the rest of the
    run, like answers with neither Yes nor No (``neutral``).
    """

    sets: int = 0
    sets_with_target: int = 0
    item_scores: int = 0
    memo_hits: int = 0
    llm_requests: int = 0
    cache_hits: int = 0
    llm_calls: int = 0
    failed: int = 0
    neutral: int = 0
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0

    def minus(self, earlier: FeedbackCounts) -> FeedbackCounts:
        """The counts since ``earlier`` (a copy taken before a round)."""
        mine, theirs = self.model_dump(), earlier.model_dump()
        return FeedbackCounts(**{key: mine[key] - theirs[key] for key in mine})


def context_key(sample: RecSample) -> str:
    """What a pointwise prompt depends on: the dialogue and the turn, not the target."""
    return f"{sample.dialogue_id}:{sample.turn_index}"


@dataclass
class SetReward:
    reward: float
    target_rank: int | None  # 0-based rank of the target in the LLM's ordering of the set; None: not in the set
    # 0-based rank of the target in the retriever's own ordering of the same set: the reward a ranker that
    # adds nothing would earn is ndcg_at(retriever_rank), so comparing the two says whether the LLM's
    # feedback carries information beyond "the target is in the set"
    retriever_rank: int | None = None


class LLMFeedback:
    """Rewards of candidate sets from a pointwise re-ranker (see the module docstring)."""

    def __init__(self, reranker: PointwiseReranker, reward_k: int = 10, weight: float = 1.0,
                 normalisation: Normalisation = "rank"):
        if reward_k < 1:
            raise ValueError(f"reward_k must be at least 1, got {reward_k}")
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"weight must be in [0, 1], got {weight}")
        self.reranker = reranker
        self.reward_k = reward_k
        self.weight = weight
        self.normalisation = normalisation
        self.memo: dict[tuple[str, str], float] = {}
        self.counts = FeedbackCounts()
        # (context key, the missing items asked) -> the LLM's answer being computed (prefetch)
        self._pending: dict[tuple[str, tuple[str, ...]], Future] = {}

    def item_scores(self, sample: RecSample, items: Sequence[str]) -> np.ndarray:
        """(len(items),) P(Yes) per item for this context, asking the LLM only for items not scored yet.

        The missing items are asked in one batch, so llama.cpp reads the shared dialogue prefix once."""
        key = context_key(sample)
        missing = list(dict.fromkeys(item for item in items if (key, item) not in self.memo))
        self.counts.item_scores += len(items)
        self.counts.memo_hits += len(items) - len(missing)
        if missing:
            pending = self._pending.pop((key, tuple(missing)), None)
            scores, diagnostics = pending.result() if pending is not None else self.reranker.llm_scores(sample,
                                                                                                           missing)
            self.counts.llm_requests += len(missing)
            self.counts.cache_hits += diagnostics.cache_hits
            self.counts.llm_calls += diagnostics.llm_calls - diagnostics.cache_hits
            self.counts.failed += diagnostics.failed_calls
            self.counts.neutral += diagnostics.neutral_scores
            self.counts.prompt_tokens += diagnostics.prompt_tokens
            self.counts.cached_prompt_tokens += diagnostics.cached_prompt_tokens
            for item, score in zip(missing, scores, strict=True):
                self.memo[(key, item)] = float(score)
        return np.asarray([self.memo[(key, item)] for item in items], dtype=np.float64)

    @staticmethod
    def needed_items(sample: RecSample, sets: Sequence[Sequence[str]]) -> list[str]:
        """The items whose LLM scores the rewards of ``sets`` need: those of the sets holding the target."""
        return list(dict.fromkeys(item for items in sets if sample.target in items for item in items))

    def prefetch(self, work: Sequence[tuple[RecSample, Sequence[Sequence[str]]]]) -> None:
        """Start asking for every context's missing scores at once when the LLM's backend works on several
        contexts in parallel (Ray workers: ``parallel_contexts``), one context per worker under its affinity
        key; :meth:`rewards`, called in order afterwards, takes each answer when it needs it. Memo, counts
        and rewards are then exactly those of asking one context at a time. A no-op for a local model."""
        parallel = int(getattr(self.reranker.llm, "parallel_contexts", 1) or 1)
        if parallel <= 1:
            return
        pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="convrec-feedback")
        planned: set[str] = set()
        for sample, sets in work:
            key = context_key(sample)
            missing = [item for item in self.needed_items(sample, sets) if (key, item) not in self.memo]
            if not missing or key in planned:  # a context seen twice is asked when its turn comes
                continue
            planned.add(key)

            def ask(sample: RecSample = sample, missing: list[str] = missing, key: str = key):
                with affinity(key):
                    return self.reranker.llm_scores(sample, missing)

            self._pending[(key, tuple(missing))] = pool.submit(ask)
        pool.shutdown(wait=False)

    def rewards(self, sample: RecSample, sets: Sequence[Sequence[str]],
                retriever_scores: Sequence[np.ndarray]) -> list[SetReward]:
        """The reward of each candidate set of one context. ``retriever_scores[g]`` are the retriever's scores
        of ``sets[g]``'s items (aligned): they break ties of the LLM score, and fuse with it when weight < 1."""
        if len(sets) != len(retriever_scores):
            raise ValueError(f"{len(sets)} sets but {len(retriever_scores)} score vectors")
        with_target = {g for g, items in enumerate(sets) if sample.target in items}
        needed = self.needed_items(sample, sets)
        if needed:  # every item that matters, in one batch: the dialogue prefix is read once
            self.item_scores(sample, needed)
        self.counts.sets += len(sets)
        self.counts.sets_with_target += len(with_target)
        key = context_key(sample)
        out = []
        for g, items in enumerate(sets):
            if g not in with_target:
                out.append(SetReward(0.0, None))
                continue
            llm = np.asarray([self.memo[(key, item)] for item in items], dtype=np.float64)
            retriever = np.asarray(retriever_scores[g], dtype=np.float64)
            order, _ = fused_order(retriever, llm, self.weight, self.normalisation)
            rank = int(np.flatnonzero(np.asarray(items)[order] == sample.target)[0])
            position = list(items).index(sample.target)
            retriever_rank = int((retriever > retriever[position]).sum())
            out.append(SetReward(ndcg_at(rank, self.reward_k), rank, retriever_rank))
        return out
