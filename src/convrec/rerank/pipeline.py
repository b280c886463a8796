"""``rar``: RAR's two stages as one recommender, a retriever's top-K re-ranked by a frozen LLM.

``score()`` returns what every recommender returns, a full-catalogue matrix, so each metric and protocol
of the harness works unchanged: the retriever's scores, with the K candidates lifted above every other
item in the re-ranker's order. Only candidates are re-ordered and every candidate is a catalogue item, so
nothing outside the catalogue can be recommended; :meth:`RAR.score` checks it for every sample.

The fusion weight between retriever and LLM is a number, or ``"valid"``: chosen by NDCG@10 on a seeded
subset of the validation split (never test). On CPU the LLM is the bottleneck (pointwise with
Qwen2.5-Coder-1.5B, per candidate: about 0.4 s on two free cores, 5-7 s with one thread on a core shared
with training), so ``max_samples`` asks the evaluation to use a seeded subset of the split; the result file
then says so. The same subset is drawn by ``convrec eval --limit N --seed S`` for any other recommender
(the retriever alone, say), and ``fusion_weight = 0`` reproduces the retriever's order from cached calls.

An LLM that cannot serve stops the run with exit code 2 rather than leaving a row of the retriever's order
under RAR's name: a dead endpoint at its first request the cache cannot answer (:mod:`convrec.llm.client`),
or more calls without a reply than ``max_transport_failure_share`` allows. Replies that came back unusable
(quality failures) only cost that sample its re-ranking; both shares are in the result and its table.

The default retriever is ``ease`` because it needs no training run; RAR's own is ``lrurec`` /
``lrurec-text`` (``--set retriever=lrurec-text --checkpoint runs/lrurec-text-redial``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field
from tqdm import tqdm

from convrec.catalog.items import Catalog
from convrec.catalog.vocabulary import Domain, domain_for
from convrec.data.dataset import Split
from convrec.data.model import ContextView
from convrec.errors import ConfigError
from convrec.llm import LLM, LLMConfig
from convrec.llm.affinity import affinity
from convrec.llm.errors import LLMUnavailableError
from convrec.rerank.fusion import DEFAULT_GRID, FusionChoice, Normalisation, choose_weight
from convrec.rerank.listwise import ListwiseOptions, ListwiseReranker
from convrec.rerank.pointwise import PointwiseOptions, PointwiseReranker
from convrec.rerank.stats import RunStats
from convrec.rerank.types import Ranking, Reranker
from convrec.resources import Resources
from convrec.retrieval.base import (
    Recommender,
    RecommenderConfig,
    build_recommender,
    recommender_class,
    register,
    top_candidates,
)
from convrec.trace import Stage, TraceRecord, brief_list

Weight = Annotated[float, Field(ge=0.0, le=1.0)]
MIN_CALLS_JUDGED = 100  # mid-run, transport failures are judged as a share of at least this many calls


def default_llm_cache() -> Path:
    """``$CONVREC_CACHE_DIR/llm/responses.sqlite`` (default ``~/.cache/convrec``): reruns cost nothing."""
    return Resources.from_env().llm_cache_path


def with_default_cache(llm: LLMConfig, enabled: bool = True, resources: Resources | None = None) -> LLMConfig:
    """``llm`` caching in ``resources``' LLM cache (default :func:`default_llm_cache`) when ``enabled`` and it
    names no cache of its own."""
    if llm.cache_path is None and enabled:
        path = resources.llm_cache_path if resources is not None else default_llm_cache()
        return llm.model_copy(update={"cache_path": path})
    return llm


class RARConfig(RecommenderConfig):
    retriever: str = Field("ease", description="stage 1: any registered recommender (RAR uses lrurec/lrurec-text)")
    retriever_options: dict[str, Any] = Field({}, description="the retriever's own options")
    checkpoint: str | None = Field(None, description="a `convrec train` run dir for the retriever (lrurec, "
                                   "lrurec-text); passed on as its `checkpoint` option")
    k: int = Field(20, ge=1, description="candidates the LLM re-ranks")
    strategy: Literal["pointwise", "listwise"] = Field("pointwise", description="pointwise: P(Yes) per "
                                                       "candidate; listwise: the LLM orders all K titles")
    fusion_weight: Weight | Literal["valid"] = Field("valid", description="w in (1-w)*retriever + w*LLM, or "
                                                     "'valid': chosen by NDCG@10 on validation samples")
    fusion_grid: tuple[Weight, ...] = DEFAULT_GRID
    normalisation: Normalisation = Field("rank", description="of the retriever's K scores: rank or minmax")
    default_weight: Weight = Field(0.5, description="used for 'valid' when there is no validation split")
    valid_samples: int = Field(100, ge=1, description="seeded validation subset for choosing the weight "
                               "(costs valid_samples x k LLM calls pointwise, cached)")
    exclude_mentioned: bool = Field(False, description="draw candidates among items not yet mentioned (the "
                                    "dedup protocol excludes those from ranking anyway)")
    llm: LLMConfig = Field(LLMConfig(), description="the LLM; default local qwen2.5-coder-1.5b (e.g. --set "
                           "llm.model=smollm2-135m, or llm.backend=openai llm.model=... llm.base_url=...)")
    llm_cache: bool = Field(True, description="cache replies in $CONVREC_CACHE_DIR/llm/responses.sqlite "
                            "when llm.cache_path is not set")
    max_transport_failure_share: Weight = Field(
        0.05, description="fail the run (exit 2) when more than this share of its LLM calls got no reply "
        "(transport failures: endpoint unreachable, time-outs, HTTP errors, retries exhausted; checked after "
        "each batch, and during it once failures pass this share of 100 calls); unusable replies (quality "
        "failures) never fail it; the results table shows both shares")
    pointwise: PointwiseOptions = PointwiseOptions()
    listwise: ListwiseOptions = ListwiseOptions()
    max_samples: int | None = Field(None, ge=1, description="evaluate a seeded subset of this many samples "
                                    "(the LLM is slow on CPU); the result file records it")
    seed: int = Field(0, description="seed of the evaluation and validation subsets")


@register
class RAR(Recommender):
    """RAR two-stage: a retriever's top-k candidates re-ranked by a frozen LLM (pointwise or listwise)."""

    name = "rar"
    config_class = RARConfig
    config: RARConfig
    uses_resources = True

    def __init__(self, catalog: Catalog, config: RARConfig | None = None, llm: LLM | None = None, *,
                 resources: Resources | None = None):
        """``llm`` replaces the client of ``config.llm``, which is otherwise ``resources``' (one per config, so
        several rar share a model; ``resources`` None: :meth:`Resources.from_env`). The retriever gets
        ``resources`` too."""
        super().__init__(catalog, config)
        self.resources = resources or Resources.from_env()
        self._given_llm = llm
        self.llm_: LLM | None = None
        self.retriever_: Recommender | None = None
        self.reranker_: Reranker | None = None
        self.fusion_: dict[str, Any] = {}
        self.stats_ = RunStats()
        self.traces_: list[list[TraceRecord]] = []  # per sample of the last score() call

    # -- building ------------------------------------------------------------------------------------
    def fit(self, train: Split, valid: Split | None = None) -> None:
        options = dict(self.config.retriever_options)
        if self.config.checkpoint is not None:
            if "checkpoint" not in recommender_class(self.config.retriever).config_class.model_fields:
                raise ConfigError(f"rar: checkpoint {self.config.checkpoint} needs a retriever that loads one "
                                  f"(--set retriever=lrurec-text or lrurec), not {self.config.retriever!r}")
            options["checkpoint"] = self.config.checkpoint
        if self.config.retriever == self.name:
            raise ConfigError("rar cannot use itself as its retriever: --set retriever=NAME of another one")
        self.retriever_ = build_recommender(self.config.retriever, self.catalog, options, resources=self.resources)
        # The LLM before the retriever's fit: a missing model or API key fails before any work.
        self.llm_ = self._given_llm or self.resources.llm(self._llm_config())
        self.retriever_.fit(train, valid)
        self.reranker_ = self._build_reranker(self.llm_, domain_for(train.dataset, self.catalog))
        if self.config.fusion_weight == "valid":
            self._choose_weight_on(valid)
        else:
            self.reranker_.fusion_weight = float(self.config.fusion_weight)
            self.fusion_ = {"weight": self.reranker_.fusion_weight, "chosen_on": "config"}
        self.reset_stats()

    def _llm_config(self) -> LLMConfig:
        return with_default_cache(self.config.llm, self.config.llm_cache, self.resources)

    def _build_reranker(self, llm: LLM, domain: Domain) -> Reranker:
        """The re-ranker, its prompts in the words of the dataset's ``domain`` (books are "written by") unless
        the config names a domain itself."""
        if self.config.strategy == "pointwise":
            options = _in_domain(self.config.pointwise, domain)
            return PointwiseReranker(llm, self.catalog, options, normalisation=self.config.normalisation)
        options = _in_domain(self.config.listwise, domain)
        return ListwiseReranker(llm, self.catalog, options, normalisation=self.config.normalisation)

    def _choose_weight_on(self, valid: Split | None) -> None:
        reranker = self._require_fitted()
        samples = valid.selection_samples if valid is not None else []
        if not samples:
            reranker.fusion_weight = self.config.default_weight
            self.fusion_ = {"weight": reranker.fusion_weight, "chosen_on": "default (no validation split given)"}
            return
        if len(samples) > self.config.valid_samples:
            samples = random.Random(self.config.seed).sample(samples, self.config.valid_samples)
        stats = RunStats()
        # The retriever and the LLM see each sample's context only; its target stays here, for the choice.
        views = [sample.view() for sample in samples]
        _, candidates, rankings = self._rerank(views, stats, "rar: LLM scores of validation samples")
        choice: FusionChoice = choose_weight(
            [scores for _, scores in candidates],
            [_aligned_llm_scores(ranking, ids) for ranking, (ids, _) in zip(rankings, candidates, strict=True)],
            [ids.index(s.target) if s.target in ids else None for s, (ids, _) in zip(samples, candidates, strict=True)],
            self.config.fusion_grid,
            self.config.normalisation,
        )
        reranker.fusion_weight = choice.weight
        self.fusion_ = {"chosen_on": "validation", **choice.to_json(), "validation_run": stats.to_json()}

    def _require_fitted(self) -> Reranker:
        if self.reranker_ is None or self.retriever_ is None:
            raise RuntimeError("rar: call fit() before score()")
        return self.reranker_

    # -- scoring -------------------------------------------------------------------------------------
    def candidates(self, samples: Sequence[ContextView], scores: np.ndarray) -> list[tuple[list[str], np.ndarray]]:
        """Per sample: the retriever's top-k item ids (best first, ties by catalogue order) and their scores."""
        exclude = [sample.context_items for sample in samples] if self.config.exclude_mentioned else None
        return [(c.item_ids, c.scores) for c in top_candidates(self.catalog, scores, self.config.k, exclude)]

    def _rerank(
        self, samples: Sequence[ContextView], stats: RunStats, description: str = "rar: re-ranking"
    ) -> tuple[np.ndarray, list[tuple[list[str], np.ndarray]], list[Ranking]]:
        """(retriever scores, candidates with their scores, rankings) for ``samples``; counts into ``stats``.

        Shows per-sample progress on a terminal: an LLM turn takes seconds, and the harness only counts
        whole batches. An interrupted run loses nothing it asked: every reply is in the LLM cache.
        """
        reranker = self._require_fitted()
        started = time.monotonic()
        retrieved = self.retriever_.score(samples)  # type: ignore[union-attr]
        retrieval_s = (time.monotonic() - started) / max(len(samples), 1)
        candidates = self.candidates(samples, retrieved)
        rankings = []
        progress = tqdm(total=len(samples), desc=description, unit="turn", leave=False, disable=None)
        for _sample, (ids, _scores), ranking in rerank_in_order(reranker, samples, candidates):
            progress.update()
            _check_grounded(ranking, ids, self.catalog)
            stats.add(ranking, retrieval_s, listwise=isinstance(reranker, ListwiseReranker))
            rankings.append(ranking)
            self._check_transport(stats, min_calls=MIN_CALLS_JUDGED)
        progress.close()
        self._check_transport(stats)
        return retrieved, candidates, rankings

    def _check_transport(self, stats: RunStats, min_calls: int = 0) -> None:
        """Stop the run when too many LLM calls got no reply: its numbers would be the retriever's order
        passed off as RAR's. ``min_calls``: judge as if at least this many calls had been made, so that
        mid-run a few early failures do not end a long run that would stay under the threshold."""
        limit = self.config.max_transport_failure_share
        if stats.failed_calls <= limit * max(stats.calls, min_calls):
            return
        first = stats.call_error_examples[0] if stats.call_error_examples else "no message"
        raise LLMUnavailableError(
            f"rar: {stats.failed_calls} of {stats.calls} LLM calls got no reply "
            f"({stats.failed_calls / stats.calls:.1%}, more than max_transport_failure_share={limit:g}); "
            f"the ranking would mostly be the retriever's own. First error: {first}",
            hint="check the LLM server (llm.base_url, llm.timeout_s, llm.max_retries); to accept more failed "
            "calls: --set max_transport_failure_share=0.2",
        )

    def score(self, samples: Sequence[ContextView]) -> np.ndarray:
        """(len(samples), len(catalog)) float32: retriever scores, candidates lifted above the rest in the
        re-ranked order."""
        retrieved, candidates, rankings = self._rerank(samples, self.stats_)
        out = np.array(retrieved, dtype=np.float32, copy=True)
        retrieval_s = self.stats_.retrieval_latency_s[-len(samples) :]
        self.traces_ = []
        for row, ranking in enumerate(rankings):
            started = time.monotonic()
            place_above(out[row], self.catalog.indices(ranking.item_ids))
            self.traces_.append(self._trace(samples[row], candidates[row][0], ranking, retrieval_s[row],
                                            time.monotonic() - started))
        return out

    def _trace(self, sample: ContextView, candidates: list[str], ranking: Ranking, retrieval_s: float,
               fuse_s: float) -> list[TraceRecord]:
        """One turn's records. The re-ranker mixes the K scores itself, so that (microseconds) is timed with
        ``rerank``; ``fuse`` times lifting the fused order above the rest of the catalogue."""
        def titles(ids: Sequence[str]) -> str:
            return brief_list([self.catalog.get(item_id).display_title for item_id in ids])

        diagnostics, weight = ranking.diagnostics, self._require_fitted().fusion_weight
        by_llm = [ranking.item_ids[i] for i in np.argsort(-ranking.llm_scores, kind="stable")]
        rerank_output = (f"{diagnostics.llm_calls} calls ({diagnostics.cache_hits} cached, "
                         f"{diagnostics.failed_calls} failed); "
                         + (f"fell back: {diagnostics.fallback}" if diagnostics.fallback else f"LLM's best: "
                            f"{titles(by_llm)}"))
        return [
            TraceRecord.of(Stage.RETRIEVE, f"turns so far: {sample.turn_index}; mentioned: "
                           f"{titles(list(dict.fromkeys(sample.context_items)))}",
                           f"{self.config.retriever}, top {len(candidates)}: {titles(candidates)}", retrieval_s),
            TraceRecord.of(Stage.RERANK, f"{len(candidates)} candidates, {self.config.strategy}", rerank_output,
                           diagnostics.latency_s),
            TraceRecord.of(Stage.FUSE, f"weight {weight:g} on the LLM, {self.config.normalisation}-normalised "
                           "retriever scores", f"final order: {titles(ranking.item_ids)}", fuse_s),
        ]

    # -- reporting -----------------------------------------------------------------------------------
    def reset_stats(self) -> None:
        """Start counting afresh (the evaluation calls this before each protocol)."""
        self.stats_ = RunStats()

    def evaluation_subset(self) -> tuple[int, int] | None:
        """(max_samples, seed) when this recommender asks to be evaluated on a seeded subset, else None."""
        return None if self.config.max_samples is None else (self.config.max_samples, self.config.seed)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "config": self.config.model_dump(mode="json"),
            "retriever": self.retriever_.describe() if self.retriever_ is not None else None,
            "llm": _describe_llm(self.llm_),
            "fusion": self.fusion_,
            "prompt_domain": self.reranker_.options.prompt.domain if self.reranker_ is not None else None,
            "run": self.stats_.to_json(),
        }


