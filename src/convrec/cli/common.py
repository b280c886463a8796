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


def add_ray_options(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--ray-address", default=None, metavar="auto|HOST:PORT|local",
                        help=f"answer {what}'s LLM calls on a Ray cluster: 'auto' (the one this machine belongs to), "
                        "a head node's HOST:PORT, or 'local' (start one here); each worker a Ray actor holding the "
                        "model or an endpoint client (llm.base_url), the response cache kept here. Needs "
                        "`pip install 'convrec[ray]'`; without this option no Ray is started")
    parser.add_argument("--ray-workers", type=int, default=2, metavar="N",
                        help="LLM actors on the cluster (default 2); set llm.local.n_threads to the CPUs each gets")


def ray_settings(args: argparse.Namespace) -> list[str]:
    """The ``--set`` pairs that put an ``llm`` on the cluster of ``--ray-address`` (none without it)."""
    if getattr(args, "ray_address", None) is None:
        return []
    if args.ray_workers < 1:
        raise ConfigError(f"--ray-workers must be at least 1, got {args.ray_workers}")
    return [f"llm.ray.address={args.ray_address}", f"llm.ray.workers={args.ray_workers}"]


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
