"""Fetch datasets into a data dir, verified against the registry's checksums.

A dataset is fetched all-or-nothing: every file that is missing (or wrong) is first staged under
``data_dir/.partial/`` and checked for size and sha256, and only when all of them pass are they moved into
place. So an interrupted or failed fetch never leaves a half-downloaded or unverified file where the loaders
would read it, and never leaves staging debris behind.

Sources, in order of preference: a local mirror dir (``--mirror`` / ``CONVREC_DATA_MIRROR``), a ``base_url``
serving the mirror layout over HTTP, and finally each file's public origin.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import socket
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from tqdm import tqdm

from convrec.data.registry import DATASETS, DatasetSpec, RemoteFile, get_spec
from convrec.errors import OutputPathError
from convrec.io import _UMASK, DataError, sha256_file
from convrec.resources import Resources

MIRROR_ENV = "CONVREC_DATA_MIRROR"
DATA_DIR_ENV = "CONVREC_DATA_DIR"
PARTIAL_DIR = ".partial"
TIMEOUT_S = 30
_CHUNK = 1 << 20
_USER_AGENT = "convrec-data-fetch/0.1"


# Where the team's machines keep the mirror, relative to a checkout: used only when the env var is unset.
CONVENTIONAL_MIRROR = Path("..") / "shared" / "data"


def default_mirror() -> Path | None:
    """``CONVREC_DATA_MIRROR``; else ``../shared/data`` when it holds a MANIFEST.tsv (the layout of our
    machines and CI); else None, and fetch uses the public origins."""
    value = os.environ.get(MIRROR_ENV)
    if value:
        return Path(value)
    if (CONVENTIONAL_MIRROR / "MANIFEST.tsv").is_file():
        return CONVENTIONAL_MIRROR.resolve()
    return None


def default_data_dir() -> Path:
    """``CONVREC_DATA_DIR`` if set, else ``./data`` relative to the current directory (read by
    :meth:`convrec.resources.Resources.from_env`, the one reader of convrec's folder variables)."""
    return Resources.from_env().data_dir


def resolve(name: str) -> list[DatasetSpec]:
    """The dataset and everything it requires, requirements first, each once."""
    order: list[DatasetSpec] = []

    def visit(current: str, stack: tuple[str, ...]) -> None:
        if current in stack:
            raise DataError(f"dataset requirements form a cycle: {' -> '.join((*stack, current))}")
        if any(spec.name == current for spec in order):
            return
        spec = get_spec(current)
        for dep in spec.requires:
            visit(dep, (*stack, current))
        order.append(spec)

    visit(name, ())
    return order


def fetch_dataset(
    name: str,
    data_dir: Path,
    mirror: Path | None = None,
    base_url: str | None = None,
    force: bool = False,
    progress: bool = True,
) -> list[Path]:
    """Fetch ``name`` and its requirements into ``data_dir``; return the local paths of all their files.

    ``mirror`` is used exactly as given (the CLI passes ``default_mirror()`` when ``--mirror`` is absent), so
    library callers and tests never pick up a mirror from the environment by accident.
    """
    paths: list[Path] = []
    for spec in resolve(name):
        paths.extend(
            fetch_spec(spec, data_dir, mirror=mirror, base_url=base_url, force=force, progress=progress)
        )
    return paths


def fetch_spec(
    spec: DatasetSpec,
    data_dir: Path,
    mirror: Path | None = None,
    base_url: str | None = None,
    force: bool = False,
    progress: bool = True,
) -> list[Path]:
    """Fetch one spec's own files (not its ``requires``) all-or-nothing; return their local paths.

    Files already present with the right size and sha256 are left untouched unless ``force``.
    """
    data_dir = Path(data_dir)
    partial_root = data_dir / PARTIAL_DIR
    if remove_stale_staging(partial_root, [f"{name}-" for name in DATASETS]):
        with contextlib.suppress(OSError):
            partial_root.rmdir()  # only if empty: a concurrent fetch may be staging there
    targets = [(f, data_dir / f.path) for f in spec.files]
    todo = [(f, dest) for f, dest in targets if force or not _is_valid(dest, f)]
    if not todo:
        return [dest for _, dest in targets]
    # Fail before downloading anything if some file has no source at all.
    if mirror is None and base_url is None:
        for f, _ in todo:
            if f.url is None:
                raise DataError(
                    f"mirror-only file of dataset {spec.name!r} ({f.note or 'no public origin'}); "
                    f"pass --mirror DIR or set {MIRROR_ENV} to a copy of the data mirror",
                    path=f.path,
                )

    staging = make_staging_dir(partial_root, f"{spec.name}-")
    try:
        archives: dict[str, Path] = {}
        staged: list[tuple[Path, Path]] = []
        for index, (f, dest) in enumerate(todo):
            tmp = staging / f"{index:03d}-{Path(f.path).name}"
            _stage(spec, f, tmp, staging, archives, mirror, base_url, progress)
            staged.append((tmp, dest))
        for tmp, dest in staged:
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        with contextlib.suppress(OSError):
            partial_root.rmdir()  # only if empty: a concurrent fetch may still be staging there
    return [dest for _, dest in targets]


# A staging folder is named PREFIX + "HOST-PID-RANDOM" (see make_staging_dir): which process made it, so that a
# later run can tell the leftovers of a killed process from the staging of a live one, even in a data dir that
# several machines share. mkdtemp's random part never holds a "-".
_STAGING_OWNER = re.compile(r"(?P<host>.+)-(?P<pid>[0-9]+)-[^-]+")
# A staging folder without an owner in its name (made by a convrec that did not write one) is stale after this.
UNOWNED_STAGING_MAX_AGE_S = 24 * 3600


def make_staging_dir(parent: Path, prefix: str) -> Path:
    """A new private folder ``parent/PREFIX+HOST-PID-RANDOM`` (``parent`` created if need be) to stage files in
    before they move into place; an OutputPathError when the data dir cannot take it.

    Its mode follows the umask like a file's: mkdtemp makes it owner-only, and a processed dataset's folder is
    its staging folder renamed."""
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f"{prefix}{socket.gethostname()}-{os.getpid()}-", dir=parent))
    except OSError as err:
        raise OutputPathError(f"cannot write in {parent} ({err.strerror or err})",
                              hint=f"the data dir (--data-dir or ${DATA_DIR_ENV}) must be a writable folder") from None
    os.chmod(staging, 0o777 & ~_UMASK)
    return staging


