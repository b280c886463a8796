"""Pieces every converter shares: located CSV reading, split assignment, movie metadata enrichment."""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from convrec.catalog.titles import normalize_title, split_year
from convrec.io import DataError


def read_csv_rows(path: Path, required: tuple[str, ...], delimiter: str = ",") -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(line_number, row)``; a missing column or a short row is a DataError naming file and line."""
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        header = reader.fieldnames or []
        missing = [c for c in required if c not in header]
        if missing:
            raise DataError(f"missing column(s) {', '.join(missing)}; the header has {', '.join(header)}", path, 1)
        for row in reader:
            if any(row.get(c) is None for c in required):
                raise DataError(f"row has too few fields (expected {', '.join(required)})", path, reader.line_num)
            yield reader.line_num, row


def held_out(key: str, share: float = 0.1, salt: str = "convrec-valid") -> bool:
    """Deterministic split by id: the same conversation lands in the same split on every machine."""
    digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < share


def _split_list(value: str, sep: str = ",") -> list[str]:
    return [v.strip() for v in value.replace("|", sep).split(sep) if v.strip()]


class MovieMetadataIndex:
    """Movie metadata from the mirror's ``catalog/`` files, looked up by (normalised title, year)."""

    def __init__(self, files: dict[str, Path]):
        self._by_key: dict[tuple[str, int | None], dict[str, Any]] = {}
        self.title_by_imdb: dict[str, str] = {}
        redial = files.get("redial/movie_metadata.json")
        if redial is not None:
            for movie in json.loads(redial.read_text(encoding="utf-8")).values():
                title, year = split_year(" ".join(str(movie.get("name", "")).split()))
                fields = ("genre", "plot", "director", "writer", "star", "imdb_id")
                self._add(title, year, {k: movie[k] for k in fields if movie.get(k)})
        tmdb = files.get("catalog/ml1m_tmdb.csv")
        if tmdb is not None:
            for _, row in read_csv_rows(tmdb, ("title", "year", "tmdb_overview", "tmdb_genres", "tmdb_top_cast")):
                title, year = split_year(row["title"])
                meta = {
                    "genre": [g.lower() for g in _split_list(row["tmdb_genres"] or row.get("genres", ""))],
                    "plot": row["tmdb_overview"],
                    "star": _split_list(row["tmdb_top_cast"])[:5],
                }
                self._add(title, int(row["year"]) if row["year"].isdigit() else year, meta)
        tweetings = files.get("catalog/movietweetings_titles.csv")
        if tweetings is not None:
            for _, row in read_csv_rows(tweetings, ("movie_id", "title", "year", "genres")):
                meta = {"genre": [g.lower() for g in _split_list(row["genres"])], "imdb_id": f"tt{int(row['movie_id']):07d}"}
                self.title_by_imdb[meta["imdb_id"]] = row["title"]
                self._add(row["title"], int(row["year"]) if row["year"].isdigit() else None, meta)

    def _add(self, title: str, year: int | None, meta: dict[str, Any]) -> None:
        key = (normalize_title(title), year)
        existing = self._by_key.setdefault(key, {})
        for field, value in meta.items():
            if value and not existing.get(field):
                existing[field] = value

    def lookup(self, title: str, year: int | None) -> dict[str, Any]:
        return self._by_key.get((normalize_title(title), year), {})

    def enrich(self, title: str, year: int | None, metadata: dict[str, Any]) -> bool:
        """Fill the fields ``metadata`` lacks; True when anything was added."""
        found = self.lookup(title, year)
        added = False
        for field, value in found.items():
            if value and not metadata.get(field):
                metadata[field] = value
                added = True
        return added
