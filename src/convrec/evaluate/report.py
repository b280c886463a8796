"""Tables and files for evaluation results: a terminal table, a Markdown table, JSON."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from convrec.io import atomic_write

TABLE_METRICS = ("recall@1", "recall@10", "recall@50", "ndcg@10", "mrr", "coverage@10", "long_tail@10")
README_START = "<!-- results:{name}:start -->"
README_END = "<!-- results:{name}:end -->"


def _cell(result: dict[str, Any], metric: str, with_error: bool) -> str:
    value = result["metrics"].get(metric)
    if value is None:
        return "-"
    error = result["stderr"].get(metric, 0.0)
    return f"{value:.3f} ± {error:.3f}" if with_error and error else f"{value:.3f}"


def print_table(results: Sequence[dict[str, Any]], title: str = "", console: Console | None = None) -> None:
    table = Table(title=title or None, show_lines=False)
    for column in ("dataset", "protocol", "recommender", "n"):
        table.add_column(column)
    for metric in TABLE_METRICS:
        table.add_column(metric, justify="right")
    for r in results:
        table.add_row(r["dataset"], r["protocol"], r["recommender"], str(r["n_samples"]),
                      *(_cell(r, m, m in ("recall@10", "ndcg@10")) for m in TABLE_METRICS))
    (console or Console()).print(table)


def markdown_table(results: Sequence[dict[str, Any]]) -> str:
    header = ["dataset", "protocol", "recommender", "n", *TABLE_METRICS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in results:
        cells = [r["dataset"], r["protocol"], f"`{r['recommender']}`", str(r["n_samples"]),
                 *(_cell(r, m, m in ("recall@10", "ndcg@10")) for m in TABLE_METRICS)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


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
