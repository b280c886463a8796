"""``convrec data ...``: fetch, verify, build, inspect and import datasets."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from convrec.cli.common import add_data_options, data_dir, mirror
from convrec.data.fetch import fetch_dataset, resolve, verify_dataset
from convrec.data.load import DATASET_NAME_RULE, available_datasets, import_dataset, load_dataset
from convrec.data.registry import DATASETS

console = Console()


def add_parser(commands) -> None:
    data = commands.add_parser("data", help="fetch, build, inspect and import datasets",
                               description="Fetch, build, inspect and import datasets.")
    sub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    fetch = sub.add_parser("fetch", help="download or copy a dataset, verifying every file's sha256",
                           description="Fetch a dataset's files into the data dir. Each file's sha256 is checked; "
                           "a failed fetch leaves nothing half-written. Sources: --mirror (or $CONVREC_DATA_MIRROR), "
                           "else --base-url, else each file's public origin.")
    fetch.add_argument("names", nargs="+", metavar="NAME", help=f"one of: {', '.join(DATASETS)}, or 'all'")
    add_data_options(fetch)
    fetch.add_argument("--base-url", default=None, help="an HTTP server serving the mirror's layout")
    fetch.add_argument("--force", action="store_true", help="fetch again even if the files are already valid")
    fetch.add_argument("--quiet", action="store_true", help="no progress bars")
    fetch.set_defaults(handler=run_fetch)

    verify = sub.add_parser("verify", help="check a fetched dataset's files against the registry")
    verify.add_argument("name", choices=sorted(DATASETS))
    add_data_options(verify)
    verify.set_defaults(handler=run_verify)

    build = sub.add_parser("build", help="convert a dataset into the generic format (cached) and show its stats",
                           description="Convert raw files into catalogue + dialogues + samples. The result is "
                           "cached under DATA_DIR/processed/NAME and rebuilt only when an input changes.")
    build.add_argument("name")
    add_data_options(build)
    build.add_argument("--rebuild", action="store_true", help="convert again even if the cache is current")
    build.set_defaults(handler=run_build)

    imp = sub.add_parser("import", help="bring your own catalogue and dialogues (docs/data-format.md)",
                         description="Validate a catalogue JSONL and a dialogues JSONL in the generic format "
                         "and install them as a dataset every convrec command can use.")
    imp.add_argument("--name", required=True,
                     help=f"the new dataset's name: {DATASET_NAME_RULE}; not a bundled dataset's name")
    imp.add_argument("--catalog", type=Path, required=True, help="catalogue JSONL")
    imp.add_argument("--dialogues", type=Path, required=True, help="dialogues JSONL")
    imp.add_argument("--force", action="store_true",
                     help="replace the dataset you imported earlier under this name (without it, an existing "
                     "name is refused)")
    add_data_options(imp)
    imp.set_defaults(handler=run_import)

    lst = sub.add_parser("list", help="list the registered and imported datasets")
    add_data_options(lst)
    lst.set_defaults(handler=run_list)


def run_fetch(args: argparse.Namespace) -> int:
    names = list(DATASETS) if "all" in args.names else args.names
    for name in names:
        paths = fetch_dataset(name, data_dir(args), mirror=mirror(args), base_url=args.base_url,
                              force=args.force, progress=not args.quiet)
        console.print(f"[green]ok[/green] {name}: {len(paths)} files verified in {data_dir(args)}")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    problems = [p for spec in resolve(args.name) for p in verify_dataset(spec.name, data_dir(args))]
    for problem in problems:
        console.print(f"[red]problem[/red] {problem}")
    if not problems:
        console.print(f"[green]ok[/green] {args.name}: every file matches its sha256")
    return 1 if problems else 0


def _print_stats(dataset) -> None:
    table = Table(title=f"{dataset.name}: {len(dataset.catalog)} items")
    for column in ("split", "dialogues", "samples", "target in context"):
        table.add_column(column, justify="right")
    for split_name in ("train", "valid", "test"):
        split = dataset.split(split_name)
        in_context = sum(s.target_in_context for s in split.samples)
        table.add_row(split_name, str(len(split.dialogues)), str(len(split.samples)), str(in_context))
    console.print(table)
    report = dataset.info.get("report")
    if report:
        console.print_json(json.dumps(report))


def run_build(args: argparse.Namespace) -> int:
    dataset = load_dataset(args.name, data_dir(args), mirror(args), rebuild=args.rebuild, progress=True)
    _print_stats(dataset)
    return 0


def run_import(args: argparse.Namespace) -> int:
    dataset = import_dataset(args.name, args.catalog, args.dialogues, data_dir(args), force=args.force)
    _print_stats(dataset)
    console.print(f"[green]imported[/green] as '{args.name}': try `convrec eval --dataset {args.name} "
                  f"--recommender popularity`")
    return 0


def run_list(args: argparse.Namespace) -> int:
    for name in available_datasets(data_dir(args)):
        spec = DATASETS.get(name)
        console.print(f"{name:18s} {spec.description if spec else '(imported)'}")
    return 0