def remove_stale_staging(parent: Path, prefixes: Iterable[str]) -> int:
    """Delete the staging folders in ``parent`` (named ``PREFIX...`` for one of ``prefixes``) that a killed
    process left behind: made on this host by a process that no longer runs, or, for a name without an owner,
    untouched for ``UNOWNED_STAGING_MAX_AGE_S``. The staging of a live process, or of another host, stays.
    Returns how many were deleted."""
    try:
        entries = list(parent.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return 0
    host = socket.gethostname()
    # The longest prefix that fits: "opendialkg-" also starts "opendialkg-books-..." but is not its prefix.
    ordered = sorted(prefixes, key=len, reverse=True)
    removed = 0
    for entry in entries:
        prefix = next((p for p in ordered if entry.name.startswith(p)), None)
        if prefix is None or entry.is_symlink() or not entry.is_dir():
            continue
        owner = _STAGING_OWNER.fullmatch(entry.name[len(prefix):])
        if owner is not None:
            stale = owner["host"] == host and not _process_runs(int(owner["pid"]))
        else:
            try:
                stale = time.time() - entry.stat().st_mtime > UNOWNED_STAGING_MAX_AGE_S
            except FileNotFoundError:  # removed meanwhile by another run's clean-up
                continue
        if stale:
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
    return removed


def _process_runs(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except OverflowError:  # not a pid this system could have given out
        return False
    return True


def verify_dataset(name: str, data_dir: Path) -> list[str]:
    """Problems with the dataset's own files in ``data_dir`` (missing, wrong size, bad checksum); empty if fine."""
    spec = get_spec(name)
    problems: list[str] = []
    for f in spec.files:
        local = Path(data_dir) / f.path
        if not local.is_file():
            problems.append(f"{local}: missing (run `convrec data fetch {name}`)")
            continue
        size = local.stat().st_size
        if size != f.size:
            problems.append(f"{local}: size mismatch: expected {f.size} bytes, got {size}")
            continue
        got = sha256_file(local)
        if got != f.sha256:
            problems.append(f"{local}: checksum mismatch: expected {f.sha256}, got {got}")
    return problems


def dataset_files(name: str, data_dir: Path) -> dict[str, Path]:
    """Map each registry path of ``name`` (e.g. ``redial/test_data.jsonl``) to its absolute local file.

    Only checks that the files exist (hashing on every load would be slow); ``verify_dataset`` checks content.
    """
    spec = get_spec(name)
    root = Path(data_dir).resolve()
    files: dict[str, Path] = {}
    for f in spec.files:
        local = root / f.path
        if not local.is_file():
            raise DataError(f"missing file of dataset {name!r}; run `convrec data fetch {name}`", path=local)
        files[f.path] = local
    return files


def _is_valid(local: Path, f: RemoteFile) -> bool:
    """Cheap size check first, then the hash."""
    try:
        if local.stat().st_size != f.size:
            return False
    except OSError:
        return False
    return sha256_file(local) == f.sha256


def _stage(
    spec: DatasetSpec,
    f: RemoteFile,
    tmp: Path,
    staging: Path,
    archives: dict[str, Path],
    mirror: Path | None,
    base_url: str | None,
    progress: bool,
) -> None:
    """Write ``f`` into ``tmp`` from the preferred source and verify it (raises DataError on mismatch)."""
    if mirror is not None:
        source = Path(mirror) / f.path
        if not source.is_file():
            raise DataError(f"not in the mirror (needed by dataset {spec.name!r})", path=source)
        with open(source, "rb") as handle:
            digest, size = _copy(handle, tmp, f.size, f.path, progress)
        _check(f, digest, size, source)
    elif base_url is not None:
        url = base_url.rstrip("/") + "/" + urllib.parse.quote(f.path)
        digest, size = _download(url, tmp, f.path, progress)
        _check(f, digest, size, url)
    elif f.url is None:  # pragma: no cover - fetch_spec rejects this before staging
        raise DataError(f"mirror-only file; set {MIRROR_ENV}", path=f.path)
    elif f.archive_member is None:
        digest, size = _download(f.url, tmp, f.path, progress)
        _check(f, digest, size, f.url)
    else:
        archive = archives.get(f.url)
        if archive is None:
            archive = staging / f"archive-{len(archives):02d}.zip"
            _download(f.url, archive, Path(urllib.parse.urlparse(f.url).path).name, progress)
            archives[f.url] = archive
        where = f"{f.url}#{f.archive_member}"
        try:
            with zipfile.ZipFile(archive) as zf, zf.open(f.archive_member) as handle:
                digest, size = _copy(handle, tmp, f.size, f.path, progress)
        except KeyError:
            raise DataError(f"archive has no member {f.archive_member!r}", path=f.url) from None
        except zipfile.BadZipFile as err:
            raise DataError(f"not a valid zip archive ({err})", path=f.url) from None
        _check(f, digest, size, where)


def _check(f: RemoteFile, digest: str, size: int, source: str | os.PathLike) -> None:
    if digest != f.sha256:
        extra = f" (expected {f.size} bytes, got {size})" if size != f.size else ""
        raise DataError(f"checksum mismatch: expected {f.sha256}, got {digest}{extra}", path=source)


def _download(url: str, dest: Path, label: str, progress: bool) -> tuple[str, int]:
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            return _copy(response, dest, total, label, progress)
    except urllib.error.HTTPError as err:
        raise DataError(f"download failed: HTTP {err.code} {err.reason}", path=url) from None
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise DataError(f"download failed: {reason}", path=url) from None


def _copy(src: IO[bytes], dest: Path, total: int | None, label: str, progress: bool) -> tuple[str, int]:
    """Stream ``src`` into ``dest`` in chunks, hashing on the way; return (sha256, bytes written)."""
    digest = hashlib.sha256()
    size = 0
    bar = tqdm(
        total=total,
        desc=label,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        disable=not progress,
        leave=False,
    )
    try:
        with open(dest, "wb") as out:
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
                bar.update(len(chunk))
    finally:
        bar.close()
    return digest.hexdigest(), size


__all__ = [
    "DATASETS",
    "DATA_DIR_ENV",
    "MIRROR_ENV",
    "dataset_files",
    "default_data_dir",
    "default_mirror",
    "fetch_dataset",
    "fetch_spec",
    "resolve",
    "verify_dataset",
]
