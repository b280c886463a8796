"""``convrec chat --dataset opendialkg-books`` reads as a book recommender (issue 14, item 5), on the real data
with the default retriever and no LLM: the two messages of the issue, whose authors the catalogue's metadata
(goodbooks-10k) knows, lead to that author's books, and nothing shown speaks of movies."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from convrec.data.load import load_dataset

MOVIE_WORDS = re.compile(r"\b(movies?|films?|directed|director|cinema|watch(ed|ing)?)\b", re.IGNORECASE)


def chat_books(run_cli, mirror: Path, data_dir: Path, out: Path, *messages: str):
    run = run_cli("chat", "--dataset", "opendialkg-books", "--data-dir", data_dir, "--mirror", mirror, "--no-llm",
                  "--json", out, *(arg for message in messages for arg in ("-m", message)))
    assert run.rc == 0, run.err
    return run, json.loads(out.read_text())


def by_author(name: str, mirror: Path, data_dir: Path) -> set[str]:
    catalog = load_dataset("opendialkg-books", data_dir, mirror).catalog
    return {item.item_id for item in catalog if name in item.metadata.get("author", [])}


def without_titles(text: str, turn: dict) -> str:
    """``text`` without the recommended titles: they are the catalogue's own words ("Twilight: The Complete
    Illustrated Movie Companion" is a book)."""
    for recommendation in turn["recommendations"]:
        text = text.replace(recommendation["title"], "")
    return text


@pytest.mark.slow
def test_an_author_named_with_a_title_outside_the_catalogue_leads_to_their_books(run_cli, mirror, data_dir,
                                                                                tmp_path):
    run, report = chat_books(run_cli, mirror, data_dir, tmp_path / "turns.json",
                             "I enjoyed The Shining by Stephen King", "/why 1", "/help")
    (turn,) = report["turns"]
    king = by_author("Stephen King", mirror, data_dir)
    # The Shining is not in the catalogue; Stephen King is, as the author of six of its books.
    assert turn["recognised"] == [] and len(king) == 6
    assert turn["recognised_people"] == [{"text": "Stephen King", "name": "Stephen King", "field": "author",
                                          "items": 6}]
    assert len(turn["recommendations"]) == 5 and {r["item_id"] for r in turn["recommendations"]} <= king
    top = turn["recommendations"][0]["title"]
    assert turn["reply"].startswith(f"How about {top}? It was written by Stephen King, whom you mentioned.")
    assert report["settings"]["prompt"]["domain"] == "books"
    # Nothing shown speaks of movies: the banner, the turn, /why 1, /help.
    assert not MOVIE_WORDS.search(without_titles(turn["reply"], turn))
    shown = " ".join(without_titles(run.out, turn).split())
    assert not MOVIE_WORDS.search(shown), MOVIE_WORDS.search(shown)
    assert "opendialkg-books: 1,140 books" in shown and "recognised: Stephen King (author of 6 books)" in shown
    assert "reason It was written by Stephen King" in shown and "that the book fits" in shown
    assert "no title named yet" not in shown  # the author's books are not the popular items the hint announces


@pytest.mark.slow
def test_a_title_and_its_author_lead_to_the_authors_other_books(run_cli, mirror, data_dir, tmp_path):
    _, report = chat_books(run_cli, mirror, data_dir, tmp_path / "turns.json",
                           "I enjoyed Pride and Prejudice by Jane Austen")
    (turn,) = report["turns"]
    assert [m["item_id"] for m in turn["recognised"]] == ["pride-and-prejudice"]
    assert [p["name"] for p in turn["recognised_people"]] == ["Jane Austen"]
    assert turn["context_items"] == ["pride-and-prejudice"]
    # Her five other books, in the retriever's order (it ranked Persuasion first before names were read too).
    others = by_author("Jane Austen", mirror, data_dir) - {"pride-and-prejudice"}
    assert {r["item_id"] for r in turn["recommendations"]} == others and len(others) == 5
    assert turn["recommendations"][0]["item_id"] == "persuasion"
    assert "It was written by Jane Austen, whom you mentioned." in turn["reply"]
    assert not MOVIE_WORDS.search(without_titles(turn["reply"], turn))