def _in_domain(options: PointwiseOptions | ListwiseOptions, domain: Domain) -> Any:
    if "domain" in options.prompt.model_fields_set:
        return options
    return options.model_copy(update={"prompt": options.prompt.model_copy(update={"domain": domain})})


def _describe_llm(llm: LLM | None) -> dict[str, Any] | None:
    """Which model answered (backend, weights identity) and, for a client, its usage since it was built."""
    if llm is None:
        return None
    wrapped = getattr(llm, "backend", None)
    backend = llm if isinstance(wrapped, str) or wrapped is None else wrapped  # a bare backend is its own
    usage = getattr(llm, "usage", None)
    return {
        "backend": getattr(backend, "backend", type(llm).__name__),
        "model": getattr(backend, "identity", None),
        "usage_since_built": usage.model_dump() if usage is not None else None,
    }


def place_above(row: np.ndarray, order: Sequence[int]) -> None:
    """In place: give the columns ``order`` (best first) scores above every other entry of ``row``.

    Steps of at least 1 (and 1e-3 of the largest magnitude) keep float32 scores distinct.
    """
    finite = row[np.isfinite(row)]
    base = float(finite.max()) if len(finite) else 0.0
    step = max(1.0, abs(base) * 1e-3)
    n = len(order)
    row[list(order)] = base + step * np.arange(n, 0, -1, dtype=np.float64)


