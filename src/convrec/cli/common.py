"""Options shared by several subcommands."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from convrec.data.fetch import default_data_dir, default_mirror
from convrec.io import DataError


def add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="where fetched and processed data live (default: $CONVREC_DATA_DIR or ./data)")
    parser.add_argument("--mirror", type=Path, default=None,
                        help="local folder holding the public datasets (default: $CONVREC_DATA_MIRROR)")


def data_dir(args: argparse.Namespace) -> Path:
    return args.data_dir or default_data_dir()


def mirror(args: argparse.Namespace) -> Path | None:
    return args.mirror or default_mirror()


def parse_options(pairs: list[str] | None) -> dict[str, Any]:
    """``["l2=100", "encoder.batch_size=32"]`` -> nested dict; values parsed as JSON when they parse."""
    options: dict[str, Any] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise DataError(f"--set expects KEY=VALUE, got {pair!r}")
        key, raw = pair.split("=", 1)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        target = options
        *parents, leaf = key.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return options
