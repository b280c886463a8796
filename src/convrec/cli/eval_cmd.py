"""``convrec eval``, ``convrec results`` and ``convrec recommenders``."""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from rich.console import Console

from convrec.cli.common import (
    add_data_options,
    check_output_dir,
    check_output_file,
    check_positive,
    data_dir,
    mirror,
    parse_options,
)
from convrec.data.load import available_datasets, load_dataset
from convrec.errors import ConfigError, DataError, OutputPathError
from convrec.evaluate.experiment import ResultsExperiment, load_experiment
from convrec.evaluate.paired import paired_differences
from convrec.evaluate.protocol import Protocol
from convrec.evaluate.report import (
    README_END,
    README_START,
    markdown_table,
    paired_markdown_table,
    plot_results,
    print_paired_table,
    print_table,
    update_readme,
)
from convrec.evaluate.runner import evaluate
from convrec.io import atomic_write, write_json
from convrec.rerank import pipeline as _rar  # noqa: F401  (registers the two-stage recommender `rar`)
from convrec.retrieval import RECOMMENDERS, build_recommender
from convrec.retrieval.base import item_counts, recommender_class

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
    if not samples:
        raise DataError(f"dataset {dataset.name!r} has no {split} samples to evaluate (no dialogue of split "
                        f"{split!r} recommends an item)")
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


def _check_eval_arguments(args: argparse.Namespace) -> None:
    """Everything about the arguments that can be known before loading data and fitting: checked first."""
    check_positive(args.limit, "--limit")
    if args.seed < 0:
        raise ConfigError(f"--seed must be a non-negative integer, got {args.seed}")
    if args.json is not None:
        check_output_file(args.json, "--json")
    recommender = recommender_class(args.recommender)  # a typo fails before the dataset loads
    if args.checkpoint is not None and "checkpoint" not in recommender.config_class.model_fields:
        loaders = sorted(n for n, cls in RECOMMENDERS.items() if "checkpoint" in cls.config_class.model_fields)
        raise ConfigError(f"--checkpoint: recommender {args.recommender!r} does not load checkpoints; "
                          f"{', '.join(loaders)} do")


def run_eval(args: argparse.Namespace) -> int:
    _check_eval_arguments(args)
    dataset = load_dataset(args.dataset, data_dir(args), mirror(args), progress=not args.quiet)
    options = parse_options(args.options)
    if args.checkpoint is not None:
        options["checkpoint"] = str(args.checkpoint)
    results = evaluate_recommender(dataset, args.recommender, options, args.split,
                                   _protocols(args.protocol), args.seed, args.limit, progress=not args.quiet)
    print_table(results, title=f"{args.recommender} on {args.dataset}/{args.split} (full catalogue)", console=_stdout())
    _note_subsets(results)
    if args.json:
        write_json(args.json, without_nan(results[0] if len(results) == 1 else {"results": results}))
        console.print(f"wrote {args.json}")
    return 0


def _check_results_arguments(args: argparse.Namespace, experiment: ResultsExperiment) -> ResultsExperiment:
    """The experiment (restricted to ``--datasets``) once every argument and entry it names is known to be usable:
    a typo must not surface after hours of runs, nor a result be lost for want of a writable place."""
    where = f"{args.config}" if args.config else "the default experiment"
    if args.datasets:
        unknown = [name for name in args.datasets if name not in experiment.datasets]
        if unknown:
            raise ConfigError(f"--datasets {' '.join(unknown)}: not among the datasets of {where} "
                              f"({', '.join(experiment.datasets)})")
        experiment = experiment.model_copy(update={"datasets": list(dict.fromkeys(args.datasets))})
    known = available_datasets(data_dir(args))
    for name in experiment.datasets:
        if name not in known:
            raise ConfigError(f"{where}: dataset {name!r} is neither bundled nor imported in {data_dir(args)} "
                              f"(known: {', '.join(known)})")
    for number, entry in enumerate(experiment.recommenders, start=1):
        if entry.name not in RECOMMENDERS:
            raise ConfigError(f"{where}: recommenders entry {number} ({entry.display}): unknown recommender "
                              f"{entry.name!r}; choose one of {', '.join(sorted(RECOMMENDERS))}")
    check_output_dir(args.out, "--out")
    if args.update_readme is not None:
        _check_readme(args.update_readme, experiment.name)
    return experiment


def _check_readme(readme: Path, name: str) -> None:
    """``--update-readme``: an existing, writable text file that holds the markers of this experiment's table."""
    try:
        text = readme.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else err
        raise OutputPathError(f"--update-readme {readme}: cannot be read ({reason})") from None
    check_output_file(readme, "--update-readme")
    start, end = README_START.format(name=name), README_END.format(name=name)
    if start not in text or end not in text:
        raise ConfigError(f"--update-readme {readme}: no markers for the table '{name}'; put the lines "
                          f"{start} and {end} where the table goes")


def run_results(args: argparse.Namespace) -> int:
    experiment = _check_results_arguments(args, load_experiment(args.config))
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
    write_json(args.out / f"{experiment.name}.json", without_nan({"experiment": experiment.model_dump(mode="json"),
                                                                   "results": results}))
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
        else:  # checked before the runs: the file was edited meanwhile
            raise OutputPathError(f"--update-readme {args.update_readme}: its markers for '{experiment.name}' "
                                  f"went away during the run; the table is in {args.out / experiment.name}.md")
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
