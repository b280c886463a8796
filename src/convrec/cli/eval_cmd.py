"""``convrec eval``, ``convrec results`` and ``convrec recommenders``."""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from rich.console import Console

from convrec.cli.common import add_data_options, data_dir, mirror, parse_options
from convrec.data.load import load_dataset
from convrec.evaluate.experiment import load_experiment
from convrec.evaluate.paired import paired_differences
from convrec.evaluate.protocol import Protocol
from convrec.evaluate.report import (
    markdown_table,
    paired_markdown_table,
    plot_results,
    print_paired_table,
    print_table,
    update_readme,
)
from convrec.evaluate.runner import evaluate
from convrec.io import DataError, atomic_write, write_json
from convrec.rerank import pipeline as _rar  # noqa: F401  (registers the two-stage recommender `rar`)
from convrec.retrieval import RECOMMENDERS, build_recommender
from convrec.retrieval.base import item_counts

console = Console(stderr=True)

PROTOCOL_CHOICES = [p.value for p in Protocol] + ["both"]


def add_parsers(commands) -> None:
    ev = commands.add_parser(
        "eval", help="evaluate one recommender on one dataset split",
        description="Fit a recommender on the train split (validation for its hyper-parameters), rank the whole "
        "catalogue for every test sample and report Recall/NDCG@1,5,10,20,50, MRR (each with its standard error) "
        "and beyond-accuracy metrics under the named protocol.",
    )
    ev.add_argument("--dataset", required=True, help="redial, inspired, opendialkg-books, or an imported name")
    ev.add_argument("--recommender", required=True, help=f"one of: {', '.join(sorted(RECOMMENDERS))}")
    ev.add_argument("--split", default="test", choices=["valid", "test"], help="the split to evaluate (default test)")
    ev.add_argument("--protocol", default="standard", choices=PROTOCOL_CHOICES,
                    help="standard: all samples; dedup: target-in-context samples removed and context items "
                    "excluded from ranking; both (default standard)")
    ev.add_argument("--set", dest="options", action="append", metavar="KEY=VALUE",
                    help="a recommender option, e.g. --set l2=200 (repeatable; see `convrec recommenders`)")
    ev.add_argument("--checkpoint", type=Path, default=None,
                    help="a `convrec train` run directory to load (lrurec, lrurec-text) instead of training")
    ev.add_argument("--limit", type=int, default=None, help="evaluate a seeded random subset of this many samples")
    ev.add_argument("--seed", type=int, default=0, help="seed for subsets and tie-breaking (default 0)")
    ev.add_argument("--json", type=Path, default=None, metavar="OUT.json", help="write the result as JSON")
    ev.add_argument("--quiet", action="store_true", help="no progress bar")
    add_data_options(ev)
    ev.set_defaults(handler=run_eval)

    res = commands.add_parser(
        "results", help="reproduce a results table (default: the README's baseline table)",
        description="Run every recommender of an experiment file on its datasets and protocols, print the table, "
        "write JSON + Markdown, and optionally refresh the README's table.",
    )
    res.add_argument("--config", type=Path, default=None,
                     help="experiment TOML (default: the embedded defaults, same as configs/baselines.toml)")
    res.add_argument("--out", type=Path, default=Path("results"), help="output folder (default ./results)")
    res.add_argument("--datasets", nargs="+", default=None, metavar="NAME",
                     help="run only these of the experiment's datasets (e.g. while another dataset's runs are not "
                     "ready); the JSON, Markdown and README table then hold only them")
    res.add_argument("--update-readme", type=Path, default=None, metavar="README.md",
                     help="replace the table between this file's results markers")
    res.add_argument("--quiet", action="store_true", help="no progress bars")
    add_data_options(res)
    res.set_defaults(handler=run_results)

    rec = commands.add_parser("recommenders", help="list the recommenders and their options")
    rec.set_defaults(handler=run_recommenders)


def _stdout() -> Console:
    """A wide console when the output is a file or a pipe, so the table is not squeezed to 80 columns."""
    return Console() if sys.stdout.isatty() else Console(width=200)


def _protocols(value: str) -> list[Protocol]:
    return list(Protocol) if value == "both" else [Protocol(value)]


