"""OpenDialKG's book dialogues into the generic model: a second, non-movie domain.

The catalogue is every book named in a turn's ``item`` list (the KG entity name, which is also the title);
users are seekers and assistants recommenders. No official split exists: 80/10/10 by a hash of the line.
"""

from __future__ import annotations

import re
from pathlib import Path

from convrec.catalog.items import Catalog, Item
from convrec.catalog.titles import normalize_title
from convrec.data.converters.common import held_out
from convrec.data.dataset import Conversion, Converter
from convrec.data.model import Dialogue, Turn
from convrec.io import DataError, iter_jsonl

ROLE = {"user": "seeker", "assistant": "recommender"}


def book_id(name: str) -> str:
    return re.sub(r"\s+", "-", normalize_title(name)) or "untitled"


def convert(files: dict[str, Path]) -> Conversion:
    path = files["opendialkg_books/dialogs.jsonl"]
    titles: dict[str, str] = {}
    dialogues = []
    for line, turns_raw in iter_jsonl(path):
        if not isinstance(turns_raw, list):
            raise DataError("expected a list of turns", path, line)
        turns: list[Turn] = []
        for number, raw in enumerate(turns_raw, start=1):
            role = ROLE.get(raw.get("role"))
            if role is None:
                raise DataError(f"turn {number}: role must be user or assistant, got {raw.get('role')!r}", path, line)
            ids = []
            for name in raw.get("item") or []:
                titles.setdefault(book_id(name), name.strip())
                ids.append(book_id(name))
            turns.append(Turn(role, str(raw.get("text", "")), tuple(dict.fromkeys(ids))))  # type: ignore[arg-type]
        key = f"line-{line}"
        split = "test" if held_out(key, 0.1, "odkg-test") else ("valid" if held_out(key, 0.1 / 0.9, "odkg-valid") else "train")
        dialogues.append(Dialogue(f"odkg-{line:05d}", split, turns, {}, {"source": path.name}))
    catalog = Catalog([Item(i, t, None, {}) for i, t in sorted(titles.items())], name="opendialkg-books")
    return Conversion(catalog, dialogues, {"books": len(catalog)})


OPENDIALKG_BOOKS = Converter(name="opendialkg-books", sources=("opendialkg-books",), version="1", convert=convert)
