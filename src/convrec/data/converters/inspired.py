"""INSPIRED (Hayati et al. 2020) into the generic model, with the 801/99/99 split of the dbpedia release.

INSPIRED names movies by title ("Hustlers (2019)"), so the catalogue is built from every movie the dialogues
mention, keyed by a slug of title and year, and enriched with metadata from ReDial's ``movie_metadata.json``
and the mirror's ``catalog/`` files by exact (title, year). Consecutive utterances of one speaker are merged.

Seeker feedback: the official annotated dev/test release labels each dialogue with the seeker's answer to the
final recommendation (accept_* or reject). A dialogue is matched to its annotated twin by its first
utterances; the label is attached to the last movie the recommender mentioned (our reading: that is the
movie whose trailer the seeker was shown). Train dialogues have no such label here.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

from convrec.catalog.items import Catalog, Item
from convrec.catalog.titles import normalize_title, split_year
from convrec.data.converters.common import MovieMetadataIndex
from convrec.data.dataset import Conversion, Converter
from convrec.data.model import Dialogue, ItemFeedback, Turn
from convrec.io import DataError, iter_jsonl

SPLIT_FILES = {"train": "train_data_dbpedia.jsonl", "valid": "valid_data_dbpedia.jsonl", "test": "test_data_dbpedia.jsonl"}
ROLE = {"SEEKER": "seeker", "RECOMMENDER": "recommender"}


def item_id_for(title: str) -> str:
    bare, year = split_year(title)
    slug = re.sub(r"\s+", "-", normalize_title(bare)) or "untitled"
    return f"{slug}-{year}" if year else slug


def _movie_titles(utterance: dict[str, Any]) -> list[str]:
    """The utterance's movie titles; the data has one empty title, which names no movie."""
    return [t for t in utterance.get("movie") or [] if normalize_title(split_year(t)[0])]


def _fingerprint_text(texts: list[str]) -> str:
    # The annotated release splits some utterances in two, so compare a prefix of the joined text.
    return normalize_title(" ".join(texts)).replace(" ", "")[:60]


def _official_feedback(files: dict[str, Path]) -> dict[str, bool]:
    """First-utterances fingerprint -> accepted, from the official annotated dev/test files."""
    labels: dict[str, bool] = {}
    for name in ("inspired/official/dev.tsv", "inspired/official/test.tsv"):
        path = files.get(name)
        if path is None:
            continue
        by_dialogue: dict[str, tuple[list[str], str]] = {}
        with open(path, encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle, delimiter="\t")
            for column in ("dialog_id", "text", "fine_label"):
                if column not in (reader.fieldnames or []):
                    raise DataError(f"missing column '{column}'", path, 1)
            for row in reader:
                texts, label = by_dialogue.setdefault(row["dialog_id"], ([], row["fine_label"]))
                if len(texts) < 8:
                    texts.append(row["text"])
        for texts, label in by_dialogue.values():
            if label:
                labels[_fingerprint_text(texts)] = label.startswith("accept")
    return labels


def _dialogue_turns(utterances: list[dict[str, Any]], path: Path, line: int) -> list[Turn]:
    turns: list[Turn] = []
    for number, utterance in enumerate(utterances, start=1):
        role = ROLE.get(utterance.get("role"))
        if role is None:
            raise DataError(f"utterance {number}: role must be SEEKER or RECOMMENDER, got {utterance.get('role')!r}",
                            path, line)
        items = tuple(dict.fromkeys(item_id_for(t) for t in _movie_titles(utterance)))
        text = " ".join(str(utterance.get("text", "")).split())
        if turns and turns[-1].role == role:
            last = turns.pop()
            text = f"{last.text} {text}".strip()
            items = last.items + tuple(i for i in items if i not in last.items)
        turns.append(Turn(role, text, items))  # type: ignore[arg-type]
    return turns


def convert(files: dict[str, Path]) -> Conversion:
    titles: dict[str, str] = {}
    raw: list[tuple[str, int, list[dict[str, Any]], Path, int]] = []
    for split, filename in SPLIT_FILES.items():
        path = files[f"inspired/{filename}"]
        for index, (line, utterances) in enumerate(iter_jsonl(path)):
            if not isinstance(utterances, list):
                raise DataError("expected a list of utterances", path, line)
            for utterance in utterances:
                for title in _movie_titles(utterance):
                    titles.setdefault(item_id_for(title), " ".join(title.split()))
            raw.append((split, index, utterances, path, line))

    metadata_index = MovieMetadataIndex(files)
    enriched = 0
    items = []
    for item_id, title in sorted(titles.items()):
        bare, year = split_year(title)
        meta: dict[str, Any] = {}
        enriched += metadata_index.enrich(bare, year, meta)
        items.append(Item(item_id, bare, year, meta))
    catalog = Catalog(items, name="inspired")

    labels = _official_feedback(files)
    matched = 0
    dialogues = []
    for split, index, utterances, path, line in raw:
        turns = _dialogue_turns(utterances, path, line)
        feedback: dict[str, ItemFeedback] = {}
        accepted = labels.get(_fingerprint_text([str(u.get("text", "")) for u in utterances[:8]]))
        recommended = [i for t in turns if t.role == "recommender" for i in t.items]
        if accepted is not None and recommended:
            feedback[recommended[-1]] = ItemFeedback(accepted=accepted)
            matched += 1
        dialogues.append(Dialogue(f"{split}-{index:04d}", split, turns, feedback, {"source": path.name}))
    report = {"catalog": {"items": len(catalog), "with_metadata": enriched},
              "feedback": {"dialogues_with_accept_label": matched, "official_labels": len(labels)}}
    return Conversion(catalog, dialogues, report)


INSPIRED = Converter(name="inspired", sources=("inspired", "catalog", "redial"), version="2", convert=convert)
