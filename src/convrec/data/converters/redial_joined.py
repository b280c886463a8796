"""ReDial's dialogues over every movie the mirror lists: ``redial-joined``.

RAR's retriever serves a 337k-movie corpus; ReDial's own catalogue has 6,924 movies. This dataset keeps
ReDial's dialogues, splits and targets exactly (the ``redial`` converter builds them) and adds as distractors
every other movie of MovieTweetings (38k titles with IMDb ids), MovieLens latest-small (9.7k, IMDb ids by
``links.csv``) and MovieLens-1M with TMDB and OMDb text (3.9k), joined by IMDb id and normalised (title,
year) (:mod:`convrec.catalog.join`). ReDial's items come first, unchanged, so an item's column is the same
in ``redial`` and ``redial-joined`` and a difference between the two is the distractors' doing alone. The
join report (records per source, merges, conflicts with examples) is in ``build.json`` and printed by
``convrec data build redial-joined``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from convrec.catalog.join import SourceRecord, join_catalogs
from convrec.catalog.titles import normalize_title, split_year
from convrec.data.converters import redial
from convrec.data.converters.common import read_csv_rows
from convrec.data.dataset import Conversion, Converter
from convrec.io import DataError

ML_ROOT = "movielens/ml-latest-small"
# Metadata: the richest source first. Titles: MovieTweetings and OMDb write "Il Postino", MovieLens writes
# "Postino, Il (The Postman)", so MovieLens' form is the last resort.
SOURCES = ("ml1m-omdb", "ml1m-tmdb", "movielens", "movietweetings")
TITLE_PRIORITY = ("movietweetings", "ml1m-omdb", "ml1m-tmdb", "movielens")
_CREDIT_NOTE = re.compile(r"\s*\([^)]*\)")  # "Joss Whedon (screenplay by)" -> "Joss Whedon"
_TRAILING_ARTICLE = re.compile(r"^(.*), (The|A|An)$")


def _imdb(number: str) -> str | None:
    number = number.strip()
    return f"tt{int(number):07d}" if number.isdigit() and int(number) > 0 else None


def _year(text: str) -> int | None:
    text = text.strip()[:4]
    return int(text) if text.isdigit() else None


def _names(text: str, limit: int = 5) -> list[str]:
    if not text or text.strip() == "N/A":
        return []
    names = [_CREDIT_NOTE.sub("", part).strip() for part in text.split(",")]
    return list(dict.fromkeys(n for n in names if n))[:limit]


def _genres(text: str) -> list[str]:
    return [g.strip().lower() for g in re.split(r"[|,]", text) if g.strip() and g.strip() != "(no genres listed)"]


def _movielens_title(raw: str) -> tuple[str, int | None]:
    """``"Postman, The (Postino, Il) (1994)"`` -> ``("The Postman", 1994)``: the alternative title dropped."""
    title, year = split_year(raw)
    title = re.sub(r"\s*\((a\.k\.a\. )?[^()]*\)\s*$", "", title) or title
    match = _TRAILING_ARTICLE.match(title)
    return (f"{match.group(2)} {match.group(1)}" if match else title), year


def movielens_records(files: dict[str, Path]) -> tuple[list[SourceRecord], dict[str, tuple[str, int | None]],
                                                       dict[str, str]]:
    """ml-latest-small's movies, and its links: MovieLens id -> (IMDb id, year) and TMDB id -> IMDb id."""
    links: dict[str, str] = {}
    by_tmdb: dict[str, str] = {}
    for _, row in read_csv_rows(files[f"{ML_ROOT}/links.csv"], ("movieId", "imdbId", "tmdbId")):
        imdb = _imdb(row["imdbId"])
        if imdb:
            links[row["movieId"]] = imdb
            if row["tmdbId"].strip():
                by_tmdb[row["tmdbId"].strip()] = imdb
    records = []
    by_movielens_id: dict[str, tuple[str, int | None]] = {}
    for _, row in read_csv_rows(files[f"{ML_ROOT}/movies.csv"], ("movieId", "title", "genres")):
        title, year = _movielens_title(row["title"])
        imdb = links.get(row["movieId"])
        if imdb:
            by_movielens_id[row["movieId"]] = (imdb, year)
        records.append(SourceRecord("movielens", row["movieId"], title, year, imdb, {"genre": _genres(row["genres"])}))
    return records, by_movielens_id, by_tmdb


