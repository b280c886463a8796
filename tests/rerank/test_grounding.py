"""Listwise replies written by hand: parsing, grounding to the catalogue, and the ranking they imply."""

from __future__ import annotations

import numpy as np
import pytest

from convrec.catalog.titles import TitleLinker
from convrec.rerank.grounding import CandidateGrounder, GroundingStats, candidate_labels, parse_titles
from convrec.rerank.listwise import ListwiseReranker, ranking_schema

CANDIDATES = ["insidious", "halloween07", "alien", "toystory"]
SCORES = np.array([4.0, 3.0, 2.0, 1.0])


@pytest.fixture
def grounder(catalog):
    items = [catalog.get(i) for i in CANDIDATES]
    return CandidateGrounder(TitleLinker(catalog), items, candidate_labels(items))


@pytest.fixture
def reranker(catalog):
    return ListwiseReranker(llm=None, catalog=catalog)  # type: ignore[arg-type]  # no LLM: replies by hand


@pytest.mark.parametrize(
    "reply",
    [
        '{"ranking": ["Alien (1979)", "Insidious (2010)"]}',
        '```json\n["Alien (1979)", "Insidious (2010)"]\n```',
        'Here you go: {"titles": [{"title": "Alien (1979)"}, {"title": "Insidious (2010)"}]} Enjoy!',
        "1. Alien (1979)\n2. Insidious (2010)",
        "Ranking:\n- **Alien (1979)** - a classic\n- \"Insidious (2010)\", because it is scary",
    ],
)
def test_parse_titles_reads_json_fences_and_lists(reply, grounder):
    titles = parse_titles(reply)
    assert grounder.ground(titles).item_ids == ["alien", "insidious"], titles


def test_parse_titles_of_nothing_is_empty():
    assert parse_titles("") == [] and parse_titles("\n  \n") == []
    assert parse_titles('{"ranking": []}') == []


def test_grounding_prefers_candidates_and_counts_failures(grounder):
    grounding = grounder.ground([
        "Alien (1979)",            # candidate, exact
        "Halloween",               # no year: the candidate Halloween (2007), not the 1978 one
        "Halloween (1978)",        # a real catalogue movie, but not a candidate
        "The Matrix (1999)",       # in no catalogue: unmatched
        "alien",                   # a candidate again: duplicate
        "Insidous (2010)",         # misspelt: fuzzy match to the candidate
    ])
    assert grounding.item_ids == ["alien", "halloween07", "insidious"]
    assert grounding.outside_candidates == ["Halloween (1978)"]
    assert grounding.unmatched == ["The Matrix (1999)"]
    assert grounding.duplicates == ["alien"]


def test_an_exact_title_elsewhere_is_not_bent_onto_a_similar_candidate(catalog):
    items = [catalog.get("aliens"), catalog.get("up")]
    grounder = CandidateGrounder(TitleLinker(catalog), items)
    grounding = grounder.ground(["Alien (1979)", "Aliens"])
    assert grounding.outside_candidates == ["Alien (1979)"] and grounding.item_ids == ["aliens"]


def test_labels_disambiguate_equal_display_titles(catalog):
    from convrec.catalog.items import Item

    twin = Item("halloween78-copy", "Halloween", 1978)
    labels = candidate_labels([catalog.get("halloween78"), twin, catalog.get("up")])
    assert labels == ["Halloween (1978) [halloween78]", "Halloween (1978) [halloween78-copy]", "Up (2009)"]
    assert ranking_schema(labels)["properties"]["ranking"]["items"]["enum"] == labels


def test_reply_order_then_left_out_candidates_in_retriever_order(reranker):
    reply = '{"ranking": ["Toy Story (1995)", "The Matrix (1999)", "Toy Story (1995)", "Alien (1979)"]}'
    ranking = reranker.rank_from_reply(reply, CANDIDATES, SCORES)
    assert ranking.item_ids == ("toystory", "alien", "insidious", "halloween07")
    assert np.all(np.diff(ranking.scores) <= 0)
    d = ranking.diagnostics
    assert d.fallback is None and d.unmatched_titles == ["The Matrix (1999)"]
    assert d.duplicate_titles == ["Toy Story (1995)"] and len(d.generated_titles) == 4


@pytest.mark.parametrize("reply", ["", "I cannot help with that.", '{"ranking": ["The Matrix (1999)"]}', "%%%"])
def test_garbage_reply_keeps_the_retriever_order_and_says_why(reranker, reply):
    ranking = reranker.rank_from_reply(reply, CANDIDATES, SCORES)
    assert ranking.item_ids == tuple(CANDIDATES)
    assert ranking.diagnostics.fallback is not None and "unusable reply" in ranking.diagnostics.fallback


def test_fusion_weight_mixes_the_reply_with_the_retriever(reranker):
    reply = '["Toy Story (1995)"]'  # the LLM's favourite is the retriever's last
    reranker.fusion_weight = 0.2
    assert reranker.rank_from_reply(reply, CANDIDATES, SCORES).item_ids[0] == "insidious"
    reranker.fusion_weight = 0.8
    assert reranker.rank_from_reply(reply, CANDIDATES, SCORES).item_ids[0] == "toystory"


def test_grounding_stats_report_shares_of_generated_titles():
    stats = GroundingStats()
    stats.add(["a", "b", "c", "d"], unmatched=["c"], outside=["d"], duplicates=[])
    stats.add(["e", "f", "f"], unmatched=[], outside=[], duplicates=["f"])
    report = stats.to_json()
    assert report["generated_titles"] == 7 and report["matched_candidates"] == 4
    assert report["unmatched_share"] == pytest.approx(1 / 7, abs=1e-4)
    assert report["outside_candidates_share"] == pytest.approx(1 / 7, abs=1e-4)
    assert report["examples_unmatched"] == ["c"]
    assert GroundingStats().to_json()["unmatched_share"] is None
