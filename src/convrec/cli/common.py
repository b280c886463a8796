"""Options shared by several subcommands."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from convrec.data.fetch import default_data_dir, default_mirror
from convrec.errors import ConfigError, OutputPathError
from convrec.options import parse_options  # noqa: F401  (re-exported: the commands import it from here)


def add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="where fetched and processed data live (default: $CONVREC_DATA_DIR or ./data)")
    parser.add_argument("--mirror", type=Path, default=None,
                        help="local folder holding the public datasets (default: $CONVREC_DATA_MIRROR)")


def data_dir(args: argparse.Namespace) -> Path:
    return args.data_dir or default_data_dir()


def mirror(args: argparse.Namespace) -> Path | None:
    return args.mirror or default_mirror()


def check_output_file(path: Path, option: str) -> None:
    """Prove, before any work, that ``option``'s file ``path`` can be written (atomically: a temporary file
    beside it, renamed over it): it is not a folder, and its folder exists or can be created and is writable.
    Creates nothing that stays; an OutputPathError names the option and the path otherwise."""
    _check_writable(path, option, as_folder=False)


def check_output_dir(path: Path, option: str) -> None:
    """Prove, before any work, that ``option``'s folder ``path`` exists or can be created, and that files can be
    written in it. Creates nothing that stays; an OutputPathError names the option and the path otherwise."""
    _check_writable(path, option, as_folder=True)


def _check_writable(path: Path, option: str, as_folder: bool) -> None:
    # The folder to write in, or the nearest of its parents that exists (the rest would be created from there),
    # must take a new file: tried for real, since permission bits do not tell (root, read-only mounts, /proc).
    existing = (path if as_folder else path.parent).absolute()
    try:
        if as_folder and path.exists() and not path.is_dir():
            raise OutputPathError(f"{option} {path}: is a file, expected a folder")
        if not as_folder and path.is_dir():
            raise OutputPathError(f"{option} {path}: is a folder; give the name of a file to write")
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            raise OutputPathError(f"{option} {path}: {existing} is a file, not a folder")
        handle, probe = tempfile.mkstemp(prefix=".convrec-write-check-", dir=existing)
    except OSError as err:
        raise OutputPathError(f"{option} {path}: cannot write in {existing} ({err.strerror or err})") from None
    os.close(handle)
    os.unlink(probe)


def check_positive(value: int | None, option: str) -> None:
    if value is not None and value < 1:
        raise ConfigError(f"{option} must be a positive integer, got {value}")
