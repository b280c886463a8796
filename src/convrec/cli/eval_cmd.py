"""``convrec eval``, ``convrec results`` and ``convrec recommenders``.

``convrec results`` runs an experiment's rows (dataset x recommender x protocol) offline, or, for an experiment
with a ``[simulation]`` table, as ``convrec simulate`` runs: :func:`_entry_rows` is the one place that tells the
two apart; the loop, the tables, the paired differences, the files and the README update are shared. This
module may import both ``evaluate`` and ``simulate`` (``evaluate`` cannot import ``simulate``, which imports it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from rich.console import Console

from convrec.cli.common import (
    add_data_options,
    add_ray_options,
    check_output_dir,
    check_output_file,
    check_positive,
    data_dir,
    mirror,
    parse_options,
    ray_settings,
)
from convrec.data.dataset import CRSDataset
from convrec.data.load import available_datasets, load_dataset
from convrec.errors import ConfigError, OutputPathError
from convrec.evaluate.experiment import (
    RecommenderEntry,
    ResultsExperiment,
    load_experiment,
)
from convrec.evaluate.harness import evaluate_recommender, without_nan
from convrec.evaluate.paired import (
    PerSampleValues,
    Ratio,
    SampleValues,
    add_dataset_differences,
    add_paired_differences,
)
from convrec.evaluate.protocol import Protocol
from convrec.evaluate.report import (
    README_END,
    README_START,
    dataset_paired_markdown_table,
    markdown_table,
    paired_markdown_table,
    plot_results,
    print_paired_table,
    print_table,
    update_readme,
)
from convrec.io import atomic_write, write_json
from convrec.resources import Resources
from convrec.retrieval import RECOMMENDERS
from convrec.retrieval.base import recommender_class
from convrec.simulate.episode import EpisodeRecord
from convrec.simulate.metrics import interactive_metrics, pooled_ratios, rank_agreement
from convrec.simulate.runner import SimulationConfig, build_system, check_system_kind, simulate

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
    add_ray_options(ev, "rar")
    add_data_options(ev)
    ev.set_defaults(handler=run_eval)

    res = commands.add_parser(
        "results", help="reproduce a results table (default: the baselines, docs/results/baselines.md)",
        description="Run every recommender of an experiment file on its datasets and protocols, print the table, "
        "write JSON + Markdown, and optionally refresh the table in a Markdown page (docs/results/NAME.md).",
    )
    res.add_argument("--config", type=Path, default=None,
                     help="experiment TOML (default: the embedded defaults, same as configs/baselines.toml)")
    res.add_argument("--out", type=Path, default=Path("results"), help="output folder (default ./results)")
    res.add_argument("--datasets", nargs="+", default=None, metavar="NAME",
                     help="run only these of the experiment's datasets (e.g. while another dataset's runs are not "
                     "ready); the JSON, Markdown and page table then hold only them")
    res.add_argument("--update-readme", type=Path, default=None, metavar="FILE.md",
                     help="replace the table between this file's results markers")
    res.add_argument("--restart", action="store_true",
                     help="simulated experiments: play every episode again instead of resuming the transcripts in "
                     "OUT/NAME/transcripts (e.g. after changing a row's settings)")
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


def _note_subsets(results: list[dict[str, Any]]) -> None:
    """Say so whenever a number comes from a subset of the split rather than the whole of it (offline: ``limit``;
    simulated: fewer episodes than the protocol keeps)."""
    noted = set()
    for r in results:
        subset = r.get("subset")
        if subset is None or (r["dataset"], r["recommender"]) in noted:
            continue
        if "limit" in subset:
            what = (f"{subset['limit']} of {subset['of']} samples (seed {subset['seed']}, chosen by "
                    f"{subset['chosen_by']})")
        elif subset["episodes"] < subset["kept_by_protocol"]:
            what = f"{subset['episodes']} of {subset['kept_by_protocol']} samples as episodes (seed {subset['seed']})"
        else:
            continue
        noted.add((r["dataset"], r["recommender"]))
        console.print(f"[yellow]note[/yellow]: {r['recommender']} on {r['dataset']}: a seeded random subset of "
                      f"{what}, not the whole split")


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
    ray_settings(args)  # --ray-workers checked
    if args.ray_address is not None and "llm" not in recommender.config_class.model_fields:
        raise ConfigError(f"--ray-address: recommender {args.recommender!r} asks no LLM (rar does)")


def run_eval(args: argparse.Namespace) -> int:
    _check_eval_arguments(args)
    dataset = load_dataset(args.dataset, data_dir(args), mirror(args), progress=not args.quiet)
    options = parse_options([*(args.options or []), *ray_settings(args)])
    if args.checkpoint is not None:
        options["checkpoint"] = str(args.checkpoint)
    with Resources.from_env(data_dir=data_dir(args)) as resources:
        results = evaluate_recommender(dataset, args.recommender, options, args.split, _protocols(args.protocol),
                                       args.seed, args.limit, progress=not args.quiet, resources=resources)
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
        if experiment.simulation is not None:
            check_system_kind(experiment.simulation.system, entry.name,
                              f"{where}: recommenders entry {number} ({entry.display}): [simulation] system =")
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


def with_dataset(value: Any, name: str) -> Any:
    """``{dataset}`` in every string of an option value (nested tables and lists too) becomes ``name``."""
    if isinstance(value, str):
        return value.format(dataset=name)
    if isinstance(value, dict):
        return {key: with_dataset(item, name) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [with_dataset(item, name) for item in value]
    return value


def _entry_rows(experiment: ResultsExperiment, dataset: CRSDataset, entry: RecommenderEntry,
                args: argparse.Namespace, resources: Resources
                ) -> Iterator[tuple[dict[str, Any], SampleValues | PerSampleValues]]:
    """One recommender entry on one dataset: a result record per protocol with its per-sample values (for
    paired differences), evaluated offline, or simulated when the experiment has a ``[simulation]`` table."""
    options = with_dataset(entry.options, dataset.name)  # e.g. "results/runs/lrurec-{dataset}"
    if experiment.simulation is None:
        per_sample: list[dict[str, Any]] = []
        results = evaluate_recommender(dataset, entry.name, options, experiment.split, experiment.protocols,
                                       experiment.seed, experiment.limit, progress=not args.quiet,
                                       per_sample_out=per_sample, resources=resources)
        yield from zip(results, per_sample, strict=True)
        return
    system, fit_seconds = None, 0.0
    for protocol in experiment.protocols:
        try:
            config = experiment.simulation.config(dataset.name, entry.name, options, experiment.split, protocol,
                                                  experiment.seed, entry.episodes)
        except ValueError as err:
            raise ConfigError(f"recommenders entry {entry.display!r}: {err}") from None
        if system is None:  # fitted once for all protocols, as offline: the fit does not depend on the protocol
            started = time.perf_counter()
            system = build_system(config, dataset, resources)
            fit_seconds = time.perf_counter() - started
        transcripts = experiment.transcripts_path(args.out, dataset.name, entry, protocol)
        records: list[EpisodeRecord] = []
        result = simulate(config, dataset, system, transcripts=transcripts, restart=args.restart,
                          progress=not args.quiet, resources=resources, records_out=records)
        result["run"]["fit_seconds"] = round(fit_seconds, 2)
        if result.get("status") == "failed":
            console.print(f"[yellow]warning[/yellow]: {entry.display} on {dataset.name} ({protocol}): "
                          f"{result['failure']}")
        yield result, _episode_values(records, config)


def _episode_values(records: list[EpisodeRecord], config: SimulationConfig) -> SampleValues:
    """Every interactive metric's per-episode values, named by episode id (per-episode metrics as arrays, metrics
    pooled over turns as a numerator and denominator)."""
    _, _, values = interactive_metrics(records, config.turns)
    pooled = {name: Ratio(numerator, denominator) for name, (numerator, denominator) in pooled_ratios(records).items()}
    return SampleValues({**values, **pooled}, tuple(record.episode_id for record in records))


def _plot_metric(experiment: ResultsExperiment) -> str:
    """The metric the figure shows: recall@10 offline; simulated, success (or the first column)."""
    if experiment.simulation is None:
        return "recall@10"
    return "success" if "success" in experiment.columns else experiment.columns[0]


def run_results(args: argparse.Namespace) -> int:
    experiment = _check_results_arguments(args, load_experiment(args.config))
    results: list[dict[str, Any]] = []
    per_sample: list[SampleValues | PerSampleValues] = []  # aligned with results
    # One set for the whole experiment: its text retrievers share one encoder, its rar entries one LLM.
    with Resources.from_env(data_dir=data_dir(args)) as resources:
        for dataset_name in experiment.datasets:
            dataset = load_dataset(dataset_name, data_dir(args), mirror(args), progress=not args.quiet)
            for entry in experiment.recommenders:
                console.print(f"[bold]{entry.display}[/bold] on {dataset_name} ...")
                for result, values in _entry_rows(experiment, dataset, entry, args, resources):
                    result["recommender"] = entry.display
                    results.append(result)
                    per_sample.append(values)
    if experiment.baseline:
        add_paired_differences(results, per_sample, experiment.baseline, experiment.columns)
    if experiment.baseline_dataset:
        try:
            add_dataset_differences(results, per_sample, experiment.baseline_dataset, experiment.columns)
        except ValueError as err:
            raise ConfigError(f"{args.config}: {err}") from None
    results.sort(key=lambda r: (experiment.datasets.index(r["dataset"]), r["protocol"] != "standard"))
    title, samples = f"{experiment.name}: {experiment.split} split, full catalogue", "the same samples"
    if experiment.simulation is not None:
        settings = experiment.simulation
        title += (f", simulated with the {settings.user} user ({settings.turns} turns, slate {settings.slate}, "
                  f"system {settings.system})")
        samples = "the episodes both rows played"
    print_table(results, title=title, console=_stdout(), columns=experiment.columns)
    if experiment.baseline:
        print_paired_table(results, experiment.baseline, experiment.columns, console=_stdout(), samples=samples)
    _note_subsets(results)
    args.out.mkdir(parents=True, exist_ok=True)
    # does the interactive protocol order the systems as offline Recall@10 on the same episodes does?
    agreement = rank_agreement(results) if experiment.simulation is not None else {}
    write_json(args.out / f"{experiment.name}.json", without_nan({"experiment": experiment.model_dump(mode="json"),
                                                                   "results": results, "rank_agreement": agreement}))
    table = markdown_table(results, experiment.columns)
    if experiment.baseline:
        table += "\n\n" + paired_markdown_table(results, experiment.baseline, experiment.columns, samples)
    if experiment.baseline_dataset:
        across = dataset_paired_markdown_table(results, experiment.baseline_dataset, experiment.columns)
        table += "\n\n" + across
        console.print(across)
    if agreement:
        table += "\n\n" + _agreement_text(agreement)
        console.print(_agreement_text(agreement))
    with atomic_write(args.out / f"{experiment.name}.md") as handle:
        handle.write(table + "\n")
    metric = _plot_metric(experiment)
    plot_results(results, args.out / f"{experiment.name}.png", metric)
    console.print(f"wrote {experiment.name}.json, .md and .png ({metric} with standard errors) in {args.out}")
    if experiment.simulation is not None:
        console.print(f"transcripts (resumed by a rerun) in {args.out / experiment.name / 'transcripts'}")
    if args.update_readme:
        if update_readme(args.update_readme, experiment.name, table):
            console.print(f"updated the '{experiment.name}' table in {args.update_readme}")
        else:  # checked before the runs: the file was edited meanwhile
            raise OutputPathError(f"--update-readme {args.update_readme}: its markers for '{experiment.name}' "
                                  f"went away during the run; the table is in {args.out / experiment.name}.md")
    return 0


def _agreement_text(agreement: dict[str, dict[str, float | int]]) -> str:
    parts = [f"{key} Kendall tau {a['kendall_tau']:+.2f}, Spearman rho {a['spearman_rho']:+.2f} ({a['rows']} rows)"
             for key, a in agreement.items()]
    return ("Rank agreement of success with offline Recall@10 on the same episodes (first-turn Recall@10): "
            + "; ".join(parts) + ".")


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
