"""``convrec train-harpo``: every HARPO component of one dataset trained in order, with time and peak memory.

The stages are ordinary convrec commands, each run in its own process (so its peak memory is its own, read
from the kernel when it exits) and each resumable on its own: a stage killed half-way picks up where it stopped
when the pipeline is run again, and a stage that finished before is skipped (the pipeline's report,
``RUNS/harpo-train-DATASET.json``, records which command finished and what it cost).

1. ``lrurec-text``: the retriever over the dialogue (``convrec train``);
2. ``learned-ranker``: CHARM's relevance, a second stage over five retrievers (on the validation split);
3. ``quality``: CHARM's satisfaction and engagement models and the context-dependent weights;
4. ``bridge`` (with ``--bridge-also``): BRIDGE's shared encoder trained with other domains' dialogues;
5. ``star``: STAR's value network, from simulated validation conversations.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from convrec.cli.common import check_output_dir
from convrec.errors import ConvrecError
from convrec.io import write_json

console = Console(stderr=True)

# A stage runs under this small stdlib-only wrapper, which waits for it and writes its peak resident memory
# (KiB) to argv[1]. Why not read it here: on Linux a child's peak counts the memory of the process it was forked
# from at the time (kept across exec), and this process holds torch; the wrapper is small.
MEASURED = """
import os, signal, subprocess, sys
child = subprocess.Popen(sys.argv[2:])
signal.signal(signal.SIGTERM, lambda *_: child.terminate())
while True:
    try:
        _, status, usage = os.wait4(child.pid, 0)
        break
    except InterruptedError:
        continue
open(sys.argv[1], "w").write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1)
"""


@dataclass(frozen=True)
class Stage:
    name: str
    what: str
    argv: tuple[str, ...]

    @property
    def command(self) -> str:
        return shlex.join(self.argv)


class StageFailed(ConvrecError):
    """A stage's command exited with an error; the ones before it are kept."""


def harpo_stages(dataset: str, runs: Path, bridge_also: list[str] | None = None,
                 python: str = sys.executable) -> list[Stage]:
    """The commands, in order, that train every HARPO component of ``dataset`` into ``runs``."""
    convrec = (python, "-m", "convrec")
    retriever = runs / f"lrurec-text-{dataset}"
    stages = [
        Stage("lrurec-text", "the retriever over the dialogue (LRURec, item embeddings from item text)",
              (*convrec, "train", "--dataset", dataset, "--recommender", "lrurec-text", "--out", str(retriever))),
        Stage("learned-ranker", "CHARM's relevance: LambdaMART over five retrievers' candidates",
              (*convrec, "train", "--dataset", dataset, "--recommender", "learned-ranker",
               "--out", str(runs / f"learned-ranker-{dataset}"), "--set", f"retriever_checkpoint={retriever}")),
        Stage("quality", "CHARM's satisfaction and engagement models and the context-dependent weights",
              (*convrec, "train", "--dataset", dataset, "--recommender", "harpo",
               "--out", str(runs / f"harpo-{dataset}"), "--set", f"checkpoint={retriever}")),
    ]
    if bridge_also:
        also = "[" + ",".join(f'"{name}"' for name in bridge_also) + "]"
        stages.append(Stage("bridge", f"BRIDGE: the shared encoder, trained with {', '.join(bridge_also)}",
                            (*convrec, "train", "--dataset", dataset, "--recommender", "bridge",
                             "--out", str(runs / f"bridge-{dataset}-{'-'.join(bridge_also)}"),
                             "--set", f"also={also}")))
    stages.append(Stage("star", "STAR's value network, from simulated validation conversations",
                        (python, "-m", "convrec.simulate.star", "--dataset", dataset,
                         "--out", str(runs / f"star-{dataset}"), "--set", f"checkpoint={retriever}")))
    return stages


def run_stages(stages: list[Stage], report_path: Path, say=console.print) -> dict[str, Any]:
    """Runs each stage not finished before (by the report at ``report_path``, same command), in order, writing
    the report after each; a failed stage raises :class:`StageFailed` and leaves the report saying so."""
    report_path.parent.mkdir(parents=True, exist_ok=True)  # the wrapper writes each stage's peak beside the report
    report: dict[str, Any] = {"stages": {}}
    if report_path.is_file():
        try:
            report = json.loads(report_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            say(f"[yellow]note[/yellow]: {report_path} is unreadable: every stage runs (each resumes its own run)")
            report = {"stages": {}}
    for stage in stages:
        done = report["stages"].get(stage.name, {})
        if done.get("status") == "finished" and done.get("command") == stage.command:
            say(f"[dim]{stage.name}: finished before ({done['seconds']:.0f} s, peak {done['peak_mib']:.0f} MiB)[/dim]")
            continue
        say(f"[bold]{stage.name}[/bold]: {stage.what}\n  $ {stage.command}")
        started = time.perf_counter()
        peak_file = report_path.with_name(f".{report_path.name}.{stage.name}.peak")
        process = subprocess.Popen([sys.executable, "-c", MEASURED, str(peak_file), *stage.argv])
        try:
            process.wait()
        except KeyboardInterrupt:
            process.terminate()
            process.wait()
            raise
        try:
            peak_kib = int(peak_file.read_text())
            peak_file.unlink()
        except (OSError, ValueError):
            peak_kib = 0  # the wrapper itself was killed
        entry = {"command": stage.command, "what": stage.what, "seconds": round(time.perf_counter() - started, 1),
                 "peak_mib": round(peak_kib / 1024, 1),
                 "status": "finished" if process.returncode == 0 else f"failed (exit {process.returncode})"}
        report["stages"][stage.name] = entry
        write_json(report_path, report)
        if process.returncode != 0:
            raise StageFailed(f"stage {stage.name!r} failed (exit {process.returncode}); the stages before it are "
                              f"kept: run the same command again to resume from it",
                              hint=f"the stage alone: {stage.command}")
    return report


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "train-harpo", help="train every HARPO component of a dataset in order (resumable; time and memory per stage)",
        description=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, help="redial, inspired, opendialkg-books or an imported dataset")
    parser.add_argument("--runs", type=Path, default=Path("results/runs"),
                        help="where each stage's run folder goes, named STAGE-DATASET (default results/runs)")
    parser.add_argument("--bridge-also", nargs="+", metavar="DATASET", default=None,
                        help="also train BRIDGE with these datasets' dialogues (e.g. redial for inspired)")
    parser.add_argument("--dry-run", action="store_true", help="print the stages' commands and run nothing")
    parser.set_defaults(handler=run_train_harpo)


def run_train_harpo(args: argparse.Namespace) -> int:
    stages = harpo_stages(args.dataset, args.runs, args.bridge_also)
    if args.dry_run:
        for stage in stages:
            print(f"# {stage.name}: {stage.what}\n{stage.command}")
        return 0
    check_output_dir(args.runs, "--runs")
    report_path = args.runs / f"harpo-train-{args.dataset}.json"
    report = run_stages(stages, report_path)
    table = Table(title=f"HARPO on {args.dataset}: {report_path}")
    for column in ("stage", "seconds", "peak MiB", "status"):
        table.add_column(column, justify="right" if column in ("seconds", "peak MiB") else "left")
    for stage in stages:
        entry = report["stages"][stage.name]
        table.add_row(stage.name, f"{entry['seconds']:.0f}", f"{entry['peak_mib']:.0f}", entry["status"])
    Console().print(table)
    return 0
