"""MAVEN's three roles on the shared test world with its classics (tests/worlds.py, 50 items): the Critic
replaces what breaks the state with the next candidate that passes and says so in the trace, the Explainer's
reasons tie to what the seeker said and state no fact the item lacks, the Recommender reads every seeker turn
and proposes a slate that holds the state (widening the search, or letting the oldest wish go, when it must)."""

from __future__ import annotations

from dataclasses import replace

import pytest

import worlds
from convrec.agent.config import HarpoOptions
from convrec.agent.constraints import Constraint, ConstraintState
from convrec.agent.domain import Fact
from convrec.agent.maven import CriticAgent, ExplainerAgent, Proposal, RecommenderAgent, grounded
from convrec.agent.operations import VTOS, AgentContext, Explanation, KnowledgeArgs, Ranked, UserModel
from convrec.agent.state import AgentState
from convrec.agent.vto import Trace
from convrec.data.model import ContextView, Turn
from convrec.retrieval.base import build_recommender

RECOMMEND = UserModel(action="recommend", reason="test")


@pytest.fixture(scope="module")
def ctx() -> AgentContext:
    world = worlds.world(classics=True)
    retriever = build_recommender("itemknn", world.catalog, {})
    retriever.fit(world.train)
    return AgentContext.for_catalog(world.catalog, retriever, HarpoOptions(retriever="itemknn"))


def with_options(ctx: AgentContext, **options) -> AgentContext:
    return replace(ctx, options=ctx.options.model_copy(update=options))


def avoid(attribute: str, value: str) -> Constraint:
    return Constraint(attribute=attribute, value=value, polarity="avoid", text=f"no {value}")


def proposal(slate: tuple[str, ...], spare: tuple[str, ...], constraints: tuple[Constraint, ...] = (),
             turns: tuple[Turn, ...] = (), **state) -> Proposal:
    ranked = (*slate, *spare)
    known = AgentState(constraints=ConstraintState(constraints=constraints), **state)
    return Proposal(state=known, action=RECOMMEND, ranked=Ranked(item_ids=ranked, scores=(0.0,) * len(ranked)),
                    slate=slate, turns=turns, constraints=constraints)


# ------------------------------------------------------------------------------------------------- critic

def test_the_critic_replaces_each_problem_with_the_next_candidate_that_passes(ctx):
    # a romance (avoided), a disliked, a seen item, and a remake with its original's title
    draft = proposal(slate=("notebook", "toystory", "nemo", "halloween78", "halloween07"),
                     spare=("romance0", "up", "heist", "halloween78", "alien", "whales", "chess"),
                     constraints=(avoid("genre", "romance"),), disliked=("toystory",), seen=("nemo", "up"))
    trace = Trace()
    slate, notes = CriticAgent(ctx).review(draft, trace)
    problems = {note.item_id: note.problem for note in notes}
    assert problems == {"notebook": "against genre != romance", "toystory": "ruled out by the seeker",
                        "nemo": "ruled out by the seeker", "halloween07": "too like Halloween (1978)"}
    # romance0 breaks the constraint, up was seen, halloween78 is in the slate already: skipped
    assert slate == ("heist", "alien", "whales", "halloween78", "chess")  # in the spare candidates' order
    assert {note.replacement for note in notes} == {"heist", "alien", "whales", "chess"}
    assert all(note.round == 1 for note in notes)
    edits = [call for call in trace if call.changed_slate]
    assert edits and {call.agent for call in trace} == {"critic"}
    # round 2 found nothing: one filter_results per round
    assert [call.operation for call in trace].count("filter_results") == 2


def test_the_critic_removes_an_item_it_cannot_replace_and_stops_after_its_rounds(ctx):
    draft = proposal(slate=("notebook", "conjuring"), spare=("romance1",), constraints=(avoid("genre", "romance"),))
    slate, notes = CriticAgent(ctx).review(draft)
    assert slate == ("conjuring",) and notes[0].replacement is None
    unchecked, none = CriticAgent(with_options(ctx, critique_rounds=0)).review(draft)
    assert unchecked == ("notebook", "conjuring") and none == []
    no_tracking = CriticAgent(with_options(ctx, state_tracking=False)).review(draft)[0]
    assert no_tracking == ("notebook", "conjuring")  # the ablation: no constraint is checked


