"""``convrec simulate`` (interactive evaluation with a simulated user) and ``convrec simulate-validity``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from convrec.cli.common import (
    add_data_options,
    add_ray_options,
    check_output_file,
    check_positive,
    data_dir,
    mirror,
    parse_options,
    ray_settings,
)
from convrec.data.load import load_dataset
from convrec.errors import ConfigError
from convrec.evaluate.harness import without_nan
from convrec.evaluate.protocol import Protocol
from convrec.io import write_json
from convrec.resources import Resources
from convrec.retrieval import RECOMMENDERS
from convrec.retrieval.base import recommender_class
from convrec.simulate.runner import SimulationConfig, check_system_kind, simulate
from convrec.simulate.user import USERS, user_class
from convrec.simulate.validity import validity_report

console = Console(stderr=True)


def add_parser(commands) -> None:
    sim = commands.add_parser(
        "simulate", help="interactive evaluation: a simulated user with a hidden target talks to a recommender",
        description="Continue real test dialogues from a recommendation turn (iEvaLM's protocol): the system "
        "recommends, a simulated user with the recommended item as its hidden target accepts it or turns the slate "
        "down with a reason and states a preference, for up to --turns system turns. Reports success@t, Recall@1/10 "
        "per turn and per conversation, rejection rate and ask/recommend shares, each with its standard error; "
        "every transcript goes to a JSONL file that an interrupted run resumes from.",
    )
    sim.add_argument("--dataset", required=True, help="redial, inspired, opendialkg-books, or an imported name")
    sim.add_argument("--recommender", required=True, help=f"one of: {', '.join(sorted(RECOMMENDERS))}")
    sim.add_argument("--user", default="rule", choices=sorted(USERS),
                     help="rule (default): answers from the catalogue's metadata with templates; llm: the same goal "
                     "and plan worded by an LLM that makes its own accept / reject decision (local Qwen 2.5 1.5B by "
                     "default; --user-set llm.model=smollm2-135m, or llm.backend=openai llm.model=NAME "
                     "llm.base_url=URL for any OpenAI-compatible server)")
    sim.add_argument("--turns", type=int, default=5, help="system turns per episode at most (default 5)")
    sim.add_argument("--episodes", type=int, default=None,
                     help="a seeded random subset of this many test samples (default: all of them)")
    sim.add_argument("--slate", type=int, default=5, help="items recommended per system turn (default 5)")
    sim.add_argument("--split", default="test", choices=["valid", "test"], help="(default test)")
    sim.add_argument("--protocol", default="standard", choices=[p.value for p in Protocol],
                     help="standard: every sample; dedup: samples whose target the context names are left out, and "
                     "the context's items are never recommended (default standard)")
    sim.add_argument("--system", default="auto", choices=["auto", "ranking", "agent", "chat"],
                     help="ranking: the recommender's top items each turn; agent: harpo's own turns (it asks and "
                     "recommends); chat: convrec chat's engine (no LLM) with the recommender as its retriever; "
                     "auto (default): agent for harpo, ranking for the others")
    sim.add_argument("--set", dest="options", action="append", metavar="KEY=VALUE",
                     help="a recommender option, e.g. --set checkpoint=results/runs/lrurec-text-redial (repeatable)")
    sim.add_argument("--user-set", dest="user_options", action="append", metavar="KEY=VALUE",
                     help="a user option: close_min_shared=N also accepts an item sharing N attribute values with the "
                     "target (reported apart as close_success); prefer_on_reject=false; max_preferences=N; for the llm "
                     "user also llm.* (its LLM), temperature, max_fallback_share (default 0.1: a run whose share of "
                     "unparsable replies passes it is reported as failed, exit status 2)")
    sim.add_argument("--seed", type=int, default=0, help="seed of the episode subset and of the user (default 0)")
    sim.add_argument("--transcripts", type=Path, default=None, metavar="FILE.jsonl",
                     help="write every episode here and resume from it (default: beside --json, as .jsonl)")
    sim.add_argument("--restart", action="store_true", help="start --transcripts afresh instead of resuming it")
    sim.add_argument("--workers", type=int, default=1,
                     help="episodes played at once on threads (useful when the system waits on a server)")
    sim.add_argument("--json", type=Path, default=None, metavar="OUT.json", help="write the result as JSON")
    sim.add_argument("--quiet", action="store_true", help="no progress bar")
    add_ray_options(sim, "the llm user's (and rar's)")
    add_data_options(sim)
    sim.set_defaults(handler=run_simulate)

    val = commands.add_parser(
        "simulate-validity", help="how well the rule user's decisions agree with real seekers",
        description="On real dialogues: would the rule user have accepted what the real recommender suggested "
        "(balanced accuracy against ReDial's 'liked' answers, INSPIRED's acceptances), and does its next turn agree "
        "in polarity with the real seeker's? The close-enough rule is chosen on --tune-split.",
    )
    val.add_argument("--dataset", required=True, help="redial or inspired (datasets with seeker feedback)")
    val.add_argument("--split", default="test", choices=["valid", "test"], help="(default test)")
    val.add_argument("--tune-split", default="valid", choices=["train", "valid"],
                     help="where the close-enough threshold is chosen (default valid)")
    val.add_argument("--close-min-shared", type=int, default=None, metavar="N",
                     help="the close-enough threshold to use instead of choosing it on --tune-split (INSPIRED's "
                     "tuning labels hold one class)")
    val.add_argument("--seed", type=int, default=0, help="seed of the bootstrap and the user (default 0)")
    val.add_argument("--json", type=Path, default=None, metavar="OUT.json", help="write the report as JSON")
    add_data_options(val)
    val.set_defaults(handler=run_validity)


def _config(args: argparse.Namespace) -> SimulationConfig:
    """Every argument checked before any data loads: a typo must not surface after the fitting."""
    check_positive(args.turns, "--turns")
    check_positive(args.episodes, "--episodes")
    check_positive(args.slate, "--slate")
    check_positive(args.workers, "--workers")
    if args.seed < 0:
        raise ConfigError(f"--seed must be a non-negative integer, got {args.seed}")
    recommender_class(args.recommender)  # an unknown name lists the known ones
    check_system_kind(args.system, args.recommender)
    ray = ray_settings(args)
    system_asks = "llm" in recommender_class(args.recommender).config_class.model_fields
    user_asks = "llm" in user_class(args.user).options_class.model_fields
    if ray and not (system_asks or user_asks):
        raise ConfigError(f"--ray-address: neither recommender '{args.recommender}' nor user '{args.user}' asks an "
                          "LLM (the llm user and rar do)")
    try:
        user_options = user_class(args.user).options_class(
            **parse_options([*(args.user_options or []), *(ray if user_asks else [])]))
    except ValidationError as err:
        problem = err.errors()[0]
        raise ConfigError(f"--user-set {'.'.join(str(p) for p in problem['loc'])}: {problem['msg']}") from None
    try:
        return SimulationConfig(dataset=args.dataset, recommender=args.recommender, options=parse_options([*(args.options or []), *(ray if system_asks else [])]),
                                system=args.system, user=args.user, user_options=user_options, split=args.split,
                                protocol=Protocol(args.protocol), turns=args.turns, slate=args.slate,
                                episodes=args.episodes, seed=args.seed)
    except ValidationError as err:
        problem = err.errors()[0]
        raise ConfigError(f"--{problem['loc'][0]}: {problem['msg']}") from None


def _transcripts_path(args: argparse.Namespace) -> Path | None:
    if args.transcripts is not None:
        return args.transcripts
    return args.json.with_suffix(".jsonl") if args.json is not None else None


def run_simulate(args: argparse.Namespace) -> int:
    config = _config(args)
    transcripts = _transcripts_path(args)
    if args.json is not None:
        check_output_file(args.json, "--json")
    if transcripts is not None:
        check_output_file(transcripts, "--transcripts")
    dataset = load_dataset(args.dataset, data_dir(args), mirror(args), progress=not args.quiet)
    with Resources.from_env(data_dir=data_dir(args)) as resources:
        result = simulate(config, dataset, transcripts=transcripts, restart=args.restart, workers=args.workers,
                          progress=not args.quiet, resources=resources)
    _print_result(result)
    status = 0
    if result["status"] == "failed":
        console.print(f"[red]error[/red]: the run failed its checks: {result['failure']}")
        status = 2
    if transcripts is None:
        console.print("[yellow]note[/yellow]: no --transcripts or --json: the transcripts were not kept, and an "
                      "interrupted run could not have resumed")
    if args.json:
        write_json(args.json, without_nan(result))
        console.print(f"wrote {args.json}")
    return status


def _print_result(result: dict[str, Any]) -> None:
    out = Console() if sys.stdout.isatty() else Console(width=200)
    table = Table(title=f"{result['recommender']} ({result['system']}) with the {result['user']} user on "
                  f"{result['dataset']}/{result['split']}: {result['n_episodes']} episodes, {result['turns']} turns, "
                  f"slate {result['slate']}, protocol {result['protocol']}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("± SE", justify="right")
    for name, value in result["metrics"].items():
        error = result["stderr"].get(name)
        table.add_row(name, f"{value:.4f}" if value == value else "-",
                      f"{error:.4f}" if error is not None and error == error else "-")
    out.print(table)
    run, subset = result["run"], result["subset"]
    console.print(f"{run['episodes_played']} episodes played, {run['episodes_resumed']} resumed from the transcripts; "
                  f"{run['episodes_per_minute'] or '-'} episodes per minute (fit {run['fit_seconds']} s)")
    if subset["episodes"] < subset["kept_by_protocol"]:
        console.print(f"[yellow]note[/yellow]: a seeded random subset of {subset['episodes']} of "
                      f"{subset['kept_by_protocol']} samples (seed {subset['seed']}), not the whole split")


def run_validity(args: argparse.Namespace) -> int:
    check_positive(args.close_min_shared, "--close-min-shared")
    if args.json is not None:
        check_output_file(args.json, "--json")
    dataset = load_dataset(args.dataset, data_dir(args), mirror(args), progress=True)
    report = validity_report(dataset, args.split, args.tune_split, args.close_min_shared, seed=args.seed)
    out = Console() if sys.stdout.isatty() else Console(width=200)
    out.print_json(data=without_nan(report["summary"]))
    if args.json:
        write_json(args.json, without_nan(report))
        console.print(f"wrote {args.json}")
    return 0
