"""ReDial (Li et al. 2018) into the generic model.

- Catalogue: the 6,924 movies of ``movies_with_mentions.csv``, enriched from ``movie_metadata.json`` and,
  for movies it lacks, from the mirror's ``catalog/`` files by exact (title, year).
- Test: the official ``test_data.jsonl``. Consecutive messages of one speaker are merged into one turn (as
  CRSLab and UniCRS do), so a recommender's burst of messages is one recommendation turn.
- Train/valid: ``train_assembled.jsonl``, every tier used: @id text (T1) as is; quoted or bracketed titles
  (T2, T2b) and inline titles (T2 iard, T3 prefixes) linked to ids through the dialogue's own movie list
  first and the catalogue second; records with only a movie list (T4, untagged T3) become item sequences
  with no roles. The latest 10% of conversations by id validate (version 4; before, a hash of the id):
  ReDial's test conversations were collected after every train conversation, and a validation split drawn
  from the same weeks as training read ~0.05 Recall@10 above test for every recommender, while the latest
  tenth reads like test (docs/results/validation.md).
  ``T2_full_text_no_id`` records have no conversation id, so they cannot be checked against the test
  split; they are left out to avoid leakage.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from convrec.catalog.items import Catalog, Item
from convrec.catalog.titles import Link, LinkReport, TitleLinker, normalize_title, split_year
from convrec.data.converters.common import MovieMetadataIndex, read_csv_rows
from convrec.data.dataset import Conversion, Converter
from convrec.data.model import Dialogue, ItemFeedback, Turn
from convrec.io import DataError, iter_jsonl

MENTION = re.compile(r"@(\d+)")
QUOTED = re.compile(r'"([^"]{1,150}?\(\d{4}\))\s*"')
BRACKETED = re.compile(r"\[([^\[\]]{1,150})\]")
VALID_SHARE = 0.1  # the latest tenth of train conversations validates
SHORT_TITLE = 4  # titles this short are matched case-sensitively, never at a sentence start
METADATA_FIELDS = ("genre", "plot", "director", "writer", "star", "imdb_id")


def _clean_title(raw: str) -> tuple[str, int | None]:
    title, year = split_year(" ".join(raw.split()))
    return title, year


def build_catalog(files: dict[str, Path]) -> tuple[Catalog, dict[str, int]]:
    movies_path = files["redial/movies_with_mentions.csv"]
    metadata_path = files["redial/movie_metadata.json"]
    try:
        metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"not valid JSON ({err.msg})", metadata_path, err.lineno) from None
    extra = MovieMetadataIndex(files)
    stats = {"from_movie_metadata": 0, "from_catalog_files": 0, "no_metadata": 0, "title_from_imdb_id": 0,
             "untitled": 0}
    items = []
    for line, row in read_csv_rows(movies_path, ("movieId", "movieName", "nbMentions")):
        if not row["movieId"].strip().isdigit():
            raise DataError(f"movieId must be an integer, got {row['movieId']!r}", movies_path, line)
        title, year = _clean_title(row["movieName"])
        meta: dict[str, Any] = {"mentions": int(row["nbMentions"] or 0)}
        known = metadata.get(row["movieId"].strip())
        if known:
            stats["from_movie_metadata"] += 1
            meta.update({k: known[k] for k in METADATA_FIELDS if known.get(k)})
        elif extra.enrich(title, year, meta):
            stats["from_catalog_files"] += 1
        else:
            stats["no_metadata"] += 1
        if not title:  # a few rows are only "(2015)": recover the title through the IMDb id where we can
            title = extra.title_by_imdb.get(str(meta.get("imdb_id")), "")
            stats["title_from_imdb_id" if title else "untitled"] += 1
            title = title or f"untitled movie {row['movieId'].strip()}"
        items.append(Item(row["movieId"].strip(), title, year, meta))
    return Catalog(items, name="redial"), stats


def _merge_consecutive(turns: Iterable[Turn]) -> list[Turn]:
    merged: list[Turn] = []
    for turn in turns:
        if merged and merged[-1].role == turn.role and turn.role != "unknown":
            last = merged.pop()
            items = last.items + tuple(i for i in turn.items if i not in last.items)
            turn = Turn(turn.role, f"{last.text} {turn.text}".strip(), items)
        merged.append(turn)
    return merged


def _at_id_turn(role: str, text: str, catalog: Catalog, path: Path, line: int) -> Turn:
    """A message whose movies are written ``@<movieId>``: ids kept, the text shows titles instead."""
    items: list[str] = []
    for movie_id in MENTION.findall(text):
        if movie_id not in catalog:
            raise DataError(f"movie id {movie_id} is not in the catalogue (movies_with_mentions.csv)", path, line)
        if movie_id not in items:
            items.append(movie_id)
    shown = MENTION.sub(lambda m: catalog.get(m.group(1)).display_title if m.group(1) in catalog else m.group(0), text)
    return Turn(role, shown, tuple(items))  # type: ignore[arg-type]


def _form_answer(answers: dict[str, Any], key: str) -> bool | None:
    value = answers.get(key)
    return None if value not in (0, 1) else bool(value)


def _form_feedback(questions: Any) -> dict[str, ItemFeedback]:
    """ReDial's forms: liked/seen 0 no, 1 yes, 2 did not say."""
    return {
        str(movie_id): ItemFeedback(liked=_form_answer(answers, "liked"), seen=_form_answer(answers, "seen"))
        for movie_id, answers in (questions or {}).items()
    }