def test_the_critic_never_repeats_what_the_seeker_already_knows(ctx):
    turns = (Turn("seeker", "I loved The Conjuring", ("conjuring",)),
             Turn("recommender", "Try Insidious", ("insidious",)),
             Turn("seeker", "the notebook is done, what else?"))
    draft = proposal(slate=("conjuring", "insidious", "notebook", "alien"), spare=("aliens", "up", "nemo"),
                     turns=turns, named=("conjuring",), recommended=("insidious",))
    trace = Trace()
    slate, notes = CriticAgent(ctx).review(draft, trace)
    assert {note.item_id: note.problem for note in notes} == {
        "conjuring": "known to the seeker already (named or proposed before)",
        "insidious": "known to the seeker already (named or proposed before)",
        "notebook": "the seeker wrote its title already"}  # typed in lower case, never linked
    assert set(slate) == {"alien", "aliens", "up", "nemo"}
    assert "recall_context" in {call.operation for call in trace}


# ---------------------------------------------------------------------------------------------- explainer

def liked_state(*liked: str, **fields) -> AgentState:
    return AgentState(mentioned=liked, liked=liked, named=liked, **fields)


def test_each_reason_ties_the_item_to_what_the_seeker_said(ctx):
    explainer = ExplainerAgent(ctx)
    asked = AgentState(people=("Patrick Wilson",), constraints=ConstraintState(constraints=(
        Constraint(attribute="star", value="Patrick Wilson", text="Patrick Wilson"),)))
    reply, reasons = explainer.explain(("insidious", "conjuring"), asked)
    assert reply.startswith("How about Insidious (2010)? It stars Patrick Wilson, and you asked for Patrick Wilson.")
    assert reply.endswith("You might also like The Conjuring (2013).")
    assert [r.ties for r in reasons] == [("Patrick Wilson",), ("Patrick Wilson",)]
    _, shared = explainer.explain(("insidious",), liked_state("conjuring"))
    assert shared[0].text == ("Like The Conjuring (2013), which you enjoyed, it is directed by James Wan and stars "
                              "Patrick Wilson.")
    assert shared[0].ties == ("The Conjuring (2013)",)
    for reason in (*reasons, *shared):  # every fact stated is one of the item's
        assert reason.facts and grounded(reason, VTOS.call("query_knowledge", ctx, KnowledgeArgs(
            item_id="insidious"), None).facts)
    _, plain = explainer.explain(("toystory",), liked_state("conjuring"))
    assert plain[0].facts == () and "genre" not in plain[0].text  # nothing shared: no bare genre list


def test_grounded_rejects_a_fact_the_item_lacks(ctx):
    known = VTOS.call("query_knowledge", ctx, KnowledgeArgs(item_id="conjuring"), None).facts
    true = Explanation(text="It is directed by James Wan.", facts=(Fact(attribute="director", value="james wan",
                                                                        kind="person"),), ties=())
    false = Explanation(text="It is directed by Steven Spielberg.", facts=(
        Fact(attribute="director", value="Steven Spielberg", kind="person"),), ties=())
    assert grounded(true, known) and not grounded(false, known)
    assert grounded(Explanation(text="It fits.", facts=(), ties=()), known)


def test_an_ungrounded_reason_is_replaced_by_the_template(ctx, monkeypatch):
    operation = VTOS.get("explain_choice")

    def invents(context, args):
        return Explanation(text="It is directed by Steven Spielberg, and you asked for him.",
                           facts=(Fact(attribute="director", value="Steven Spielberg", kind="person"),), ties=("x",))

    monkeypatch.setitem(VTOS._operations, "explain_choice", replace(operation, run=invents))
    reply, reasons = ExplainerAgent(ctx).explain(("conjuring",), AgentState())
    assert "Spielberg" not in reply and reasons[0].text == "It is an item I think fits what you said."
    assert reasons[0].facts == ()


@pytest.fixture(scope="module")
def redial_ctx(redial) -> AgentContext:
    retriever = build_recommender("itemknn", redial.catalog, {})
    retriever.fit(redial.split("train"))
    return AgentContext.for_catalog(redial.catalog, retriever, HarpoOptions(retriever="itemknn"), redial.name)