def _ml1m_imdb(movie_id: str, year: int | None, tmdb_id: str, by_movielens_id: dict[str, tuple[str, int | None]],
               by_tmdb: dict[str, str]) -> tuple[str | None, str]:
    """MovieLens-1M and latest-small share movie ids; trust a shared id when the years agree, else the TMDB id."""
    known = by_movielens_id.get(movie_id)
    if known and (year is None or known[1] is None or abs(known[1] - year) <= 1):
        return known[0], "movielens id"
    if tmdb_id and tmdb_id in by_tmdb:
        return by_tmdb[tmdb_id], "tmdb id"
    return None, "none"


def ml1m_records(files: dict[str, Path], by_movielens_id: dict[str, tuple[str, int | None]],
                 by_tmdb: dict[str, str]) -> tuple[list[SourceRecord], dict[str, int]]:
    tied: dict[str, int] = {"movielens id": 0, "tmdb id": 0, "none": 0}
    records = []
    imdb_of: dict[str, str | None] = {}
    tmdb_path = files["catalog/ml1m_tmdb.csv"]
    for line, row in read_csv_rows(tmdb_path, ("movieId", "title", "year", "tmdb_id", "tmdb_title", "tmdb_overview",
                                               "tmdb_genres", "tmdb_top_cast", "tmdb_keywords")):
        bare, year_in_title = split_year(row["title"])
        year = _year(row["year"]) or year_in_title
        imdb, how = _ml1m_imdb(row["movieId"], year, row["tmdb_id"].strip(), by_movielens_id, by_tmdb)
        tied[how] += 1
        imdb_of[row["movieId"]] = imdb
        title = row["tmdb_title"].strip() or _movielens_title(row["title"])[0]
        if not title:
            raise DataError("a movie with no title", tmdb_path, line)
        meta: dict[str, Any] = {"genre": _genres(row["tmdb_genres"]), "plot": row["tmdb_overview"].strip(),
                                "star": _names(row["tmdb_top_cast"]), "keywords": _names(row["tmdb_keywords"], 8)}
        records.append(SourceRecord("ml1m-tmdb", row["movieId"], title, year, imdb, meta))
    omdb_path = files["catalog/ml1m_omdb_extrainfos.dat"]
    with open(omdb_path, encoding="utf-8") as handle:
        for line, text in enumerate(handle, 1):
            fields = text.rstrip("\n").split("::")
            if len(fields) != 11:
                raise DataError(f"expected 11 '::'-separated fields, got {len(fields)}", omdb_path, line)
            movie_id, title, year_text, _, _, genres, director, writers, actors, plot, _ = fields
            meta = {"genre": _genres(genres), "director": _names(director), "writer": _names(writers),
                    "star": _names(actors), "plot": "" if plot.strip() == "N/A" else plot.strip()}
            imdb = imdb_of.get(movie_id)
            if movie_id not in imdb_of:
                imdb, how = _ml1m_imdb(movie_id, _year(year_text), "", by_movielens_id, by_tmdb)
            records.append(SourceRecord("ml1m-omdb", movie_id, title.strip(), _year(year_text), imdb, meta))
    return records, tied


def movietweetings_records(files: dict[str, Path]) -> list[SourceRecord]:
    path = files["catalog/movietweetings_titles.csv"]
    records = []
    for line, row in read_csv_rows(path, ("movie_id", "title", "year", "genres")):
        imdb = _imdb(row["movie_id"])
        if imdb is None:
            raise DataError(f"movie_id must be a positive integer (an IMDb number), got {row['movie_id']!r}", path, line)
        title = row["title"].strip()
        if not normalize_title(title):
            continue  # a title of punctuation alone names nothing a seeker could ask for
        records.append(SourceRecord("movietweetings", row["movie_id"], title, _year(row["year"]), imdb,
                                    {"genre": _genres(row["genres"])}))
    return records


def convert(files: dict[str, Path]) -> Conversion:
    base = redial.convert(files)
    movielens, by_movielens_id, by_tmdb = movielens_records(files)
    ml1m, tied = ml1m_records(files, by_movielens_id, by_tmdb)
    records = [*ml1m, *movielens, *movietweetings_records(files)]
    catalog, report = join_catalogs(base.catalog, records, SOURCES, TITLE_PRIORITY)
    join = report.to_json()
    join["movielens_1m_imdb_ids_from"] = tied
    return Conversion(catalog, base.dialogues, {**base.report, "join": join})


REDIAL_JOINED = Converter(
    name="redial-joined",
    sources=("redial", "catalog", "movielens"),
    version="1",
    convert=convert,
)
