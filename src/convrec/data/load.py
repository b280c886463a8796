"""One entry point for every dataset: ``load_dataset(name)``.

Bundled datasets are fetched (from the mirror, when one is configured) and converted on first use, then read
from the processed cache. Datasets a user imported with ``convrec data import`` are read from the same cache.
"""

from __future__ import annotations

import re
from pathlib import Path

from convrec.catalog.items import Catalog
from convrec.data.converters import CONVERTERS
from convrec.data.dataset import Conversion, CRSDataset, build_dataset, load_processed, save_processed
from convrec.data.fetch import dataset_files, default_data_dir, default_mirror, fetch_dataset, verify_dataset
from convrec.data.generic import read_dialogues_jsonl
from convrec.errors import ConfigError
from convrec.io import DataError, sha256_file, sha256_text


def processed_root(data_dir: Path) -> Path:
    return data_dir / "processed"


def available_datasets(data_dir: Path | None = None) -> list[str]:
    names = set(CONVERTERS)
    root = processed_root(data_dir or default_data_dir())
    if root.exists():
        # Dot-folders are a build's staging (".NAME.building-*"), never a dataset, even once they hold build.json.
        names.update(p.name for p in root.iterdir() if not p.name.startswith(".") and (p / "build.json").exists())
    return sorted(names)


def source_files(name: str, data_dir: Path, mirror: Path | None, progress: bool = False) -> dict[str, Path]:
    """The raw files a converter reads, fetching them from the mirror when they are missing or corrupt."""
    files: dict[str, Path] = {}
    for source in CONVERTERS[name].sources:
        problems = verify_dataset(source, data_dir)
        if problems:
            if mirror is None:
                raise DataError(
                    f"dataset '{source}' is not fetched ({problems[0]}): run `convrec data fetch {source} --mirror DIR` "
                    f"or set CONVREC_DATA_MIRROR"
                )
            fetch_dataset(source, data_dir, mirror=mirror, progress=progress)
        files.update(dataset_files(source, data_dir))
    return files


def load_dataset(
    name: str,
    data_dir: Path | None = None,
    mirror: Path | None = None,
    rebuild: bool = False,
    progress: bool = False,
) -> CRSDataset:
    data_dir = Path(data_dir or default_data_dir())
    mirror = mirror if mirror is not None else default_mirror()
    if name in CONVERTERS:
        files = source_files(name, data_dir, mirror, progress)
        return build_dataset(CONVERTERS[name], files, processed_root(data_dir), force=rebuild)
    out_dir = processed_root(data_dir) / name
    if (out_dir / "build.json").exists():
        return load_processed(out_dir, name)
    raise DataError(
        f"unknown dataset {name!r}: bundled ones are {', '.join(sorted(CONVERTERS))}; "
        f"bring your own with `convrec data import`"
    )


# A dataset name becomes one folder directly under DATA_DIR/processed: a lower-case slug cannot climb out of
# it ("..", "/", an absolute path), cannot be the folder itself ("", "."), cannot collide with the hidden
# staging folders (".NAME.building-...") and means the same folder on case-insensitive file systems.
DATASET_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
DATASET_NAME_RULE = ("1 to 64 characters among a-z, 0-9, '.', '_' and '-', starting with a letter or a digit, "
                     "without '..'")


def check_dataset_name(name: str) -> None:
    """Refuse a name that is not a safe slug, or that belongs to a bundled dataset."""
    if not isinstance(name, str) or not DATASET_NAME.fullmatch(name) or ".." in name:
        raise ConfigError(f"dataset name {name!r} is not allowed: a name is {DATASET_NAME_RULE}")
    if name in CONVERTERS:
        # Not even with --force: load_dataset(name) always builds the bundled data, which would silently replace
        # the import (and the import would have replaced the bundled dataset's cache).
        raise ConfigError(f"{name!r} is a bundled dataset name; choose another name for your data",
                          hint=f"bundled datasets: {', '.join(sorted(CONVERTERS))}")


def imported_dataset_dir(data_dir: Path, name: str) -> Path:
    """``DATA_DIR/processed/NAME``, checked, with symbolic links resolved, to be a folder directly inside
    ``DATA_DIR/processed``: whatever the name, an import never writes or replaces anything elsewhere."""
    root = processed_root(data_dir)
    try:
        resolved_root = root.resolve()
        target = (resolved_root / name).resolve()
    except (OSError, RuntimeError) as err:  # RuntimeError: a symbolic link loop (Python 3.11)
        raise ConfigError(f"cannot resolve where dataset {name!r} would be written under {root}: {err}") from None
    if target.parent != resolved_root or target.name != name:
        raise ConfigError(f"dataset {name!r} would be written to {target}, which is not a folder of {resolved_root}; "
                          "convrec writes datasets only there")
    return target


def import_dataset(name: str, catalog_path: Path, dialogues_path: Path, data_dir: Path | None = None,
                   force: bool = False) -> CRSDataset:
    """Validate a user's catalogue + dialogues (generic format) and install them as dataset ``name``.

    An existing imported dataset of that name is replaced only with ``force``; nothing is written unless both
    files are valid, and nothing outside ``DATA_DIR/processed/NAME`` is ever written or replaced.
    """
    check_dataset_name(name)
    data_dir = Path(data_dir or default_data_dir())
    out_dir = imported_dataset_dir(data_dir, name)
    if out_dir.exists():
        if not force:
            raise ConfigError(f"a dataset named {name!r} already exists in {out_dir.parent}",
                              hint="add --force to replace it, or choose another --name")
        if not (out_dir / "build.json").is_file():
            raise ConfigError(f"{out_dir} exists but is not a dataset convrec wrote (it has no build.json); "
                              "not replacing it", hint="move it away, or choose another --name")
    catalog = Catalog.read_jsonl(catalog_path, name=name)
    dialogues = read_dialogues_jsonl(dialogues_path, catalog)
    if not any(d.split == "test" for d in dialogues):
        raise DataError("no dialogue has split 'test': mark the dialogues to evaluate on", dialogues_path)
    fingerprint = sha256_text("import", sha256_file(catalog_path), sha256_file(dialogues_path))[:20]
    save_processed(out_dir, Conversion(catalog, dialogues, {}), {
        "name": name, "fingerprint": fingerprint, "imported_from": [str(catalog_path), str(dialogues_path)],
    })
    return load_processed(out_dir, name)
