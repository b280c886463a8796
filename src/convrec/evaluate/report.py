"""Tables and files for evaluation results: a terminal table, a Markdown table, JSON.

A row is a result record of ``convrec eval`` (``n_samples``) or of ``convrec simulate`` (``n_episodes``, its
recommender's record nested under ``config.recommender``); the tables show either.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from convrec.io import atomic_write

TABLE_METRICS = ("recall@1", "recall@10", "recall@50", "ndcg@10", "mrr", "coverage@10", "long_tail@10")
WITH_ERROR = frozenset({"recall@10", "ndcg@10", "ndcg@5", "success"})  # columns shown with their standard error
# Shares of a run's LLM calls (rerank.stats.RunStats): no reply at all (transport), a reply that was unusable
# (quality); shown beside the metrics because either turns an LLM row into the retriever's order.
LLM_FAILURE_SHARES = ("llm_transport_failure_share", "llm_quality_failure_share")
LLM_FAILURE_COLUMNS = ("llm transport fail", "llm quality fail")
README_START = "<!-- results:{name}:start -->"
README_END = "<!-- results:{name}:end -->"


def _cell(result: dict[str, Any], metric: str, with_error: bool) -> str:
    value = result["metrics"].get(metric)
    if value is None:
        return "-"
    error = result["stderr"].get(metric, 0.0)
    return f"{value:.3f} ± {error:.3f}" if with_error and error else f"{value:.3f}"


def _n(result: dict[str, Any]) -> str:
    """The row's number of samples: offline, the samples scored; simulated, the episodes played."""
    return str(result["n_samples"] if "n_samples" in result else result["n_episodes"])


def _llm_failure_cells(result: dict[str, Any]) -> list[str]:
    """The shares of LLM calls that got no reply and that got an unusable one; "-" for a row without an LLM."""
    config = result.get("config") or {}
    run = config.get("run") or (config.get("recommender") or {}).get("run") or {}  # offline; simulated
    return ["-" if run.get(key) is None else f"{run[key]:.1%}" for key in LLM_FAILURE_SHARES]


def print_table(results: Sequence[dict[str, Any]], title: str = "", console: Console | None = None,
                columns: Sequence[str] = TABLE_METRICS) -> None:
    """One row per result; rows that used an LLM (``rar``) add their transport and quality failure shares."""
    with_llm = any(any(cell != "-" for cell in _llm_failure_cells(r)) for r in results)
    table = Table(title=title or None, show_lines=False)
    for column in ("dataset", "protocol", "recommender", "n"):
        table.add_column(column)
    for metric in columns:
        table.add_column(metric, justify="right")
    for column in LLM_FAILURE_COLUMNS if with_llm else ():
        table.add_column(column, justify="right")
    for r in results:
        table.add_row(r["dataset"], r["protocol"], r["recommender"], _n(r),
                      *(_cell(r, m, m in WITH_ERROR) for m in columns),
                      *(_llm_failure_cells(r) if with_llm else ()))
    (console or Console()).print(table)


def markdown_table(results: Sequence[dict[str, Any]], columns: Sequence[str] = TABLE_METRICS) -> str:
    header = ["dataset", "protocol", "recommender", "n", *columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in results:
        cells = [r["dataset"], r["protocol"], f"`{r['recommender']}`", _n(r),
                 *(_cell(r, m, m in WITH_ERROR) for m in columns)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _paired_rows(results: Sequence[dict[str, Any]], columns: Sequence[str], key: str = "paired") -> list[list[str]]:
    rows = []
    for r in results:
        paired = r.get(key, {}).get("metrics")
        if paired is None:
            continue
        cells = [f"{paired[m]['diff']:+.4f} ± {paired[m]['stderr']:.4f}" if m in paired else "-" for m in columns]
        rows.append([r["dataset"], r["protocol"], r["recommender"], str(r[key].get("n", _n(r))), *cells])
    return rows


def dataset_paired_markdown_table(results: Sequence[dict[str, Any]], baseline_dataset: str,
                                  columns: Sequence[str]) -> str:
    """Each row's per-sample difference from the same recommender on ``baseline_dataset`` (same samples)."""
    header = ["dataset", "protocol", "recommender", "n", *columns]
    lines = [f"Paired differences from the same recommender on `{baseline_dataset}`, on the same samples (mean ± "
             "standard error of the per-sample difference):", "", "| " + " | ".join(header) + " |",
             "|" + "---|" * len(header)]
    for row in _paired_rows(results, columns, key="paired_dataset"):
        row[2] = f"`{row[2]}`"
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def paired_markdown_table(results: Sequence[dict[str, Any]], baseline: str, columns: Sequence[str],
                          samples: str = "the same samples") -> str:
    """Each row's per-sample difference from ``baseline`` on ``samples`` (mean ± SE of the difference); n: how
    many samples the two rows share."""
    header = ["dataset", "protocol", f"minus `{baseline}`", "n", *columns]
    lines = [f"Paired differences from `{baseline}` on {samples} (mean ± standard error of the per-sample "
             "difference):", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in _paired_rows(results, columns):
        row[2] = f"`{row[2]}`"
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def print_paired_table(results: Sequence[dict[str, Any]], baseline: str, columns: Sequence[str],
                       console: Console | None = None, samples: str = "the same samples") -> None:
    table = Table(title=f"paired differences from {baseline} (on {samples}; mean ± SE)", show_lines=False)
    for column in ("dataset", "protocol", "recommender", "n"):
        table.add_column(column)
    for metric in columns:
        table.add_column(metric, justify="right")
    for row in _paired_rows(results, columns):
        table.add_row(*row)
    (console or Console()).print(table)


def update_readme(readme: Path, name: str, body: str) -> bool:
    """Replace the text between the result markers for ``name``; False if the markers are absent."""
    text = readme.read_text(encoding="utf-8")
    start, end = README_START.format(name=name), README_END.format(name=name)
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if not pattern.search(text):
        return False
    new = pattern.sub(lambda _: f"{start}\n{body}\n{end}", text)
    with atomic_write(readme) as handle:
        handle.write(new)
    return True


def plot_results(results: Sequence[dict[str, Any]], path: Path, metric: str = "recall@10") -> None:
    """Grouped bars of one metric with ±1 standard error: one panel per dataset, one bar per protocol."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(r["dataset"] for r in results))
    protocols = list(dict.fromkeys(r["protocol"] for r in results))
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 3.6), squeeze=False)
    width = 0.8 / max(len(protocols), 1)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        rows = [r for r in results if r["dataset"] == dataset]
        names = list(dict.fromkeys(r["recommender"] for r in rows))
        for offset, protocol in enumerate(protocols):
            by_name = {r["recommender"]: r for r in rows if r["protocol"] == protocol}
            xs = [i + (offset - (len(protocols) - 1) / 2) * width for i in range(len(names))]
            values = [by_name[n]["metrics"][metric] if n in by_name else 0.0 for n in names]
            errors = [by_name[n]["stderr"].get(metric, 0.0) if n in by_name else 0.0 for n in names]
            ax.bar(xs, values, width, yerr=errors, capsize=3, label=protocol)
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
        ax.set_title(f"{dataset} ({rows[0]['split']}, full catalogue)")
        ax.set_ylabel(f"{metric} ± s.e.")
        ax.legend(title="protocol", fontsize=8)
    fig.tight_layout()
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=120)
    plt.close(fig)
