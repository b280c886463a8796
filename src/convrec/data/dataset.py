"""A processed dataset: catalogue + dialogues + samples per split, cached on disk in the generic format.

``load_dataset("redial")`` converts the raw files once into ``<data_dir>/processed/redial/`` and reuses that
until an input file or the converter version changes (the fingerprint in ``build.json``).
"""

from __future__ import annotations

import gc
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from convrec.catalog.items import Catalog
from convrec.data.fetch import make_staging_dir, remove_stale_staging
from convrec.data.generic import read_dialogues_jsonl, write_dialogues_jsonl
from convrec.data.model import ROLES, SPLITS, Dialogue, RecSample, samples_from_dialogue
from convrec.io import DataError, atomic_write, sha256_file, sha256_text, write_json


@dataclass
class Split:
    """One split of a dataset: its dialogues and the recommendation samples drawn from them."""

    name: str
    catalog: Catalog
    dialogues: list[Dialogue]
    samples: list[RecSample] = field(default_factory=list)
    dataset: str = ""  # the dataset's name: what its items are called depends on it (catalog.vocabulary)

    def __post_init__(self) -> None:
        if not self.samples:
            self.samples = [s for d in self.dialogues for s in samples_from_dialogue(d)]

    @property
    def selection_samples(self) -> list[RecSample]:
        """Samples for choosing hyper-parameters: like the test protocol's, from dialogues with speaker roles.

        ReDial's validation split also holds bare item sequences (train fragments with no text), whose
        "every item after the first" samples do not look like test samples; they are left out here unless
        the split has nothing else (e.g. MovieLens)."""
        with_roles = [s for s in self.samples if s.dialogue.has_roles]
        return with_roles or self.samples


@dataclass
class CRSDataset:
    name: str
    catalog: Catalog
    dialogues: list[Dialogue]
    info: dict[str, Any] = field(default_factory=dict)

    def split(self, name: str) -> Split:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}: expected one of {', '.join(SPLITS)}")
        return Split(name, self.catalog, [d for d in self.dialogues if d.split == name], dataset=self.name)

    @property
    def fingerprint(self) -> str:
        return str(self.info.get("fingerprint", ""))


@dataclass
class Conversion:
    """What a converter returns: the dataset in the generic model plus a report for ``build.json``."""

    catalog: Catalog
    dialogues: list[Dialogue]
    report: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Converter:
    """A registered converter: which fetched dataset(s) it reads, and the function that converts them."""

    name: str
    sources: tuple[str, ...]  # registry dataset names whose files are inputs
    version: str  # bump when the conversion logic changes: invalidates every cache
    convert: Callable[[dict[str, Path]], Conversion]  # registry path -> local file


# Bump when what save_processed writes changes shape (e.g. a new samples.parquet column): every cache rebuilds.
# 3: build.json records each file's size and sha256, checked by load_processed.
CACHE_FORMAT = "3"
# What save_processed writes, besides build.json (written last, with each of these files' size and sha256).
PROCESSED_FILES = ("catalog.jsonl", "dialogues.jsonl", "samples.parquet")


def _fingerprint(converter: Converter, files: dict[str, Path]) -> str:
    parts = [CACHE_FORMAT, converter.name, converter.version]
    for key in sorted(files):
        parts.append(f"{key}={sha256_file(files[key])}")
    return sha256_text(*parts)[:20]


PARQUET_CONTEXT_ITEMS = 50  # the most recent context items written per sample; the full context is in dialogues


def write_samples_parquet(path: Path, dialogues: list[Dialogue]) -> int:
    """Samples as a flat Arrow table, for tools outside convrec (pandas, DuckDB). Returns the row count.

    ``context_items`` keeps the most recent ``PARQUET_CONTEXT_ITEMS`` (a MovieLens user's full history per
    sample would be quadratic); ``n_context_items`` is the full count."""
    rows: dict[str, list] = {"split": [], "dialogue_id": [], "turn_index": [], "target": [], "context_items": [],
                             "n_context_items": []}
    for dialogue in dialogues:
        for sample in samples_from_dialogue(dialogue):
            rows["split"].append(dialogue.split)
            rows["dialogue_id"].append(dialogue.dialogue_id)
            rows["turn_index"].append(sample.turn_index)
            rows["target"].append(sample.target)
            context = sample.context_items
            rows["context_items"].append(list(context[-PARQUET_CONTEXT_ITEMS:]))
            rows["n_context_items"].append(len(context))
    with atomic_write(path, "wb") as handle:
        pq.write_table(pa.table(rows), handle)
    return len(rows["target"])


