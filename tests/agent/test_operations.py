"""One test per VTO, on the shared test world with its ten real-looking classics (50 items, directors and
casts: tests/worlds.py) and, where the real catalogue's size or phrasing matters, on ReDial and the
OpenDialKG books. Each calls the operation through the registry, as the agents do."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

import worlds
from convrec.agent.config import HarpoOptions
from convrec.agent.constraints import Constraint, ConstraintState
from convrec.agent.operations import (
    VTOS,
    AgentContext,
    BeliefArgs,
    Candidates,
    CompareArgs,
    ExplainArgs,
    FilterArgs,
    GraphArgs,
    History,
    KnowledgeArgs,
    MatchArgs,
    Matches,
    MessageArgs,
    ModelStateArgs,
    RankArgs,
    Ranked,
    RecallArgs,
    RefineArgs,
    Rejection,
    RejectionArgs,
    SearchArgs,
    SelectArgs,
    StateArgs,
    TurnsArgs,
    title_words,
)
from convrec.agent.state import AgentState
from convrec.catalog.items import Catalog
from convrec.data.load import load_dataset
from convrec.data.model import ContextView, Turn
from convrec.retrieval.base import build_recommender

HORROR = worlds.cluster_ids("horror")
NOTTING_HILL = "191932"  # ReDial


def context(catalog: Catalog, train, dataset: str | None = None, **options) -> AgentContext:
    retriever = build_recommender("itemknn", catalog, {})
    retriever.fit(train)
    return AgentContext.for_catalog(catalog, retriever, HarpoOptions(retriever="itemknn", **options), dataset)


@pytest.fixture(scope="module")
def world() -> worlds.World:
    return worlds.world(classics=True)


@pytest.fixture(scope="module")
def ctx(world) -> AgentContext:
    return context(world.catalog, world.train)


@pytest.fixture(scope="module")
def movies(redial) -> AgentContext:
    return context(redial.catalog, redial.split("train"), redial.name)


@pytest.fixture(scope="module")
def books(mirror: Path, data_dir: Path) -> AgentContext:
    dataset = load_dataset("opendialkg-books", data_dir, mirror)
    return context(dataset.catalog, dataset.split("train"), dataset.name)


def call(name: str, ctx: AgentContext, args):
    return VTOS.call(name, ctx, args, None)


def seeker(text: str, *items: str) -> Turn:
    return Turn("seeker", text, tuple(items))


def state(**fields) -> AgentState:
    constraints = fields.pop("constraints", ())
    return AgentState(constraints=ConstraintState().update(constraints), **fields)


def want(attribute: str, value: str | None = None, low: int | None = None, high: int | None = None,
         turn: int = 0, text: str = "") -> Constraint:
    return Constraint(attribute=attribute, value=value, low=low, high=high, turn=turn, text=text or (value or ""))


def avoid(attribute: str, value: str, turn: int = 0) -> Constraint:
    return Constraint(attribute=attribute, value=value, polarity="avoid", turn=turn, text=value)


# ---------------------------------------------------------------------------------------------- extraction

def test_extract_entities_links_titles_people_and_values(ctx):
    found = call("extract_entities", ctx, MessageArgs(
        message="I loved The Conjuring (2013), so something with Patrick Wilson, but no romance"))
    assert found.item_ids == ("conjuring",)
    assert found.people == ("Patrick Wilson",)
    assert [(v.attribute, v.value) for v in found.values] == [("genre", "romance")]  # people are not values
    assert call("extract_entities", ctx, MessageArgs(message="")).item_ids == ()


def test_analyze_sentiment_labels_each_item_of_the_dialogue(ctx):
    turns = (seeker("I loved The Conjuring (2013) but Halloween (1978) bored me", "conjuring", "halloween78"),
             Turn("recommender", "Have you seen Insidious?", ("insidious",)),
             seeker("Yes, I've seen it already. It was great."))
    result = call("analyze_sentiment", ctx, TurnsArgs(turns=turns)).result
    labels = {item.item_id: (item.label, item.seen) for item in result.items}
    assert labels["conjuring"][0] == "liked" and labels["halloween78"][0] == "disliked"
    assert labels["insidious"] == ("liked", "yes")  # the answer to the recommender's question


def test_extract_context_keeps_the_latest_window_request_and_items(ctx):
    short = replace(ctx, options=ctx.options.model_copy(update={"context_chars": 60}))
    turns = (seeker("I loved The Conjuring, it was so scary and clever at the same time", "conjuring"),
             Turn("recommender", "Then try Insidious", ("insidious",)),
             seeker("Seen it. Something older?"))
    found = call("extract_context", short, TurnsArgs(turns=turns))
    assert found.latest_request == "Seen it. Something older?"
    assert found.items == ("conjuring", "insidious")
    assert len(found.text) <= 60 and found.text.endswith("Seeker: Seen it. Something older?")
    assert "scary and clever" in call("extract_context", ctx, TurnsArgs(turns=turns)).text  # 600 by default


# ------------------------------------------------------------------------------------------ user modelling

def test_identify_constraints_reads_eras_genres_and_people(ctx, movies):
    found = call("identify_constraints", ctx, MessageArgs(message="nothing before 2000 and no horror please",
                                                          turn=3)).constraints
    assert [c.describe() for c in found] == ["year 2000..", "genre != horror"] and {c.turn for c in found} == {3}
    # real phrasings of the movie catalogue (ReDial): a role verb after a surname, weariness as a negation
    said = call("identify_constraints", movies, MessageArgs(message="show me what else Spielberg directed"))
    assert [c.describe() for c in said.constraints] == ["director = Steven Spielberg"]
    tired = call("identify_constraints", movies, MessageArgs(message="I've had enough war films for a while"))
    assert [c.describe() for c in tired.constraints] == ["genre != war"]


@pytest.mark.parametrize("message, expected", [
    ("I'm trying to read more classics, so before 1950 please", ["year ..1949"]),  # the numbers, not "classics"
    ("give me something old-fashioned, a nineteenth-century novel", ["year 1800..1899"]),
    ("I've read everything by C.S. Lewis already, so someone else", ["author != C.S. Lewis"]),
    ("I'm done with Cassandra Clare", ["author != Cassandra Clare"]),
    ("anything by Pratchett?", ["author = Terry Pratchett"]),
])
def test_identify_constraints_on_book_phrasings(books, message, expected):
    found = call("identify_constraints", books, MessageArgs(message=message)).constraints
    assert [c.describe() for c in found] == expected


def test_retrieve_preferences_reads_the_state_in_order(ctx):
    known = state(mentioned=("nemo", "conjuring", "up"), liked=("up", "conjuring"), disliked=("nemo",),
                  people=("James Wan",), constraints=(want("genre", "horror"), avoid("genre", "romance")))
    found = call("retrieve_preferences", ctx, StateArgs(state=known))
    assert found.liked == ("conjuring", "up")  # in order of mention, the most recent last
    assert [c.describe() for c in found.wanted] == ["genre = horror"]
    assert [c.describe() for c in found.avoided] == ["genre != romance"] and found.people == ("James Wan",)


def test_model_user_state_asks_refines_or_recommends(ctx):
    nothing = AgentState()
    asked = call("model_user_state", ctx, ModelStateArgs(state=nothing))
    assert (asked.action, asked.ask_about) == ("ask", "genre")  # the first categorical attribute
    again = call("model_user_state", ctx, ModelStateArgs(state=nothing.model_copy(update={"asked": ("genre",)})))
    assert (again.action, again.ask_about) == ("ask", "director")  # not the same question twice
    no_asking = replace(ctx, options=ctx.options.model_copy(update={"ask_first": False}))
    assert call("model_user_state", no_asking, ModelStateArgs(state=nothing)).action == "recommend"
    liked = state(mentioned=("conjuring",), liked=("conjuring",))
    assert call("model_user_state", ctx, ModelStateArgs(state=liked)).action == "recommend"
    refine = call("model_user_state", ctx, ModelStateArgs(state=liked, rejected_now=("insidious",)))
    assert refine.action == "refine" and "turned down 1" in refine.reason


# ----------------------------------------------------------------------------------------------- retrieval

def test_search_candidates_asks_the_retriever_and_leaves_out_excluded_items(ctx, movies):
    view = ContextView("d", (seeker("I liked The Farmhouse", "horror0"),))
    found = call("search_candidates", ctx, SearchArgs(view=view, n=11, exclude=("horror1",)))
    assert len(found.item_ids) == 11 and "horror1" not in found.item_ids
    assert set(found.item_ids[:10]) == set(HORROR[2:])  # the horror cluster, as the world's training taught
    assert list(found.scores) == sorted(found.scores, reverse=True)
    # on ReDial (6,924 items): a real retriever's top 100 for a real request
    real = call("search_candidates", movies, SearchArgs(view=ContextView("r", (seeker("I love Notting Hill",
                                                                                          NOTTING_HILL),)), n=100))
    assert len(real.item_ids) == 100 and NOTTING_HILL not in real.item_ids[:1]


def test_filter_results_drops_ruled_out_items_and_broken_constraints(ctx, movies):
    candidates = Candidates(item_ids=("conjuring", "insidious", "toystory", "notebook", "horror0"),
                            scores=(5.0, 4.0, 3.0, 2.0, 1.0))
    found = call("filter_results", ctx, FilterArgs(candidates=candidates, constraints=(want("year", low=2000),),
                                                   blocked=("insidious",)))
    assert found.kept.item_ids == ("conjuring", "notebook", "horror0") and found.kept.scores == (5.0, 2.0, 1.0)
    assert dict(found.removed) == {"insidious": "ruled out by the seeker", "toystory": "against year 2000.."}
    # "after 2010" on ReDial: every kept candidate is dated 2011 or later (an undated one is dropped too)
    view = ContextView("r", (seeker("I love Notting Hill", NOTTING_HILL),))
    top = call("search_candidates", movies, SearchArgs(view=view, n=100))
    after = call("filter_results", movies, FilterArgs(candidates=top, constraints=(want("year", low=2011),)))
    years = [movies.adapter.catalog.get(i).year for i in after.kept.item_ids]
    assert 0 < len(years) < 100 and all(year is not None and year >= 2011 for year in years)


def test_match_attributes_counts_wanted_values(ctx):
    found = call("match_attributes", ctx, MatchArgs(item_ids=("conjuring", "insidious", "toystory", "alien"),
                                                    wanted=(want("director", "James Wan"), want("genre", "horror"))))
    assert found.counts == (2, 2, 0, 1)


# ------------------------------------------------------------------------------------------------- ranking

def test_rank_options_adds_attribute_and_graph_weights_to_the_retrievers_order(ctx):
    candidates = Candidates(item_ids=("toystory", "nemo", "conjuring", "up"), scores=(9.0, 8.0, 7.0, 6.0))
    plain = call("rank_options", ctx, RankArgs(candidates=candidates))
    assert plain.item_ids == candidates.item_ids and plain.scores[0] == 1.0
    matched = call("rank_options", ctx, RankArgs(candidates=candidates, matches=Matches(counts=(0, 0, 1, 0))))
    # rank scores 1, 0.75, 0.5, 0.25: one wanted value (+0.3) lifts the third above the second, not the first
    assert matched.item_ids == ("toystory", "conjuring", "nemo", "up")
    assert matched.scores == pytest.approx((1.0, 0.8, 0.75, 0.25))
    heavy = replace(ctx, options=ctx.options.model_copy(update={"attribute_weight": 1.0, "graph_weight": 2.0}))
    ranked = call("rank_options", heavy, RankArgs(candidates=candidates, support=(0.0, 0.0, 0.0, 1.0)))
    assert ranked.item_ids[0] == "up"
    assert call("rank_options", ctx, RankArgs(candidates=Candidates(item_ids=(), scores=()))).item_ids == ()


def test_compare_options_finds_what_two_items_share(ctx):
    remake = call("compare_options", ctx, CompareArgs(first="halloween78", second="halloween07"))
    assert remake.similar  # one title, two entries
    wan = call("compare_options", ctx, CompareArgs(first="conjuring", second="insidious"))
    assert wan.similar and {("director", "James Wan"), ("star", "Patrick Wilson")} <= {
        (f.attribute, f.value) for f in wan.shared}  # two people in common: too alike for one slate
    asked = call("compare_options", ctx, CompareArgs(first="conjuring", second="insidious", asked=("Patrick Wilson",)))
    assert not asked.similar  # unless one of them is the person the seeker asked for
    support = call("compare_options", ctx, CompareArgs(first="conjuring", second="toystory", liked=("alien",)))
    assert not support.similar and (support.first_support, support.second_support) == (1, 0)  # horror, as Alien
    apart = call("compare_options", ctx, CompareArgs(first="alien", second="aliens"))
    assert not apart.similar and {(f.attribute, f.value) for f in apart.shared} == {
        ("star", "Sigourney Weaver"), ("genre", "sci-fi")}  # one person only: a sequel may stay


def test_select_best_keeps_one_entry_per_title_and_skips_known_items(ctx):
    ranked = Ranked(item_ids=("halloween78", "halloween07", "conjuring", "insidious", "alien"),
                    scores=(5.0, 4.0, 3.0, 2.0, 1.0))
    assert call("select_best", ctx, SelectArgs(ranked=ranked, k=3)).item_ids == ("halloween78", "conjuring",
                                                                                 "insidious")
    skipped = call("select_best", ctx, SelectArgs(ranked=ranked, k=3, skip=("halloween78", "insidious")))
    assert skipped.item_ids == ("halloween07", "conjuring", "alien")


# ----------------------------------------------------------------------------------------------- reasoning

def test_query_knowledge_states_only_catalogue_facts(ctx, books):
    facts = {(f.attribute, f.value) for f in call("query_knowledge", ctx, KnowledgeArgs(item_id="conjuring")).facts}
    assert {("director", "James Wan"), ("star", "Patrick Wilson"), ("year", 2013), ("genre", "horror")} <= facts
    only = call("query_knowledge", ctx, KnowledgeArgs(item_id="conjuring", attributes=("director",))).facts
    assert [(f.attribute, f.value) for f in only] == [("director", "James Wan")]
    book = books.adapter.catalog.get("11-22-63")
    known = {(f.attribute, f.value) for f in call("query_knowledge", books, KnowledgeArgs(item_id="11-22-63")).facts}
    assert ("author", "Stephen King") in known and ("year", book.year) in known


def test_reason_over_graph_links_candidates_to_liked_items(ctx):
    found = call("reason_over_graph", ctx, GraphArgs(candidates=("insidious", "halloween07", "toystory"),
                                                     liked=("conjuring",)))
    assert found.support[0] > found.support[1] > found.support[2] == 0.0  # people weigh more than a genre
    assert {(c, liked) for c, liked, _ in found.paths} == {("insidious", "conjuring"), ("halloween07", "conjuring")}
    # one shared person (Sigourney Weaver) outweighs two shared values that are no person (horror, 1970s)
    person = call("reason_over_graph", ctx, GraphArgs(candidates=("aliens", "halloween78"), liked=("alien",)))
    assert person.support[0] > person.support[1] > 0


def test_infer_implicit_finds_what_most_liked_items_share(ctx):
    found = call("infer_implicit", ctx, GraphArgs(candidates=(), liked=("conjuring", "insidious")))
    # five values shared by both: the people first, then in the catalogue's order
    assert [c.describe() for c in found.wanted] == ["director = James Wan", "star = Patrick Wilson",
                                                    "genre = horror"]
    assert call("infer_implicit", ctx, GraphArgs(candidates=(), liked=("conjuring",))).wanted == ()
    assert call("infer_implicit", ctx, GraphArgs(candidates=(), liked=("conjuring", "toystory"))).wanted == ()


# --------------------------------------------------------------------------------------------- interaction

def test_explain_choice_ties_the_item_to_what_the_seeker_said(ctx, movies):
    asked = state(people=("Patrick Wilson",))
    reason = call("explain_choice", ctx, ExplainArgs(item_id="insidious", state=asked))
    assert reason.text == "It stars Patrick Wilson, and you asked for Patrick Wilson." and reason.ties == (
        "Patrick Wilson",)
    liked = state(mentioned=("conjuring",), liked=("conjuring",))
    shared = call("explain_choice", ctx, ExplainArgs(item_id="insidious", state=liked))
    assert shared.text.startswith("Like The Conjuring (2013), which you enjoyed, it is directed by James Wan")
    nothing = call("explain_choice", ctx, ExplainArgs(item_id="toystory", state=liked))
    assert nothing.facts == () and nothing.ties == ()  # nothing shared: no fact claimed
    # the example: a Hugh Grant request is explained by Hugh Grant, not by a genre list
    hugh = state(constraints=(want("star", "Hugh Grant", text="Hugh Grant"),), people=("Hugh Grant",))
    grant = call("explain_choice", movies, ExplainArgs(item_id=NOTTING_HILL, state=hugh))
    assert grant.text == "It stars Hugh Grant, and you asked for Hugh Grant." and grant.ties == ("Hugh Grant",)


def test_handle_rejection_reads_which_proposals_were_turned_down_and_why(ctx):
    turns = (seeker("I loved Toy Story (1995)", "toystory"),
             Turn("recommender", "How about Finding Nemo (2003) or Up (2009)?", ("nemo", "up")),
             seeker("I've seen those already, and nothing animated please"))
    sentiments = call("analyze_sentiment", ctx, TurnsArgs(turns=turns))
    found = call("handle_rejection", ctx, RejectionArgs(message=turns[-1].text, turn=2, proposed=("nemo", "up"),
                                                       sentiments=sentiments))
    assert set(found.rejected) == {"nemo", "up"} and [c.describe() for c in found.reasons] == ["genre != animation"]
    happy = (*turns[:2], seeker("Sounds great, thanks!"))
    happy_sentiments = call("analyze_sentiment", ctx, TurnsArgs(turns=happy))
    kept = call("handle_rejection", ctx, RejectionArgs(message=happy[-1].text, turn=2, proposed=("nemo", "up"),
                                                      sentiments=happy_sentiments))
    assert kept.rejected == () and kept.reasons == ()


def test_refine_query_excludes_turned_down_items_and_adds_the_reason(ctx):
    before = state(seen=("alien",), constraints=(want("genre", "horror"),))
    refined = call("refine_query", ctx, RefineArgs(state=before, rejection=Rejection(
        rejected=("conjuring",), reasons=(want("year", high=1999, turn=2),))))
    assert refined.exclude == ("alien", "conjuring")
    assert [c.describe() for c in refined.constraints] == ["genre = horror", "year ..1999"]


# -------------------------------------------------------------------------------------------------- memory

def test_track_history_counts_turns_and_who_named_what(ctx):
    turns = (seeker("I loved The Conjuring", "conjuring"), Turn("recommender", "Insidious?", ("insidious",)),
             seeker("seen it, and Alien too", "alien", "insidious"))
    history = call("track_history", ctx, TurnsArgs(turns=turns))
    assert history.seeker_turns == 2 and history.recommended == ("insidious",)
    assert history.seeker_items == ("conjuring", "alien", "insidious")
    assert history.mentioned == ("conjuring", "insidious", "alien")


def test_update_beliefs_merges_the_turn_and_explicit_marks_win(ctx):
    turns = (seeker("Something like The Conjuring (2013)", "conjuring"),
             Turn("recommender", "Try Insidious (2010) or Up (2009)", ("insidious", "up")),
             seeker("I didn't like Insidious. No Nicolas Cage either. Seen Alien (1979).", "insidious", "alien"))
    history = call("track_history", ctx, TurnsArgs(turns=turns))
    sentiments = call("analyze_sentiment", ctx, TurnsArgs(turns=turns))
    args = BeliefArgs(state=AgentState(), history=history, sentiments=sentiments,
                      constraints=(avoid("star", "Nicolas Cage"),), people=("Nicolas Cage", "James Wan"),
                      marks=(("up", "seen"),))
    new = call("update_beliefs", ctx, args)
    assert new.liked == ("conjuring",)  # named without a word: "something like" it
    assert new.disliked == ("insidious",) and new.rejected == ()  # the seeker named it too: not a rejection
    assert set(new.seen) == {"alien", "up"}  # read, and marked
    assert "alien" not in new.liked  # only seen: no reason may say they enjoyed it
    assert new.people == ("James Wan",)  # not a person they turned down
    assert new.named == ("conjuring", "insidious", "alien") and new.recommended == ("insidious", "up")
    assert new.blocked == {"insidious", "alien", "up"} and new.known == {"conjuring", "insidious", "alien", "up"}
    marked = call("update_beliefs", ctx, args.model_copy(update={"marks": (("conjuring", "dislike"),)}))
    assert "conjuring" in marked.disliked and "conjuring" not in marked.liked


def test_recall_context_finds_the_seekers_words_linked_or_typed(ctx):
    turns = (seeker("I loved The Conjuring", "conjuring"), Turn("recommender", "The Notebook?", ("notebook",)),
             seeker("the notebook is done, seen it twice"), seeker("anything with a notebook in it?"))
    assert call("recall_context", ctx, RecallArgs(turns=turns, item_id="conjuring")).said == (turns[0].text,)
    # an unlinked title typed in lower case is still the seeker's word about it; the recommender's is not
    assert call("recall_context", ctx, RecallArgs(turns=turns, item_id="notebook")).said == (turns[2].text,)
    assert call("recall_context", ctx, RecallArgs(turns=turns, item_id="up")).said == ()
    assert (title_words("Up"), title_words("Alien"), title_words("The Conjuring")) == (None, None, "the conjuring")


def test_history_is_serialisable(ctx):
    history = History(seeker_turns=1, recommended=("a",), mentioned=("a",), seeker_items=())
    assert History.model_validate_json(history.model_dump_json()) == history
