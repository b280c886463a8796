"""Command-line plumbing shared by every layer: ``--set KEY=VALUE`` pairs read into nested options, and the
entry point of the ``python -m convrec...`` report modules (one-line errors, exit status 2).

It lives here, below every package, because the report modules of ``agent`` and ``evaluate`` take ``--set``
options too and may not import ``cli``, which sits above them.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from convrec.errors import ConfigError, ConvrecError, OutputPathError
from convrec.io import atomic_write, write_json

Report = TypeVar("Report")


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