def check_conversion(conversion: Conversion, name: str) -> None:
    """Refuse a conversion that ``load_processed`` could not read back, before it replaces a good cache."""
    catalog = conversion.catalog
    seen: set[str] = set()
    for dialogue in conversion.dialogues:
        where = f"converter '{name}', dialogue {dialogue.dialogue_id!r}"
        if dialogue.dialogue_id in seen:
            raise DataError(f"{where}: duplicate dialogue_id")
        seen.add(dialogue.dialogue_id)
        if dialogue.split not in SPLITS:
            raise DataError(f"{where}: split must be one of {', '.join(SPLITS)}, got {dialogue.split!r}")
        if not dialogue.turns:
            raise DataError(f"{where}: no turns")
        for turn in dialogue.turns:
            if turn.role not in ROLES:
                raise DataError(f"{where}: role must be one of {', '.join(ROLES)}, got {turn.role!r}")
            for item in turn.items:
                if item not in catalog:
                    raise DataError(f"{where}: item id {item!r} is not in the catalogue")
        for item in dialogue.feedback:
            if item not in catalog:
                raise DataError(f"{where}: feedback item id {item!r} is not in the catalogue")


def _staging_prefixes(name: str) -> tuple[str, str]:
    """The names of a build's staging folders beside ``processed/NAME``: the new files, and the old folder."""
    return f".{name}.building-", f".{name}.old-"


def save_processed(out_dir: Path, conversion: Conversion, info: dict[str, Any]) -> dict[str, Any]:
    """Write a processed dataset into a staging folder, then swap it in: a crash leaves the old cache intact.

    ``build.json`` is written last and records each file's size and sha256, which ``load_processed`` checks."""
    check_conversion(conversion, str(info.get("name", out_dir.name)))
    building, replaced = _staging_prefixes(out_dir.name)
    remove_stale_staging(out_dir.parent, (building, replaced))
    # A private staging folder per build: two builds at once never write into each other's files.
    staging = make_staging_dir(out_dir.parent, building)
    try:
        conversion.catalog.write_jsonl(staging / "catalog.jsonl")
        write_dialogues_jsonl(staging / "dialogues.jsonl", conversion.dialogues)
        n_samples = write_samples_parquet(staging / "samples.parquet", conversion.dialogues)
        info = {
            **info,
            "n_items": len(conversion.catalog),
            "n_dialogues": {s: sum(d.split == s for d in conversion.dialogues) for s in SPLITS},
            "n_samples_total": n_samples,
            "report": conversion.report,
            "files": {name: {"bytes": (staging / name).stat().st_size, "sha256": sha256_file(staging / name)}
                      for name in PROCESSED_FILES},
        }
        write_json(staging / "build.json", info)
        old = make_staging_dir(out_dir.parent, replaced)
        if out_dir.exists():
            out_dir.replace(old / "previous")
        staging.replace(out_dir)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return info


def _repair_hint(name: str, info: dict[str, Any] | None) -> str:
    """What rebuilds a damaged processed dataset: the converter for a bundled one, the import for the user's."""
    imported_from = (info or {}).get("imported_from")
    if isinstance(imported_from, list) and len(imported_from) == 2:
        catalog, dialogues = imported_from
        return (f"import it again: convrec data import --name {name} --catalog {catalog} --dialogues {dialogues} "
                "--force")
    if info is None:
        return (f"rebuild it: convrec data build {name} --rebuild (or, for a dataset you imported, import it "
                "again with --force)")
    return f"rebuild it: convrec data build {name} --rebuild"


def _read_build_info(out_dir: Path, name: str) -> dict[str, Any]:
    path = out_dir / "build.json"
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError("missing: not a processed dataset folder", path, hint=_repair_hint(name, None)) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"damaged, not valid JSON ({err})", path, hint=_repair_hint(name, None)) from None
    if not isinstance(info, dict):
        raise DataError("damaged: expected a JSON object", path, hint=_repair_hint(name, None))
    return info