def evaluate_recommender(dataset, name: str, options: dict[str, Any], split: str, protocols: list[Protocol],
                         seed: int = 0, limit: int | None = None, progress: bool = True,
                         per_sample_out: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Fit once, evaluate under each protocol; returns result dicts (the JSON written to disk), and appends
    each protocol's per-sample metric values to ``per_sample_out`` when given (for paired differences).

    A recommender too slow for a whole split (an LLM on CPU) may ask for a seeded subset through an
    ``evaluation_subset() -> (max_samples, seed) | None`` method; ``limit`` (``--limit``) overrides it.
    Either way the result records the subset.
    """
    train, valid = dataset.split("train"), dataset.split("valid")
    samples = dataset.split(split).samples
    recommender = build_recommender(name, dataset.catalog, options)
    subset_seed, chosen_by = seed, "--limit"
    requested = getattr(recommender, "evaluation_subset", lambda: None)()
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
    counts = item_counts(train)
    results = []
    for protocol in protocols:
        if hasattr(recommender, "reset_stats"):  # per-protocol run statistics (e.g. LLM calls of rar)
            recommender.reset_stats()
        result = evaluate(recommender.score, samples, dataset.catalog, protocol, counts, dataset=dataset.name,
                          split=split, recommender=name, data_hash=dataset.fingerprint, seed=seed,
                          progress=progress)
        result.config = recommender.describe()  # after scoring: includes what the run measured
        result.extra = {"fit_seconds": round(fit_seconds, 2), **({"subset": subset} if subset else {})}
        results.append(result.to_json())
        if per_sample_out is not None:
            per_sample_out.append(result.per_sample)
    return results


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


def _note_subsets(results: list[dict[str, Any]]) -> None:
    """Say so whenever a number comes from a subset of the split rather than the whole of it."""
    noted = set()
    for r in results:
        subset = r.get("subset")
        if subset is None or (r["dataset"], r["recommender"]) in noted:
            continue
        noted.add((r["dataset"], r["recommender"]))
        console.print(f"[yellow]note[/yellow]: {r['recommender']} on {r['dataset']}: a seeded random subset of "
                      f"{subset['limit']} of {subset['of']} samples (seed {subset['seed']}, chosen by "
                      f"{subset['chosen_by']}), not the whole split")


def run_eval(args: argparse.Namespace) -> int:
    dataset = load_dataset(args.dataset, data_dir(args), mirror(args), progress=not args.quiet)
    options = parse_options(args.options)
    if args.checkpoint is not None:
        options["checkpoint"] = str(args.checkpoint)
    results = evaluate_recommender(dataset, args.recommender, options, args.split,
                                   _protocols(args.protocol), args.seed, args.limit, progress=not args.quiet)
    print_table(results, title=f"{args.recommender} on {args.dataset}/{args.split} (full catalogue)", console=_stdout())
    _note_subsets(results)
    if args.json:
        write_json(args.json, results[0] if len(results) == 1 else {"results": results})
        console.print(f"wrote {args.json}")
    return 0


def run_results(args: argparse.Namespace) -> int:
    experiment = load_experiment(args.config)
    if args.datasets:
        unknown = [name for name in args.datasets if name not in experiment.datasets]
        if unknown:
            raise DataError(f"--datasets {' '.join(unknown)}: not in the experiment's datasets "
                            f"({', '.join(experiment.datasets)})", args.config)
        experiment = experiment.model_copy(update={"datasets": list(dict.fromkeys(args.datasets))})
    results: list[dict[str, Any]] = []
    per_sample: list[dict[str, Any]] = []  # aligned with results
    for dataset_name in experiment.datasets:
        dataset = load_dataset(dataset_name, data_dir(args), mirror(args), progress=not args.quiet)
        for entry in experiment.recommenders:
            console.print(f"[bold]{entry.display}[/bold] on {dataset_name} ...")
            options = {key: value.format(dataset=dataset_name) if isinstance(value, str) else value
                       for key, value in entry.options.items()}  # e.g. run_dir = "results/runs/lrurec-{dataset}"
            for result in evaluate_recommender(dataset, entry.name, options, experiment.split,
                                               experiment.protocols, experiment.seed, experiment.limit,
                                               progress=not args.quiet, per_sample_out=per_sample):
                result["recommender"] = entry.display
                results.append(result)
    if experiment.baseline:
        add_paired_differences(results, per_sample, experiment.baseline, experiment.columns)
    results.sort(key=lambda r: (experiment.datasets.index(r["dataset"]), r["protocol"] != "standard"))
    print_table(results, title=f"{experiment.name}: {experiment.split} split, full catalogue", console=_stdout(),
                columns=experiment.columns)
    if experiment.baseline:
        print_paired_table(results, experiment.baseline, experiment.columns, console=_stdout())
    _note_subsets(results)
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / f"{experiment.name}.json", {"experiment": experiment.model_dump(mode="json"),
                                                       "results": results})
    table = markdown_table(results, experiment.columns)
    if experiment.baseline:
        table += "\n\n" + paired_markdown_table(results, experiment.baseline, experiment.columns)
    with atomic_write(args.out / f"{experiment.name}.md") as handle:
        handle.write(table + "\n")
    plot_results(results, args.out / f"{experiment.name}.png")
    console.print(f"wrote {experiment.name}.json, .md and .png (recall@10 with standard errors) in {args.out}")
    if args.update_readme:
        if update_readme(args.update_readme, experiment.name, table):
            console.print(f"updated the '{experiment.name}' table in {args.update_readme}")
        else:
            console.print(f"[yellow]no results markers for '{experiment.name}' in {args.update_readme}[/yellow]")
    return 0


def run_recommenders(args: argparse.Namespace) -> int:
    out = Console()
    for name in sorted(RECOMMENDERS):
        cls = RECOMMENDERS[name]
        summary = (cls.__doc__ or "").strip().splitlines() or [""]
        out.print(f"[bold]{name}[/bold]: {summary[0]}")
        for field, info in cls.config_class.model_fields.items():
            default = info.default.model_dump(mode="json") if isinstance(info.default, BaseModel) else info.default
            out.print(f"    {field} = {json.dumps(default, default=str)}  {info.description or ''}")
    return 0
