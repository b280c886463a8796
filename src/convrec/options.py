"""Command-line plumbing shared by every layer: ``--set KEY=VALUE`` pairs read into nested options, and the
entry point of the ``python -m convrec...`` report modules (one-line errors, exit status 2).

It lives here, below every package, because the report modules of ``agent`` and ``evaluate`` take ``--set``
options too and may not import ``cli``, which sits above them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from convrec.errors import ConfigError, ConvrecError, OutputPathError
from convrec.io import atomic_write, write_json

Report = TypeVar("Report")
Options = TypeVar("Options")


def parse_options(pairs: Sequence[str] | None) -> dict[str, Any]:
    """``["l2=100", "encoder.batch_size=32"]`` -> nested dict; values parsed as JSON when they parse."""
    options: dict[str, Any] = {}
    for pair in pairs or ():
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE, got {pair!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        target = options
        *parents, leaf = key.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
            if not isinstance(target, dict):
                raise ConfigError(f"--set {key}: {parent} is set to a value and cannot hold {leaf}")
        target[leaf] = value
    return options


def training_arguments(prog: str, description: str | None, options_class: type[Options], set_help: str,
                       argv: Sequence[str] | None, out_help: str = "run directory for the model and its report"
                       ) -> tuple[argparse.Namespace, Options]:
    """The arguments of a ``python -m convrec...`` training module: ``--dataset``, ``--out``, ``--set KEY=VALUE``
    (read into ``options_class``; a bad value is a one-line :class:`ConfigError`) and ``--data-dir``."""
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="redial")
    parser.add_argument("--out", type=Path, required=True, help=out_help)
    parser.add_argument("--set", dest="options", action="append", metavar="KEY=VALUE", help=set_help)
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        options = options_class(**parse_options(args.options))
    except ValidationError as err:  # one line per problem would be a wall of text: the first, with its field
        first = err.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "options"
        raise ConfigError(f"--set {field}: {first['msg']}") from None
    except ValueError as err:
        raise ConfigError(f"--set: {err}") from None
    return args, options


def report_main(prog: str, run: Callable[[Sequence[str] | None], Report], render: Callable[[Report], str],
                argv: Sequence[str] | None = None) -> int:
    """Run a report module: its Markdown on stdout, or a one-line error (and its hint) on stderr and 2."""
    try:
        report = run(argv)
    except ConvrecError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        if err.hint:
            print(f"  {err.hint}", file=sys.stderr)
        return 2
    print(render(report))
    return 0


def write_report_files(json_path: str | os.PathLike, report: Any, markdown_path: str | os.PathLike, text: str,
                       option: str) -> None:
    """A report module's two outputs, each written atomically; an unwritable place is a one-line error naming
    ``option`` (e.g. ``--out DIR``)."""
    try:
        write_json(json_path, report)
        with atomic_write(markdown_path) as handle:
            handle.write(text)
    except OSError as err:
        raise OutputPathError(f"{option}: cannot write ({err.strerror})") from None