def convert_test(path: Path, catalog: Catalog) -> list[Dialogue]:
    dialogues = []
    for line, record in iter_jsonl(path):
        for key in ("conversationId", "messages", "initiatorWorkerId"):
            if key not in record:
                raise DataError(f"missing field '{key}'", path, line)
        seeker = record["initiatorWorkerId"]
        turns = []
        for message in record["messages"]:
            role = "seeker" if message.get("senderWorkerId") == seeker else "recommender"
            turns.append(_at_id_turn(role, message.get("text", ""), catalog, path, line))
        feedback = _form_feedback(record.get("initiatorQuestions") or record.get("respondentQuestions"))
        feedback = {k: v for k, v in feedback.items() if k in catalog}
        dialogues.append(
            Dialogue(str(record["conversationId"]), "test", _merge_consecutive(turns), feedback, {"source": "test_data"})
        )
    return dialogues


class _InlineLinker:
    """Links titles written in a train fragment's text, trusting the dialogue's own movie list first."""

    def __init__(self, catalog: Catalog, linker: TitleLinker, report: LinkReport):
        self.catalog, self.linker, self.report = catalog, linker, report

    def link_marked(self, title: str, local: dict[str, str]) -> str | None:
        bare, _ = split_year(title)
        local_id = local.get(normalize_title(bare))
        link = Link(local_id, 100.0, "dialogue-list") if local_id else self.linker.link(title)
        self.report.record(title, link)
        return link.item_id if link else None

    def marked_turn(self, role: str, text: str, pattern: re.Pattern, local: dict[str, str]) -> Turn:
        items: list[str] = []

        def replace(match: re.Match) -> str:
            item_id = self.link_marked(match.group(1), local)
            if item_id and item_id not in items:
                items.append(item_id)
            return " ".join(match.group(1).split())

        shown = pattern.sub(replace, text)
        return Turn(role, shown, tuple(items))  # type: ignore[arg-type]

    @staticmethod
    def inline_turn(role: str, text: str, local_titles: list[tuple[str, str]]) -> Turn:
        """Titles with no markup: find each of the dialogue's own movies by its bare title.

        Short titles ("It", "Up", "Saw", "Coco") are also ordinary words, so they must appear capitalised as
        in the title and not at the start of a sentence, where every word is capitalised.
        """
        lowered = text.lower()
        found = []
        for bare, item_id in local_titles:
            if len(bare) <= SHORT_TITLE:
                match = next((m for m in re.finditer(r"(?<!\w)" + re.escape(bare) + r"(?!\w)", text)
                              if text[: m.start()].rstrip()[-1:] not in ("", ".", "!", "?")), None)
            else:
                match = re.search(r"(?<!\w)" + re.escape(bare.lower()) + r"(?!\w)", lowered)
            if match:
                found.append((match.start(), item_id))
        items = tuple(dict.fromkeys(item_id for _, item_id in sorted(found)))
        return Turn(role, text, items)  # type: ignore[arg-type]


