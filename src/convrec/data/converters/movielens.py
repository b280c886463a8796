"""MovieLens ml-latest-small into the generic model: each user is one item sequence (no roles, no text).

Used for pre-training sequential retrievers; the catalogue keeps each movie's IMDb id (``links.csv``) so it
can be joined to ReDial's catalogue. Every user is in ``train``: MovieLens is never an evaluation target here.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from convrec.catalog.items import Catalog, Item
from convrec.catalog.titles import split_year
from convrec.data.converters.common import read_csv_rows
from convrec.data.dataset import Conversion, Converter
from convrec.data.model import Dialogue, ItemFeedback, Turn
from convrec.io import DataError

ROOT = "movielens/ml-latest-small"
LIKED_RATING = 4.0


def convert(files: dict[str, Path]) -> Conversion:
    imdb: dict[str, str] = {}
    for _, row in read_csv_rows(files[f"{ROOT}/links.csv"], ("movieId", "imdbId")):
        if row["imdbId"]:
            imdb[row["movieId"]] = f"tt{int(row['imdbId']):07d}"
    items = []
    for _, row in read_csv_rows(files[f"{ROOT}/movies.csv"], ("movieId", "title", "genres")):
        title, year = split_year(row["title"])
        meta = {"genre": [g.lower() for g in row["genres"].split("|") if g and g != "(no genres listed)"]}
        if row["movieId"] in imdb:
            meta["imdb_id"] = imdb[row["movieId"]]
        items.append(Item(row["movieId"], title, year, meta))
    catalog = Catalog(items, name="movielens")

    ratings_path = files[f"{ROOT}/ratings.csv"]
    by_user: dict[str, list[tuple[int, str, float]]] = defaultdict(list)
    for line, row in read_csv_rows(ratings_path, ("userId", "movieId", "rating", "timestamp")):
        if row["movieId"] not in catalog:
            raise DataError(f"movieId {row['movieId']} is not in movies.csv", ratings_path, line)
        try:
            by_user[row["userId"]].append((int(row["timestamp"]), row["movieId"], float(row["rating"])))
        except ValueError:
            raise DataError("rating and timestamp must be numbers", ratings_path, line) from None
    dialogues = []
    for user, events in sorted(by_user.items(), key=lambda kv: int(kv[0])):
        events.sort()
        turns = [Turn("unknown", "", (movie,)) for _, movie, _ in events]
        feedback = {movie: ItemFeedback(liked=rating >= LIKED_RATING) for _, movie, rating in events}
        dialogues.append(Dialogue(f"user-{user}", "train", turns, feedback, {"source": "ratings.csv"}))
    return Conversion(catalog, dialogues, {"users": len(dialogues), "ratings": sum(len(d.turns) for d in dialogues)})


MOVIELENS = Converter(name="movielens", sources=("movielens",), version="1", convert=convert)
