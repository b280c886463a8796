"""Run any recommender over samples under a named protocol; it never knows what model it evaluates.

The recommender is handed each sample's :class:`~convrec.data.model.ContextView`, never the sample: the
target, the later turns and the dialogue's ``feedback`` stay here, with the harness.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from convrec import __version__
from convrec.catalog.items import Catalog
from convrec.data.model import ContextView, RecSample
from convrec.evaluate.metrics import (
    METRICS,
    RankedTargets,
    TopLists,
    known_metric_names,
    popularity_percentiles,
    ranked_targets,
    split_by_target_popularity,
    top_lists,
)
from convrec.evaluate.protocol import Protocol, mask_excluded, select_samples

ScoreFn = Callable[[Sequence[ContextView]], np.ndarray]


@dataclass
class EvalResult:
    dataset: str
    split: str
    protocol: str
    recommender: str
    n_samples: int
    n_items: int
    metrics: dict[str, float]
    stderr: dict[str, float]
    config: dict[str, Any] = field(default_factory=dict)
    data_hash: str = ""
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    # every metric's per-sample values (for paired comparisons); not written to JSON
    per_sample: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "split": self.split,
            "protocol": self.protocol,
            "protocol_description": Protocol(self.protocol).description,
            "recommender": self.recommender,
            "n_samples": self.n_samples,
            "n_items": self.n_items,
            "metrics": self.metrics,
            "stderr": self.stderr,
            "ties": "broken uniformly at random, in expectation (accuracy); by a seeded random order (lists)",
            "config": self.config,
            "data_hash": self.data_hash,
            "seconds": round(self.seconds, 2),
            "samples_per_second": round(self.n_samples / self.seconds, 1) if self.seconds else None,
            "convrec_version": __version__,
            **self.extra,
        }


def summarise(values: dict[str, np.ndarray], corpus_level: set[str]) -> tuple[dict[str, float], dict[str, float]]:
    means, errors = {}, {}
    for name, per_sample in values.items():
        finite = per_sample[~np.isnan(per_sample)]
        means[name] = float(finite.mean()) if len(finite) else float("nan")
        if name in corpus_level or len(finite) < 2:
            errors[name] = 0.0
        else:
            errors[name] = float(finite.std(ddof=1) / np.sqrt(len(finite)))
    return means, errors


def answered_not_liked(sample: RecSample, catalog: Catalog) -> frozenset[int] | None:
    """Catalogue positions of the items the sample's seeker said they did not like; None: no liked answers."""
    answers = sample.dialogue.feedback
    if not any(a.liked is not None for a in answers.values()):
        return None
    return frozenset(catalog.index_of[i] for i, a in answers.items() if a.liked is False and i in catalog.index_of)


def evaluate_scores(
    score_fn: ScoreFn,
    samples: Sequence[RecSample],
    catalog: Catalog,
    protocol: Protocol,
    train_counts: np.ndarray,
    batch_size: int = 256,
    seed: int = 0,
    progress: bool = True,
    description: str = "evaluating",
) -> tuple[dict[str, np.ndarray], int]:
    """Per-sample values of every registered metric for the samples the protocol keeps."""
    kept = select_samples(samples, protocol)
    rng = np.random.default_rng(seed)
    percentiles = popularity_percentiles(train_counts)
    genres = [item.genres() for item in catalog]
    greater, ties, lists, targets = [], [], [], []
    disliked: list[frozenset[int] | None] = []
    bar = tqdm(total=len(kept), desc=description, unit="sample", disable=not progress, leave=False)
    for start in range(0, len(kept), batch_size):
        batch = kept[start : start + batch_size]
        scores = np.array(score_fn([sample.view() for sample in batch]), dtype=np.float32, copy=True)
        if scores.shape != (len(batch), len(catalog)):
            raise ValueError(f"score() returned shape {scores.shape}, expected {(len(batch), len(catalog))}")
        scores[np.isnan(scores)] = -np.inf  # NaN ranks last in the lists too, as in ranked_targets
        mask_excluded(scores, batch, catalog, protocol)
        target_indices = np.asarray(catalog.indices(s.target for s in batch))
        ranked = ranked_targets(scores, target_indices)
        targets.append(target_indices)
        greater.append(ranked.greater)
        ties.append(ranked.ties)
        lists.append(top_lists(scores, rng))
        disliked += [answered_not_liked(sample, catalog) for sample in batch]
        bar.update(len(batch))
    bar.close()
    if not kept:
        return {name: np.zeros(0) for name in known_metric_names()}, 0
    # All batches together: coverage is a property of every list at once, not of one batch.
    ranked_all = RankedTargets(np.concatenate(greater), np.concatenate(ties), len(catalog))
    lists_all = TopLists(np.concatenate(lists), percentiles, genres, len(catalog), disliked)
    values = {
        name: metric.per_sample(ranked_all if metric.kind == "accuracy" else lists_all)
        for name, metric in METRICS.items()
    }
    values.update(split_by_target_popularity(values, percentiles[np.concatenate(targets)]))
    return values, len(kept)


def evaluate(
    score_fn: ScoreFn,
    samples: Sequence[RecSample],
    catalog: Catalog,
    protocol: Protocol,
    train_counts: np.ndarray,
    *,
    dataset: str,
    split: str,
    recommender: str,
    config: dict[str, Any] | None = None,
    data_hash: str = "",
    batch_size: int = 256,
    seed: int = 0,
    progress: bool = True,
) -> EvalResult:
    started = time.perf_counter()
    values, n = evaluate_scores(score_fn, samples, catalog, protocol, train_counts, batch_size, seed, progress,
                                description=f"{recommender} {dataset}/{split} {protocol}")
    corpus = {name for name, m in METRICS.items() if getattr(m, "corpus_level", False)}
    means, errors = summarise(values, corpus)
    return EvalResult(dataset, split, str(protocol), recommender, n, len(catalog), means, errors,
                      config or {}, data_hash, time.perf_counter() - started, per_sample=values)
