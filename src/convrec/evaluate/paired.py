"""Paired differences: two recommenders scored on the same samples, compared sample by sample.

Two retrievers that share most of their top lists are strongly correlated per sample, so the standard error
of the mean per-sample difference is far smaller than the two unpaired errors a table shows side by side; it is
what says whether a small difference between two rows is real.

**Which samples pair.** Offline, every row of a dataset and protocol is scored on the same samples in the same
order, so the values pair by position (a length mismatch is a bug, refused). Simulated (interactive) rows
carry their episode ids (:class:`SampleValues`), and pair by id on the episodes both played: a slow row run on
fewer episodes of the same seeded order is compared with the others on the ones it shares (``n`` says how many).

**Ratio metrics.** A metric pooled over turns (``turn_recall@10``, ``rejection_rate``: a sum over episodes
divided by a sum over episodes) is carried as a :class:`Ratio` of per-sample numerators and denominators. Its
paired difference is the difference of the two ratios on the shared samples, with the delta-method standard
error that treats each sample as a cluster (as :func:`convrec.simulate.metrics.ratio` does for one ratio).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from convrec.evaluate.metrics import METRICS


class Ratio(NamedTuple):
    """Per-sample numerator and denominator of a ratio-of-sums metric: its value is sum(numerator) /
    sum(denominator) over the samples."""

    numerator: np.ndarray
    denominator: np.ndarray


PerSampleValues = Mapping[str, np.ndarray | Ratio]


@dataclass(frozen=True)
class SampleValues:
    """One row's per-sample values of every metric; ``ids`` name the samples (episode ids), in the values' order.
    ``ids`` None: the row pairs by position (offline rows, scored on the same samples by construction)."""

    values: PerSampleValues
    ids: tuple[str, ...] | None = field(default=None)

    @staticmethod
    def of(value: SampleValues | PerSampleValues) -> SampleValues:
        return value if isinstance(value, SampleValues) else SampleValues(value)


def _matching(baseline: SampleValues, other: SampleValues) -> tuple[np.ndarray, np.ndarray] | None:
    """Index arrays that put the samples both rows hold side by side (in the baseline's order); None: by position."""
    if baseline.ids is None and other.ids is None:
        return None
    if baseline.ids is None or other.ids is None:
        raise ValueError("one row names its samples and the other does not; a paired difference needs both or "
                         "neither")
    where = {sample: k for k, sample in enumerate(other.ids)}
    shared = [(k, where[sample]) for k, sample in enumerate(baseline.ids) if sample in where]
    pick_base = np.array([k for k, _ in shared], dtype=np.int64)
    pick_other = np.array([k for _, k in shared], dtype=np.int64)
    return pick_base, pick_other


def shared_samples(baseline: SampleValues | PerSampleValues, other: SampleValues | PerSampleValues) -> int | None:
    """How many samples the two rows pair on; None when they pair by position (all of them)."""
    matched = _matching(SampleValues.of(baseline), SampleValues.of(other))
    return None if matched is None else len(matched[0])


def _mean_difference(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    keep = ~np.isnan(a) & ~np.isnan(b)
    diff = b[keep] - a[keep]
    stderr = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else float("nan")
    return {"diff": float(diff.mean()) if len(diff) else float("nan"), "stderr": stderr, "n": int(len(diff))}


def _ratio_difference(a: Ratio, b: Ratio) -> dict[str, float]:
    """R_b - R_a on the same samples; SE from the per-sample linearisation u_i = (x_bi - R_b d_bi) / D_b -
    (x_ai - R_a d_ai) / D_a, whose sum of squares times n / (n - 1) is the variance (clusters: the samples)."""
    n = len(a.numerator)
    total_a, total_b = a.denominator.sum(), b.denominator.sum()
    if n == 0 or total_a == 0 or total_b == 0:
        return {"diff": float("nan"), "stderr": float("nan"), "n": n}
    ratio_a, ratio_b = a.numerator.sum() / total_a, b.numerator.sum() / total_b
    influence = ((b.numerator - ratio_b * b.denominator) / total_b
                 - (a.numerator - ratio_a * a.denominator) / total_a)
    stderr = float(np.sqrt((influence ** 2).sum() * n / (n - 1))) if n > 1 else float("nan")
    return {"diff": float(ratio_b - ratio_a), "stderr": stderr, "n": n}


def paired_differences(baseline: SampleValues | PerSampleValues, other: SampleValues | PerSampleValues,
                       metrics: Iterable[str]) -> dict[str, dict[str, float]]:
    """{metric: {"diff": mean(other - baseline), "stderr": SE of that mean, "n": samples used}} over the samples
    both rows hold (by id when they name them, else by position) where both values are defined (head:/tail:
    metrics are NaN off their group). A :class:`Ratio` metric's diff is the difference of the two ratios on
    those samples. Corpus-level metrics (one value for the whole list set, e.g. coverage) have no per-sample
    difference and are left out, as are metrics either row lacks."""
    base, oth = SampleValues.of(baseline), SampleValues.of(other)
    matched = _matching(base, oth)
    out: dict[str, dict[str, float]] = {}
    for metric in metrics:
        base_metric = metric.split(":", 1)[-1]
        if (getattr(METRICS.get(base_metric), "corpus_level", False) or metric not in base.values
                or metric not in oth.values):
            continue
        a, b = base.values[metric], oth.values[metric]
        if isinstance(a, Ratio) != isinstance(b, Ratio):
            raise ValueError(f"{metric}: a ratio in one row and per-sample values in the other")
        parts_a = [np.asarray(x, dtype=np.float64) for x in (a if isinstance(a, Ratio) else (a,))]
        parts_b = [np.asarray(x, dtype=np.float64) for x in (b if isinstance(b, Ratio) else (b,))]
        if matched is None:
            if parts_a[0].shape != parts_b[0].shape:
                raise ValueError(f"{metric}: {parts_a[0].shape[0]} vs {parts_b[0].shape[0]} samples; a paired "
                                 "difference needs the same samples under the same protocol")
        else:
            parts_a = [x[matched[0]] for x in parts_a]
            parts_b = [x[matched[1]] for x in parts_b]
        if isinstance(a, Ratio):
            out[metric] = _ratio_difference(Ratio(*parts_a), Ratio(*parts_b))
        else:
            out[metric] = _mean_difference(parts_a[0], parts_b[0])
    return out


def add_paired_differences(results: list[dict[str, Any]], per_sample: Sequence[SampleValues | PerSampleValues],
                           baseline: str, columns: list[str]) -> None:
    """Each non-baseline result gains ``paired``: its per-sample difference from the baseline row of the same
    dataset and protocol, mean ± SE, for the table's columns, and ``n``: the samples the two rows share (all of
    them offline; the episodes both played, simulated)."""
    base = {(r["dataset"], r["protocol"]): values for r, values in zip(results, per_sample, strict=True)
            if r["recommender"] == baseline}
    for result, values in zip(results, per_sample, strict=True):
        key = (result["dataset"], result["protocol"])
        if result["recommender"] != baseline and key in base:
            shared = shared_samples(base[key], values)
            result["paired"] = {"baseline": baseline,
                                "n": result["n_samples"] if shared is None else shared,
                                "metrics": paired_differences(base[key], values, columns)}


def add_dataset_differences(results: list[dict[str, Any]], per_sample: Sequence[SampleValues | PerSampleValues],
                            baseline_dataset: str, columns: list[str]) -> None:
    """Each result on another dataset gains ``paired_dataset``: its per-sample difference from the same
    recommender and protocol on ``baseline_dataset``, for datasets that share their samples (the same
    dialogues and targets, in the same order, as redial-joined shares redial's): a larger catalogue's cost,
    sample by sample. A different sample count is refused: those datasets share no samples."""
    base = {(r["recommender"], r["protocol"]): (r, values) for r, values in zip(results, per_sample, strict=True)
            if r["dataset"] == baseline_dataset}
    for result, values in zip(results, per_sample, strict=True):
        key = (result["recommender"], result["protocol"])
        if result["dataset"] == baseline_dataset or key not in base:
            continue
        reference, reference_values = base[key]
        if reference.get("n_samples") != result.get("n_samples"):
            raise ValueError(f"{result['dataset']} and {baseline_dataset} do not share their samples "
                             f"({result.get('n_samples')} vs {reference.get('n_samples')} under {key[1]}): "
                             "baseline_dataset pairs datasets built on the same dialogues")
        shared = shared_samples(reference_values, values)
        result["paired_dataset"] = {"baseline_dataset": baseline_dataset,
                                    "n": result["n_samples"] if shared is None else shared,
                                    "metrics": paired_differences(reference_values, values, columns)}


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