def convert_train(path: Path, catalog: Catalog, report: LinkReport) -> tuple[list[Dialogue], dict[str, int]]:
    linker = _InlineLinker(catalog, TitleLinker(catalog), report)
    counts: dict[str, int] = {}
    dialogues = []
    for line, record in iter_jsonl(path):
        tier = record.get("tier")
        if tier is None:
            raise DataError("missing field 'tier'", path, line)
        conversation = record.get("conversationId")
        if conversation is None:
            counts["skipped_no_conversation_id"] = counts.get("skipped_no_conversation_id", 0) + 1
            continue
        e19 = record.get("e19_movies") or []
        for movie in e19:
            if str(movie.get("movieId")) not in catalog:
                raise DataError(f"e19_movies: movie id {movie.get('movieId')} is not in the catalogue", path, line)
        local = {normalize_title(split_year(m["title"])[0]): str(m["movieId"]) for m in e19}
        # A movie listed only as " (2007)" has no title to look for: searching for "" matches every turn.
        local_titles = sorted(((" ".join(split_year(m["title"])[0].split()), str(m["movieId"])) for m in e19),
                              key=lambda pair: -len(pair[0]))
        local_titles = [pair for pair in local_titles if pair[0]]
        messages = record.get("messages") or []
        mentions_as = record.get("mentions_as") or ""
        roles = {m.get("role") for m in messages}
        turns: list[Turn]
        kind = "text"
        if messages and "unknown" not in roles and mentions_as == "@movieId":
            turns = [_at_id_turn(m["role"], m.get("text", ""), catalog, path, line) for m in messages]
        elif messages and "unknown" not in roles and "quoted" in mentions_as:
            turns = [linker.marked_turn(m["role"], m.get("text", ""), QUOTED, local) for m in messages]
        elif messages and "unknown" not in roles and mentions_as.startswith("["):
            turns = [linker.marked_turn(m["role"], m.get("text", ""), BRACKETED, local) for m in messages]
        elif messages and "unknown" not in roles and mentions_as == "titles_inline":
            turns = [linker.inline_turn(m["role"], m.get("text", ""), local_titles) for m in messages]
        elif e19:
            kind = "sequence"
            turns = [Turn("unknown", "", (str(m["movieId"]),)) for m in e19]
        else:
            counts["skipped_empty"] = counts.get("skipped_empty", 0) + 1
            continue
        if tier.startswith("T1"):
            raw = record.get("raw_fields") or {}
            feedback = _form_feedback(raw.get("initiatorQuestions") or raw.get("respondentQuestions"))
        else:
            feedback = {str(m["movieId"]): ItemFeedback(liked=bool(m["liked"])) for m in e19 if m.get("liked") in (0, 1)}
        feedback = {k: v for k, v in feedback.items() if k in catalog}
        counts[f"{tier}/{kind}"] = counts.get(f"{tier}/{kind}", 0) + 1
        dialogues.append(Dialogue(str(conversation), "train", _merge_consecutive(turns), feedback,
                                  {"source": "train_assembled", "tier": tier}))
    first_valid = latest_share_start([d.dialogue_id for d in dialogues], VALID_SHARE)
    for dialogue in dialogues:
        if dialogue.dialogue_id.isdigit() and int(dialogue.dialogue_id) >= first_valid:
            dialogue.split = "valid"
    return dialogues, counts


def latest_share_start(conversation_ids: list[str], share: float) -> int:
    """The first conversation id of the latest ``share`` of records by (numeric) id; ids are given in
    collection order, so these are the conversations closest in time to the test split."""
    ids = sorted(int(i) for i in conversation_ids if i.isdigit())
    if not ids:
        return 2**63
    return ids[min(int((1 - share) * len(ids)), len(ids) - 1)]


def convert(files: dict[str, Path]) -> Conversion:
    catalog, catalog_stats = build_catalog(files)
    report = LinkReport()
    train, tier_counts = convert_train(files["redial/train_assembled.jsonl"], catalog, report)
    test = convert_test(files["redial/test_data.jsonl"], catalog)
    test_ids = {d.dialogue_id for d in test}
    leaked = [d.dialogue_id for d in train if d.dialogue_id in test_ids]
    if leaked:
        raise DataError(f"train conversation ids also in test: {leaked[:5]}", files["redial/train_assembled.jsonl"])
    validation = {"rule": f"the latest {VALID_SHARE:.0%} of train conversations by id",
                  "first_conversation_id": latest_share_start([d.dialogue_id for d in train], VALID_SHARE)}
    return Conversion(catalog, train + test, {"catalog": catalog_stats, "train_records": tier_counts,
                                              "validation": validation,
                                              "title_linking": report.to_json()})


REDIAL = Converter(
    name="redial",
    sources=("redial", "catalog"),
    version="4",
    convert=convert,
)
