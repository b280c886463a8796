"""Reading and writing the generic dialogue format (docs/data-format.md).

Every bundled converter writes exactly this format, and ``convrec data import`` reads it, so a user's own
domain goes through the same code as ReDial.
"""

from __future__ import annotations

import json
import os
import reprlib
from collections.abc import Iterable
from typing import Any

from convrec.catalog.items import Catalog, is_id
from convrec.data.model import ROLES, SPLITS, Dialogue, ItemFeedback, Turn
from convrec.io import DataError, atomic_write, iter_jsonl

_FEEDBACK_KEYS = ("liked", "seen", "accepted")


def dialogue_to_json(dialogue: Dialogue) -> dict[str, Any]:
    record: dict[str, Any] = {
        "dialogue_id": dialogue.dialogue_id,
        "split": dialogue.split,
        "turns": [
            {"role": t.role, "text": t.text, **({"items": list(t.items)} if t.items else {})} for t in dialogue.turns
        ],
    }
    feedback = {item: fb.to_json() for item, fb in dialogue.feedback.items() if fb.to_json()}
    if feedback:
        record["feedback"] = feedback
    if dialogue.metadata:
        record["metadata"] = dialogue.metadata
    return record


def write_dialogues_jsonl(path: str | os.PathLike, dialogues: Iterable[Dialogue]) -> None:
    with atomic_write(path) as handle:
        for dialogue in dialogues:
            handle.write(json.dumps(dialogue_to_json(dialogue), ensure_ascii=False) + "\n")


def _turn_from_json(raw: Any, number: int, catalog: Catalog, path, line) -> Turn:
    where = f"turn {number}"
    if not isinstance(raw, dict):
        raise DataError(f"{where}: expected an object with 'role' and 'text'", path, line)
    role = raw.get("role")
    if role not in ROLES:
        raise DataError(f"{where}: 'role' must be one of {', '.join(ROLES)}, got {role!r}", path, line)
    text = raw.get("text", "")
    if not isinstance(text, str):
        raise DataError(f"{where}: 'text' must be a string", path, line)
    items = raw.get("items", [])
    if not isinstance(items, list):
        raise DataError(f"{where}: 'items' must be a list of item ids", path, line)
    ids = []
    for item in items:
        if not is_id(item):
            raise DataError(f"{where}: 'items' must be a list of item ids (strings or integers), "
                            f"got {reprlib.repr(item)} in it", path, line)
        item = str(item)
        if item not in catalog:
            raise DataError(f"{where}: item id {item!r} is not in the catalogue '{catalog.name}'", path, line)
        if item not in ids:
            ids.append(item)
    return Turn(role, text, tuple(ids))


def dialogue_from_json(record: Any, catalog: Catalog, path=None, line=None, default_split: str | None = None) -> Dialogue:
    """Validate one dialogue record against the catalogue; errors name the file, line and field."""
    if not isinstance(record, dict):
        raise DataError(f"expected a JSON object, got {type(record).__name__}", path, line)
    if "dialogue_id" not in record:
        raise DataError("missing field 'dialogue_id'", path, line)
    if not is_id(record["dialogue_id"]):
        raise DataError(f"field 'dialogue_id' must be a non-empty string or an integer, "
                        f"got {reprlib.repr(record['dialogue_id'])}", path, line)
    split = record.get("split", default_split)
    if split not in SPLITS:
        raise DataError(f"field 'split' must be one of {', '.join(SPLITS)}, got {split!r}", path, line)
    raw_turns = record.get("turns")
    if not isinstance(raw_turns, list) or not raw_turns:
        raise DataError("field 'turns' must be a non-empty list", path, line)
    turns = [_turn_from_json(raw, n, catalog, path, line) for n, raw in enumerate(raw_turns, start=1)]
    feedback: dict[str, ItemFeedback] = {}
    raw_feedback = {} if record.get("feedback") is None else record["feedback"]
    if not isinstance(raw_feedback, dict):
        raise DataError("field 'feedback' must be an object mapping item ids to {liked, seen, accepted}", path, line)
    for item, values in raw_feedback.items():
        if item not in catalog:
            raise DataError(f"feedback: item id {item!r} is not in the catalogue '{catalog.name}'", path, line)
        if not isinstance(values, dict) or set(values) - set(_FEEDBACK_KEYS):
            raise DataError(f"feedback for {item!r}: expected an object with keys among {_FEEDBACK_KEYS}", path, line)
        for key, value in values.items():
            if value is not None and not isinstance(value, bool):
                raise DataError(f"feedback for {item!r}: '{key}' must be true, false or null, got {value!r}", path, line)
        feedback[item] = ItemFeedback(**values)
    metadata = {} if record.get("metadata") is None else record["metadata"]
    if not isinstance(metadata, dict):
        raise DataError("field 'metadata' must be an object", path, line)
    return Dialogue(str(record["dialogue_id"]), split, turns, feedback, metadata)


def read_dialogues_jsonl(path: str | os.PathLike, catalog: Catalog, default_split: str | None = None) -> list[Dialogue]:
    dialogues = []
    seen: dict[str, int] = {}
    for line, record in iter_jsonl(path):
        dialogue = dialogue_from_json(record, catalog, path, line, default_split)
        if dialogue.dialogue_id in seen:
            raise DataError(
                f"duplicate dialogue_id {dialogue.dialogue_id!r} (first on line {seen[dialogue.dialogue_id]})", path, line
            )
        seen[dialogue.dialogue_id] = line
        dialogues.append(dialogue)
    if not dialogues:
        raise DataError("no dialogues in file", path)
    return dialogues