def test_a_keyword_two_plots_spell_differently_is_a_grounded_reason_on_redial(redial_ctx):
    # Jurassic World's plot says "dinosaur", Jurassic Park's "dinosaurs"; Saving Private Ryan's "soldiers",
    # while the catalogue writes that keyword "soldier" most often. A reason that states the shared keyword
    # was refused (and replaced by the plain template) when its spelling was not the item's own.
    adapter = redial_ctx.adapter
    ids = {item.display_title: item.item_id for item in adapter.catalog}
    world, park = ids["Jurassic World (2015)"], ids["Jurassic Park (1993)"]
    ryan, dunkirk = ids["Saving Private Ryan (1998)"], ids["Dunkirk (2017)"]
    keyword = adapter.attribute("keyword").kind
    assert Fact(attribute="keyword", value="dinosaur", kind=keyword) in adapter.paths(world, park)
    assert Fact(attribute="keyword", value="dinosaurs", kind=keyword) in adapter.paths(park, world)
    explainer = ExplainerAgent(redial_ctx)
    for item, liked, word in ((world, park, "dinosaur"), (park, world, "dinosaurs"), (ryan, dunkirk, "soldiers")):
        _, reasons = explainer.explain((item,), liked_state(liked))
        liked_title = adapter.catalog.get(liked).display_title
        assert reasons[0].text.startswith(f"Like {liked_title}, which you enjoyed, it ")
        assert f"keyword {word}" in reasons[0].text and reasons[0].ties == (liked_title,)
        assert grounded(reasons[0], adapter.facts(item))
    # grounded compares the gazetteer's keys: another spelling of a value the item holds is the same fact,
    # a value it lacks is still refused
    known = adapter.facts(ryan)

    def states(value: str) -> Explanation:
        return Explanation(text="", facts=(Fact(attribute="keyword", value=value, kind=keyword),), ties=())

    assert grounded(states("Soldier"), known) and grounded(states("soldiers"), known)
    assert not grounded(states("dinosaur"), known)


def test_the_reply_without_a_slate_or_with_a_wish_let_go(ctx):
    explainer = ExplainerAgent(ctx)
    text, reasons = explainer.explain((), AgentState())
    assert reasons == [] and text.startswith("I could not find an item that fits everything")
    gone = (Constraint(attribute="star", value="Patrick Wilson", text="Patrick Wilson"),)
    text, _ = explainer.explain(("alien",), AgentState(), relaxed=gone)
    assert text.endswith("these leave out what you asked for first: Patrick Wilson.")
    assert explainer.ask("genre").startswith("Happy to help! What kind of item are you in the mood for: a genre")


# -------------------------------------------------------------------------------------------- recommender

def test_read_applies_every_seeker_turn_in_order_and_traces_only_the_latest(ctx):
    turns = (Turn("seeker", "I loved The Conjuring (2013). Something with Patrick Wilson?", ("conjuring",)),
             Turn("recommender", "Insidious (2010)?", ("insidious",)),
             Turn("seeker", "No thanks, and nothing before 2000 please"))
    trace = Trace()
    state = RecommenderAgent(ctx).read(turns, marks=(("alien", "seen"),), trace=trace)
    assert state.constraints.describe() == ["star = Patrick Wilson", "year 2000.."]
    assert state.liked == ("conjuring",) and state.people == ("Patrick Wilson",) and "alien" in state.seen
    assert state.seeker_turns == 2 and state.named == ("conjuring",) and state.recommended == ("insidious",)
    extracted = [call for call in trace if call.operation == "identify_constraints"]
    assert len(extracted) == 1 and extracted[0].result == "year 2000.."  # the latest turn only


def test_propose_widens_the_search_to_hold_a_wanted_person(ctx):
    # the retriever's top 5 after a horror movie are horror movies of the cluster, none with Patrick Wilson
    narrow = with_options(ctx, candidates=5)
    turns = (Turn("seeker", "I liked The Farmhouse (2000), anything with Patrick Wilson?", ("horror0",)),)
    view = ContextView("d", turns)
    recommender = RecommenderAgent(narrow)
    state = recommender.read(turns)
    draft = recommender.propose(view, state)
    assert {"conjuring", "insidious"} <= set(draft.ranked.item_ids)
    slate, _ = CriticAgent(narrow).review(draft)
    assert set(slate) == {"conjuring", "insidious"}  # the only two: a shorter slate, never a broken wish
    assert draft.relaxed == () and "horror0" not in slate


def test_propose_lets_the_oldest_wish_go_when_nothing_holds_them_all(ctx):
    turns = (Turn("seeker", "Something with Patrick Wilson please"),
             Turn("recommender", "The Conjuring (2013)?", ("conjuring",)),
             Turn("seeker", "only from before 2000 though"))
    recommender = RecommenderAgent(ctx)
    draft = recommender.propose(ContextView("d", turns), recommender.read(turns))
    assert [c.describe() for c in draft.relaxed] == ["star = Patrick Wilson"]
    assert [c.describe() for c in draft.constraints] == ["year ..1999"]
    slate, _ = CriticAgent(ctx).review(draft)
    assert set(slate) == {"toystory", "halloween78", "alien", "aliens"}  # every item of the catalogue before 2000