def _aligned_llm_scores(ranking: Ranking, candidate_ids: Sequence[str]) -> np.ndarray:
    by_id = ranking.llm_scores_by_item()
    return np.asarray([by_id[item_id] for item_id in candidate_ids])


def rerank_in_order(reranker: Reranker, samples: Sequence[ContextView],
                    candidates: Sequence[tuple[list[str], np.ndarray]]):
    """``(sample, candidates, ranking)`` in sample order. When the LLM's backend works on several dialogues
    at once (Ray workers: ``parallel_contexts``), that many samples are re-ranked concurrently, each under its
    own affinity key so one worker answers all of a sample's requests (its prompt prefix stays cached there);
    otherwise one at a time, as :meth:`Reranker.rerank_many` explains. The rankings are the same either way."""
    parallel = int(getattr(getattr(reranker, "llm", None), "parallel_contexts", 1) or 1)
    pairs = list(zip(samples, candidates, strict=True))

    def one(index: int) -> Ranking:
        sample, (ids, scores) = pairs[index]
        with affinity(f"{sample.dialogue_id}:{index}"):
            return reranker.rerank(sample, ids, scores)

    if parallel <= 1 or len(pairs) <= 1:
        for index, (sample, pair) in enumerate(pairs):
            yield sample, pair, one(index)
        return
    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="convrec-rerank") as pool:
        for index, ranking in enumerate(pool.map(one, range(len(pairs)))):
            yield pairs[index][0], pairs[index][1], ranking


def _check_grounded(ranking: Ranking, candidates: Sequence[str], catalog: Catalog) -> None:
    """Stage 2 may only re-order the candidates, and every candidate is a catalogue item."""
    if sorted(ranking.item_ids) != sorted(candidates):
        raise AssertionError(
            f"re-ranker returned {list(ranking.item_ids)}, not a permutation of its candidates {list(candidates)}"
        )
    missing = [item_id for item_id in ranking.item_ids if item_id not in catalog]
    if missing:
        raise AssertionError(f"re-ranked items {missing} are not in catalogue '{catalog.name}'")
