"""One entry point for every dataset: ``load_dataset(name)``.

Bundled datasets are fetched (from the mirror, when one is configured) and converted on first use, then read
from the processed cache. Datasets a user imported with ``convrec data import`` are read from the same cache.
"""

from __future__ import annotations

from pathlib import Path

from convrec.catalog.items import Catalog
from convrec.data.converters import CONVERTERS
from convrec.data.dataset import Conversion, CRSDataset, build_dataset, load_processed, save_processed
from convrec.data.fetch import dataset_files, default_data_dir, default_mirror, fetch_dataset, verify_dataset
from convrec.data.generic import read_dialogues_jsonl
from convrec.io import DataError, sha256_file, sha256_text


def processed_root(data_dir: Path) -> Path:
    return data_dir / "processed"


def available_datasets(data_dir: Path | None = None) -> list[str]:
    names = set(CONVERTERS)
    root = processed_root(data_dir or default_data_dir())
    if root.exists():
        names.update(p.name for p in root.iterdir() if (p / "build.json").exists())
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


def import_dataset(name: str, catalog_path: Path, dialogues_path: Path, data_dir: Path | None = None) -> CRSDataset:
    """Validate a user's catalogue + dialogues (generic format) and install them as dataset ``name``."""
    if name in CONVERTERS:
        raise DataError(f"{name!r} is a bundled dataset name; choose another name for your data")
    data_dir = Path(data_dir or default_data_dir())
    catalog = Catalog.read_jsonl(catalog_path, name=name)
    dialogues = read_dialogues_jsonl(dialogues_path, catalog)
    if not any(d.split == "test" for d in dialogues):
        raise DataError("no dialogue has split 'test': mark the dialogues to evaluate on", dialogues_path)
    fingerprint = sha256_text("import", sha256_file(catalog_path), sha256_file(dialogues_path))[:20]
    out_dir = processed_root(data_dir) / name
    save_processed(out_dir, Conversion(catalog, dialogues, {}), {
        "name": name, "fingerprint": fingerprint, "imported_from": [str(catalog_path), str(dialogues_path)],
    })
    return load_processed(out_dir, name)
