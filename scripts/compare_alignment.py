"""Plot several alignment runs' per-round curves side by side (validation metrics of the retriever alone, and
the LLM's ranking of the target vs the retriever's own order on the sets that hold it), print the last round
of each and, with --cost, the per-round cost table (LLM requests, cache hits, model calls, seconds).

  python scripts/compare_alignment.py results/runs/lrurec-text-redial-{dpo,grpo,nll} \
      --out results/rar-align-redial-curves.png --title "ReDial" --cost
"""

from __future__ import annotations

import argparse
from pathlib import Path

from convrec.align.report import cost_markdown, load_history, plot_runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="alignment run dirs (convrec align --out)")
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    parser.add_argument("--title", default="")
    parser.add_argument("--cost", action="store_true", help="also print the per-round cost table (Markdown)")
    args = parser.parse_args()
    histories = {}
    for run in args.runs:
        rounds = load_history(run)
        label = run.name.rsplit("-", 1)[-1]  # lrurec-text-redial-dpo -> dpo
        histories[label] = rounds
        first, last = rounds[0], rounds[-1]
        print(f"{label:>5}: {last['round']} rounds, valid N@10 {first['valid_ndcg_at_10']:.4f} -> "
              f"{last['valid_ndcg_at_10']:.4f}, R@10 {first['valid_recall_at_10']:.4f} -> "
              f"{last['valid_recall_at_10']:.4f}, R@50 {first['valid_recall_at_50']:.4f} -> "
              f"{last['valid_recall_at_50']:.4f}")
    plot_runs(histories, args.out, args.title)
    print(f"wrote {args.out}")
    if args.cost:
        print(cost_markdown(histories), end="")


if __name__ == "__main__":
    main()
