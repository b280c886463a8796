"""Paired differences: two recommenders scored on the same samples, compared sample by sample.

Two retrievers that share most of their top lists are strongly correlated per sample, so the standard error
of the mean per-sample difference is far smaller than the two unpaired errors a table shows side by side; it is
what says whether a small difference between two rows is real.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from convrec.evaluate.metrics import METRICS


def paired_differences(baseline: Mapping[str, np.ndarray], other: Mapping[str, np.ndarray],
                       metrics: Iterable[str]) -> dict[str, dict[str, float]]:
    """{metric: {"diff": mean(other - baseline), "stderr": SE of that mean, "n": samples used}} over the samples
    where both values are defined (head:/tail: metrics are NaN off their group). Corpus-level metrics (one
    value for the whole list set, e.g. coverage) have no per-sample difference and are left out."""
    out: dict[str, dict[str, float]] = {}
    for metric in metrics:
        base_metric = metric.split(":", 1)[-1]
        if getattr(METRICS.get(base_metric), "corpus_level", False) or metric not in baseline or metric not in other:
            continue
        a, b = np.asarray(baseline[metric], dtype=np.float64), np.asarray(other[metric], dtype=np.float64)
        if a.shape != b.shape:
            raise ValueError(f"{metric}: {a.shape[0]} vs {b.shape[0]} samples; a paired difference needs the same "
                             "samples under the same protocol")
        keep = ~np.isnan(a) & ~np.isnan(b)
        diff = b[keep] - a[keep]
        stderr = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else float("nan")
        out[metric] = {"diff": float(diff.mean()) if len(diff) else float("nan"), "stderr": stderr,
                       "n": int(len(diff))}
    return out


def add_paired_differences(results: list[dict[str, Any]], per_sample: list[dict[str, Any]], baseline: str,
                           columns: list[str]) -> None:
    """Each non-baseline result gains ``paired``: its per-sample difference from the baseline row of the same
    dataset and protocol (same samples), mean ± SE, for the table's columns."""
    base = {(r["dataset"], r["protocol"]): values for r, values in zip(results, per_sample, strict=True)
            if r["recommender"] == baseline}
    for result, values in zip(results, per_sample, strict=True):
        key = (result["dataset"], result["protocol"])
        if result["recommender"] != baseline and key in base:
            result["paired"] = {"baseline": baseline, "metrics": paired_differences(base[key], values, columns)}


def paired_bootstrap(system: np.ndarray, baseline: np.ndarray, clusters: Sequence[str], resamples: int = 2000,
                     seed: int = 0) -> tuple[float, float, float]:
    """The mean per-sample difference ``system - baseline`` and its 95% percentile interval over ``resamples``
    draws of the clusters (dialogues) with replacement, each bringing all its samples."""
    diff = np.asarray(system, dtype=np.float64) - np.asarray(baseline, dtype=np.float64)
    if diff.shape != (len(clusters),):
        raise ValueError(f"{len(diff)} differences for {len(clusters)} cluster labels")
    names = sorted(set(clusters))
    index = {name: k for k, name in enumerate(names)}
    label = np.asarray([index[c] for c in clusters])
    sums = np.bincount(label, weights=diff, minlength=len(names))
    counts = np.bincount(label, minlength=len(names)).astype(np.float64)
    draws = np.random.default_rng(seed).integers(0, len(names), size=(resamples, len(names)))
    means = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(diff.mean()), float(low), float(high)
