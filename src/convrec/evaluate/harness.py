"""The evaluation harness as a function: fit a recommender once on a dataset, evaluate it under each protocol,
and return the result records that ``convrec eval`` and ``convrec results`` write (and any script may call).
"""

from __future__ import annotations

import math
import random
import time
from typing import Any

from convrec.data.dataset import CRSDataset
from convrec.errors import DataError
from convrec.evaluate.protocol import Protocol
from convrec.evaluate.provenance import provenance
from convrec.evaluate.runner import evaluate
from convrec.resources import Resources
from convrec.retrieval.base import CountsRunStats, EvaluatesSubset, build_recommender, item_counts


def evaluate_recommender(dataset: CRSDataset, name: str, options: dict[str, Any], split: str, protocols: list[Protocol],
                         seed: int = 0, limit: int | None = None, progress: bool = True,
                         per_sample_out: list[dict[str, Any]] | None = None, *,
                         resources: Resources | None = None) -> list[dict[str, Any]]:
    """Fit once, evaluate under each protocol; returns result dicts (the JSON written to disk), and appends
    each protocol's per-sample metric values to ``per_sample_out`` when given (for paired differences).
    ``resources`` are the recommender's shared encoders, LLM clients and caches (None: from the environment);
    the caller closes them.

    A recommender too slow for a whole split (an LLM on CPU) may ask for a seeded subset by implementing
    :class:`~convrec.retrieval.base.EvaluatesSubset`; ``limit`` (``--limit``) overrides it.
    Either way the result records the subset.
    """
    train, valid = dataset.split("train"), dataset.split("valid")
    samples = dataset.split(split).samples
    if not samples:
        raise DataError(f"dataset {dataset.name!r} has no {split} samples to evaluate (no dialogue of split "
                        f"{split!r} recommends an item)")
    recommender = build_recommender(name, dataset.catalog, options, resources=resources)
    subset_seed, chosen_by = seed, "--limit"
    requested = recommender.evaluation_subset() if isinstance(recommender, EvaluatesSubset) else None
    if limit is None and requested is not None:
        (limit, subset_seed), chosen_by = requested, f"the recommender's max_samples option ({name})"
    subset = None
    if limit is not None and limit < len(samples):
        samples = random.Random(subset_seed).sample(samples, limit)
        subset = {"limit": limit, "seed": subset_seed, "of": len(dataset.split(split).samples),
                  "chosen_by": chosen_by}
    started = time.perf_counter()
    recommender.fit(train, valid if split != "valid" else None)
    fit_seconds = time.perf_counter() - started
    recorded = provenance(recommender.describe())  # once fitted: the checkpoint files as they were loaded
    counts = item_counts(train)
    results = []
    for protocol in protocols:
        if isinstance(recommender, CountsRunStats):  # per-protocol run statistics (e.g. LLM calls of rar)
            recommender.reset_stats()
        result = evaluate(recommender.score, samples, dataset.catalog, protocol, counts, dataset=dataset.name,
                          split=split, recommender=name, data_hash=dataset.fingerprint, seed=seed,
                          progress=progress)
        result.config = recommender.describe()  # after scoring: includes what the run measured
        result.extra = {"fit_seconds": round(fit_seconds, 2), **({"subset": subset} if subset else {}),
                        "provenance": recorded}
        results.append(result.to_json())
        if per_sample_out is not None:
            per_sample_out.append(result.per_sample)
    return results


def without_nan(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by None, so that the JSON written is valid JSON: a
    metric can be undefined legitimately (head/tail metrics when no target falls in that group, a standard
    error of one sample), and JSON has no NaN (Python's json would write a bare ``NaN`` that strict parsers
    refuse). None reads as "undefined" (null)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: without_nan(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [without_nan(item) for item in value]
    return value