def _check_files(out_dir: Path, name: str, info: dict[str, Any]) -> None:
    """Each processed file as build.json recorded it: a file cut short (lines lost, a line truncated) or changed
    is refused before it is read, instead of being read as a smaller dataset."""
    records = info.get("files")
    if records is None:  # a cache from before CACHE_FORMAT 3; the counts are still checked after reading
        return
    hint = _repair_hint(name, info)
    for file_name in PROCESSED_FILES:
        record = records.get(file_name) if isinstance(records, dict) else None
        if not (isinstance(record, dict) and isinstance(record.get("bytes"), int)
                and isinstance(record.get("sha256"), str)):
            raise DataError(f"damaged: no size and sha256 recorded for {file_name}", out_dir / "build.json",
                            hint=hint)
        path = out_dir / file_name
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise DataError("missing from the processed dataset", path, hint=hint) from None
        if size != record["bytes"]:
            raise DataError(f"{size} bytes, but {record['bytes']} were written when the dataset was built: the "
                            "processed file was cut short or changed since (lines lost or truncated)", path,
                            hint=hint)
        if sha256_file(path) != record["sha256"]:
            raise DataError("its content changed since the dataset was built (sha256 differs from build.json)",
                            path, hint=hint)


def _check_counts(out_dir: Path, name: str, info: dict[str, Any], catalog: Catalog,
                  dialogues: list[Dialogue]) -> None:
    """The item and dialogue counts build.json recorded (they catch lost lines in caches without sizes)."""
    hint = _repair_hint(name, info)
    n_items = info.get("n_items")
    if isinstance(n_items, int) and len(catalog) != n_items:
        raise DataError(f"{len(catalog)} items, but {n_items} were written when the dataset was built",
                        out_dir / "catalog.jsonl", hint=hint)
    n_dialogues = info.get("n_dialogues")
    if isinstance(n_dialogues, dict) and all(isinstance(n, int) for n in n_dialogues.values()):
        expected = sum(n_dialogues.values())
        if len(dialogues) != expected:
            raise DataError(f"{len(dialogues)} dialogues, but {expected} were written when the dataset was built",
                            out_dir / "dialogues.jsonl", hint=hint)


def load_processed(out_dir: Path, name: str) -> CRSDataset:
    """Read a processed dataset, checked against what ``build.json`` recorded when it was written: a damaged
    cache is a :class:`DataError` that says how to rebuild it, never a smaller dataset evaluated with rc 0."""
    remove_stale_staging(out_dir.parent, _staging_prefixes(out_dir.name))
    info = _read_build_info(out_dir, name)
    _check_files(out_dir, name, info)
    # Loading creates hundreds of thousands of small objects and no cycles: the cyclic GC only costs time
    # here (about 40% of a warm ReDial load, measured by bench/bench_datasets.py).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        catalog = Catalog.read_jsonl(out_dir / "catalog.jsonl", name=f"{name}/catalog.jsonl")
        dialogues = read_dialogues_jsonl(out_dir / "dialogues.jsonl", catalog)
    except DataError as err:  # in files convrec wrote itself: the cache is damaged, whatever the line says
        raise DataError(err.reason, err.path, err.line, hint=_repair_hint(name, info)) from None
    finally:
        if gc_was_enabled:
            gc.enable()
    _check_counts(out_dir, name, info, catalog, dialogues)
    return CRSDataset(name, catalog, dialogues, info)


def build_dataset(converter: Converter, files: dict[str, Path], processed_root: Path, force: bool = False) -> CRSDataset:
    """Load the cached conversion if its fingerprint matches the inputs, else convert and cache."""
    out_dir = processed_root / converter.name
    fingerprint = _fingerprint(converter, files)
    build_file = out_dir / "build.json"
    if not force and build_file.exists():
        try:
            cached = json.loads(build_file.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            cached = None  # damaged: rebuilt below
        if isinstance(cached, dict) and cached.get("fingerprint") == fingerprint:
            return load_processed(out_dir, converter.name)
    started = time.perf_counter()
    conversion = converter.convert(files)
    if not conversion.dialogues:
        raise DataError(f"converter '{converter.name}' produced no dialogues")
    save_processed(
        out_dir,
        conversion,
        {"name": converter.name, "fingerprint": fingerprint, "converter_version": converter.version,
         "build_seconds": round(time.perf_counter() - started, 2)},
    )
    return load_processed(out_dir, converter.name)
