"""Where a result came from: the code (git commit, dirty or not), the versions of convrec and of the
libraries that change numbers, and the sha256 of every checkpoint the recommender loaded.

The data hash is the result's own ``data_hash``. A convrec that is not a git checkout (an installed wheel),
or a machine without git, records no ``git`` entry rather than failing.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import convrec

MAIN_DEPENDENCIES = ("torch", "numpy", "sentence-transformers", "xllamacpp", "openai", "pydantic")
WEIGHTS_FILE = "model.safetensors"
GIT_TIMEOUT_S = 10


def _git(args: list[str], where: Path) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(where), *args], capture_output=True, text=True,
                              timeout=GIT_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_state(package_dir: Path | None = None) -> dict[str, Any] | None:
    """``{"commit": sha, "dirty": bool}`` of the checkout convrec's own source files are tracked in, or None.

    The package's ``__init__.py`` must be a tracked file of that checkout: an installed copy that merely lies
    inside some repository (a virtual environment in a project folder) is not that repository's code.
    ``dirty``: a tracked file differs from the commit (untracked files, such as results, do not count)."""
    package_dir = package_dir or Path(convrec.__file__).resolve().parent
    if _git(["ls-files", "--error-unmatch", "__init__.py"], package_dir) is None:
        return None
    commit = _git(["rev-parse", "HEAD"], package_dir)
    changes = _git(["status", "--porcelain", "--untracked-files=no"], package_dir)
    if commit is None or changes is None:
        return None
    return {"commit": commit, "dirty": bool(changes)}


def versions() -> dict[str, str | None]:
    """convrec's version and each of :data:`MAIN_DEPENDENCIES`' (None: not installed)."""
    found: dict[str, str | None] = {"convrec": convrec.__version__}
    for name in MAIN_DEPENDENCIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


@cache
def code_provenance() -> dict[str, Any]:
    """Git state (when there is one) and versions: the same for every result of one process."""
    state = git_state()
    return {**({"git": state} if state is not None else {}), "versions": versions()}


def _checkpoint_dirs(description: Any) -> Iterator[str]:
    """Every ``checkpoint`` value in a recommender's :meth:`describe` output, at any depth (``rar`` nests its
    retriever's description)."""
    if isinstance(description, dict):
        for key, value in description.items():
            if key == "checkpoint" and isinstance(value, str):
                yield value
            else:
                yield from _checkpoint_dirs(value)
    elif isinstance(description, list | tuple):
        for value in description:
            yield from _checkpoint_dirs(value)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_hashes(description: dict[str, Any]) -> list[dict[str, str]]:
    """``[{"path": run dir, "sha256": of its model.safetensors}]`` for each checkpoint the description names."""
    named: dict[Path, str] = {}  # one entry per folder, however each mention spells it
    for run_dir in _checkpoint_dirs(description):
        named.setdefault(Path(run_dir).resolve(), run_dir)
    return [{"path": run_dir, "sha256": sha256_of(resolved / WEIGHTS_FILE)}
            for resolved, run_dir in named.items() if (resolved / WEIGHTS_FILE).is_file()]


def provenance(description: dict[str, Any]) -> dict[str, Any]:
    """The ``provenance`` of a result: :func:`code_provenance` and the checkpoints of the recommender that
    ``description`` (its :meth:`describe`, taken once it is fitted) describes."""
    return {**code_provenance(), "checkpoints": checkpoint_hashes(description)}
