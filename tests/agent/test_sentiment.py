"""The rule path of ``analyze_sentiment``: real ReDial and OpenDialKG snippets from the mirror with their
questionnaire labels, negation and contrast on the shared test world, the books vocabulary, and bad input."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

import worlds
from convrec.agent.sentiment import (
    ItemSentiment,
    RuleOptions,
    RuleSentiment,
    SentimentAnalyzer,
    SentimentResult,
)
from convrec.catalog.items import Catalog
from convrec.catalog.vocabulary import BOOKS, GENERIC, MOVIES
from convrec.data.dataset import CRSDataset
from convrec.data.load import load_dataset
from convrec.data.model import ContextView, Dialogue, Turn


@pytest.fixture(scope="module")
def world_catalog() -> Catalog:
    """The 40-item test world and its classics (Alien, Up, The Notebook, two Halloweens): 50 items."""
    return worlds.catalog(classics=True)


@pytest.fixture(scope="module")
def rules(world_catalog: Catalog) -> RuleSentiment:
    return RuleSentiment(world_catalog, MOVIES)


def seeker(text: str, *items: str) -> Turn:
    return Turn("seeker", text, items)


def recommender(text: str, *items: str) -> Turn:
    return Turn("recommender", text, items)


def verdict(result: SentimentResult, item_id: str) -> tuple[str, str]:
    found = result.get(item_id)
    assert found is not None, f"{item_id} missing from {[i.item_id for i in result.items]}"
    return found.label, found.seen


# ------------------------------------------------------------------------------ real ReDial, real labels
# (dialogue id, item id, expected label, expected seen) from ReDial's train split (the lexicon was written from
# train dialogues; these are checked against the seeker's own questionnaire below).
REDIAL_CASES = [
    # "Did you see Baywatch (2017)?" - "I haven't yet. Is it good?": not seen, and a question is no opinion
    ("2248", "114341", "neutral", "no"),
    # "Bad Moms (2016) was very funny." - "I've seen that. I also saw The House (2017) ... That was kind of funny."
    ("2248", "138962", "neutral", "yes"),
    ("2248", "188779", "liked", "yes"),
    # "Daddy's Home 2 (2017) was funny as well." - "Maybe, I will see that.": wanted, not seen yet
    ("2248", "204478", "liked", "no"),
    # "Have you seen Titanic (1997) and also Die Hard (1988)?" - "Yeah, I did. But I didn't care for it much."
    ("18145", "175096", "disliked", "yes"),
    # "Die Hard (1988) is a great flick" - "No I don't like it."
    ("17157", "161313", "disliked", "unknown"),
    # "i also like XXX (2016)" - "I liked The Bourne Legacy (2012). I don't like that film either. Not really a
    # fan of it.": the contradiction is about the proposal, not about the seeker's own example
    ("17157", "142890", "disliked", "unknown"),
    ("17157", "129992", "liked", "unknown"),
    # "how about Full Metal Jacket (1987)" - "I think I've seen it but I don't really like it as well."
    ("17157", "77376", "disliked", "yes"),
    # "I like the film by Mel Gibson We Were Soldiers (2002). I thought it was a great film"
    ("17157", "120726", "liked", "unknown"),
]


@pytest.fixture(scope="module")
def redial_rules(redial: CRSDataset) -> RuleSentiment:
    return RuleSentiment(redial.catalog, MOVIES, RuleOptions(judged_seen=0.0))


@pytest.fixture(scope="module")
def redial_dialogues(redial: CRSDataset) -> dict[str, Dialogue]:
    return {d.dialogue_id: d for d in redial.dialogues}


@pytest.mark.parametrize(("dialogue_id", "item_id", "label", "seen"), REDIAL_CASES)
def test_real_redial_dialogue_matches_the_seekers_questionnaire(
        redial_rules: RuleSentiment, redial_dialogues: dict[str, Dialogue], dialogue_id: str, item_id: str,
        label: str, seen: str):
    dialogue = redial_dialogues[dialogue_id]
    truth = dialogue.feedback[item_id]
    # the expected answers are the questionnaire's, where the rule path commits to one and the record has the
    # answer (train fragments of the T2 tier kept "liked" only)
    if label != "neutral":
        assert truth.liked is (label == "liked")
    if seen != "unknown" and truth.seen is not None:
        assert truth.seen is (seen == "yes")
    result = redial_rules.analyze(ContextView(dialogue.dialogue_id, tuple(dialogue.turns)))
    assert verdict(result, item_id) == (label, seen)
    found = result.get(item_id)
    assert found is not None and found.decided_by == "rule"
    if label != "neutral":
        assert found.evidence and found.confidence > 0


def test_every_item_of_a_real_dialogue_is_reported_in_order_of_first_mention(
        redial_rules: RuleSentiment, redial_dialogues: dict[str, Dialogue]):
    dialogue = redial_dialogues["17157"]
    result = redial_rules.analyze(dialogue.turns)
    assert [i.item_id for i in result.items] == list(dict.fromkeys(dialogue.items_in_order()))
    by = {i.item_id: i for i in result.items}
    assert by["161313"].first_mentioned_by == "recommender"
    assert by["129992"].first_mentioned_by == "seeker"


def test_the_analysis_at_a_turn_reads_only_the_turns_before_it(redial_rules: RuleSentiment,
                                                                redial_dialogues: dict[str, Dialogue]):
    dialogue = redial_dialogues["18145"]
    # before the seeker answers "Yeah, I did. But I didn't care for it much.", Titanic is only proposed
    before = redial_rules.analyze(dialogue.turns[:11])
    assert verdict(before, "175096") == ("neutral", "unknown")
    after = redial_rules.analyze(dialogue.turns[:12])
    assert verdict(after, "175096") == ("disliked", "yes")


# ---------------------------------------------------------------------------- negation and contrast
@pytest.mark.parametrize(("turns", "expected"), [
    # contrast splits the clause: each title keeps its own verb
    ([seeker("I liked The Farmhouse but hated The Lighthouse.", "horror0", "horror1")],
     {"horror0": "liked", "horror1": "disliked"}),
    ([seeker("I hated The Lighthouse, though I really loved The Farmhouse", "horror1", "horror0")],
     {"horror0": "liked", "horror1": "disliked"}),
    # negation within a few words flips the cue
    ([seeker("I didn't really like The Farmhouse.", "horror0")], {"horror0": "disliked"}),
    ([seeker("I was never much a fan of Heist Royale.", "heist")], {"heist": "disliked"}),
    ([seeker("The Farmhouse was not bad at all.", "horror0")], {"horror0": "liked"}),
    ([seeker("The Farmhouse was not entertaining, and The Lighthouse was never fun.", "horror0", "horror1")],
     {"horror0": "disliked", "horror1": "disliked"}),
    ([seeker("I don't think I'd enjoy The Motel.", "horror5")], {"horror5": "disliked"}),
    # a negator before a new subject does not reach past it
    ([recommender("Try The Church.", "horror6"), seeker("No, I haven't, I will check it out!")],
     {"horror6": "liked"}),
    # a title's own words are no cue: "Love In Paris" says nothing of love
    ([seeker("We watched Love In Paris yesterday.", "romance0")], {"romance0": "neutral"}),
    # a question is no opinion
    ([seeker("Is The Farmhouse any good?", "horror0")], {"horror0": "neutral"}),
    # a comparison speaks against the title after it
    ([seeker("The Farmhouse was way better than The Lighthouse.", "horror0", "horror1")],
     {"horror0": "liked", "horror1": "disliked"}),
    # an opinion of a kind of movie is not one of the title
    ([seeker("I hate horror movies but The Farmhouse was great.", "horror0")], {"horror0": "liked"}),
    # "but not X" turns the seeker against X only
    ([seeker("I like Alien, but not Aliens.", "alien", "aliens")], {"alien": "liked", "aliens": "disliked"}),
    # the recommender's opinions are not the seeker's
    ([recommender("I loved The Ship, it is the best!", "horror11"), seeker("Hmm.")], {"horror11": "neutral"}),
])
def test_negation_and_contrast(rules: RuleSentiment, turns: list[Turn], expected: dict[str, str]):
    result = rules.analyze(turns)
    assert {item_id: verdict(result, item_id)[0] for item_id in expected} == expected


@pytest.mark.parametrize(("turns", "item_id", "label", "seen"), [
    ([recommender("Have you seen The Motel?", "horror5"), seeker("Nope.")], "horror5", "neutral", "no"),
    ([recommender("Have you seen The Motel?", "horror5"), seeker("Yes! Loved it.")], "horror5", "liked", "yes"),
    ([recommender("You might like The Church.", "horror6"), seeker("Not really my thing.")],
     "horror6", "disliked", "unknown"),
    ([recommender("How about The Prison?", "horror8"), seeker("Sounds great, I'll check it out!")],
     "horror8", "liked", "no"),
    ([seeker("I've never seen Heist Royale.", "heist")], "heist", "neutral", "no"),
    ([seeker("I haven't seen The Farmhouse in years, I loved it.", "horror0")], "horror0", "liked", "yes"),
    ([seeker("I have seen The Notebook but I didn't like it.", "notebook")], "notebook", "disliked", "yes"),
    # "have you seen" asked by the seeker says nothing of the seeker having seen it
    ([seeker("Have you seen Up?", "up")], "up", "neutral", "unknown"),
    # "Seen Alien. Great movie!": the clauses after a mention that name nothing else are about it
    ([seeker("Seen Alien. Great movie!", "alien")], "alien", "liked", "yes"),
])
def test_reactions_and_seen_cues(rules: RuleSentiment, turns: list[Turn], item_id: str, label: str, seen: str):
    assert verdict(rules.analyze(turns), item_id) == (label, seen)


def test_thresholds_decide_how_much_evidence_makes_a_label(world_catalog: Catalog):
    turns = [seeker("The Farmhouse was okay.", "horror0")]  # "okay" is weak praise: 0.5
    assert verdict(RuleSentiment(world_catalog, MOVIES, RuleOptions(like_threshold=0.5)).analyze(turns),
                   "horror0")[0] == "liked"
    assert verdict(RuleSentiment(world_catalog, MOVIES, RuleOptions(like_threshold=1.0)).analyze(turns),
                   "horror0")[0] == "neutral"


# ------------------------------------------------------------------------------------ books vocabulary
@pytest.fixture(scope="module")
def books(mirror: Path, data_dir: Path) -> CRSDataset:
    return load_dataset("opendialkg-books", data_dir, mirror)


# (dialogue id, what the seeker wrote, item id, label and seen read with the books vocabulary)
BOOK_CASES = [
    ("odkg-00131", "I have read The Passage", "passage", "liked", "yes"),
    ("odkg-00034", "I have never read the book The Lost Hero", "lost-hero", None, "no"),
    ("odkg-00159", "I will look more into this book", "sandman-king-of-dreams", "liked", "no"),
    ("odkg-00368", "I just finished reading it", "eleanor-and-park", "liked", "yes"),
]


@pytest.mark.parametrize(("dialogue_id", "fragment", "item_id", "label", "seen"), BOOK_CASES)
def test_books_are_read_not_seen(books: CRSDataset, dialogue_id: str, fragment: str, item_id: str,
                                 label: str | None, seen: str):
    dialogue = next(d for d in books.dialogues if d.dialogue_id == dialogue_id)
    assert any(fragment in turn.text for turn in dialogue.turns)  # the real text, as the mirror has it
    options = RuleOptions(judged_seen=0.0)
    as_books = RuleSentiment(books.catalog, BOOKS, options).analyze(dialogue.turns)
    got_label, got_seen = verdict(as_books, item_id)
    assert got_seen == seen
    if label is not None:
        assert got_label == label
    # the movie words do not read "I have read it" as having seen a movie of it
    as_movies = RuleSentiment(books.catalog, MOVIES, options).analyze(dialogue.turns)
    if seen == "yes":
        assert verdict(as_movies, item_id)[1] == "unknown"


def test_the_generic_vocabulary_knows_both_verbs(world_catalog: Catalog):
    rules = RuleSentiment(world_catalog, GENERIC, RuleOptions(judged_seen=0.0))
    assert verdict(rules.analyze([seeker("I read The Farmhouse.", "horror0")]), "horror0")[1] == "yes"
    assert verdict(rules.analyze([seeker("I watched The Farmhouse.", "horror0")]), "horror0")[1] == "yes"
    movies = RuleSentiment(world_catalog, MOVIES, RuleOptions(judged_seen=0.0))
    assert verdict(movies.analyze([seeker("I read The Farmhouse.", "horror0")]), "horror0")[1] == "unknown"


# ---------------------------------------------------------------------------------------- bad input
def test_empty_and_unknown_input_give_empty_or_neutral_answers(rules: RuleSentiment):
    assert rules.analyze([]).items == ()
    assert rules.analyze(ContextView("empty", ())).items == ()
    result = rules.analyze([seeker("", "horror0"), seeker("I loved it", "not-in-the-catalogue"),
                            recommender("", "horror1"), Turn("unknown", "I hated it", ("horror2",))])
    assert verdict(result, "horror0") == ("neutral", "unknown")
    # an id the catalogue does not know has no title to find: the turn's item-less clauses speak for it
    assert verdict(result, "not-in-the-catalogue")[0] == "liked"
    assert verdict(result, "horror1") == ("neutral", "unknown")
    assert verdict(result, "horror2") == ("neutral", "unknown")  # only seeker turns are read


def test_a_100_kb_message_is_read_in_reasonable_time(rules: RuleSentiment):
    text = ("I have seen The Farmhouse and I didn't like it, " * 3000)[:100_000]
    started = time.perf_counter()
    result = rules.analyze([seeker(text, "horror0")])
    assert time.perf_counter() - started < 10
    assert verdict(result, "horror0") == ("disliked", "yes")


def test_the_result_is_json_and_comes_back_equal(rules: RuleSentiment):
    result = rules.analyze([seeker("I liked The Farmhouse but hated The Lighthouse.", "horror0", "horror1")])
    text = result.model_dump_json()
    assert json.loads(text)["items"][0]["label"] == "liked"
    assert SentimentResult.model_validate_json(text) == result
    assert result.with_label("disliked") == ["horror1"]
    item = result.items[1]
    assert isinstance(item, ItemSentiment) and item.evidence[0].text == "but hated The Lighthouse"


def test_the_analyzer_without_an_llm_is_the_rule_path(world_catalog: Catalog, rules: RuleSentiment):
    turns = [seeker("I liked The Farmhouse but hated The Lighthouse.", "horror0", "horror1")]
    assert SentimentAnalyzer(world_catalog, MOVIES).analyze(turns) == rules.analyze(turns)
