"""The HARPO Explainer with an LLM (``explainer = "llm"``): the template rewritten through the chat's ReplyWriter
(its polish and its check), then the agent's grounding (no genre or person an item lacks); any refusal leaves the
template and is recorded on the turn. The refusal paths run on the shared test world (tests/worlds.py) with
fakes that inject a failure (an ungrounded rewrite, a failing or dead endpoint); the real SmolLM2 answers real
ReDial dialogues."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import worlds
from convrec.agent.config import HarpoOptions
from convrec.agent.constraints import Constraint
from convrec.agent.harpo import HarpoAgent, HarpoTurn
from convrec.agent.maven import ExplainerAgent
from convrec.agent.operations import AgentContext
from convrec.agent.state import AgentState
from convrec.agent.vto import Trace
from convrec.data.dataset import CRSDataset
from convrec.data.model import ContextView, Turn
from convrec.llm import ChatRequest, ChatResponse, LLMRequestError, LLMUnavailableError
from convrec.resources import Resources
from convrec.retrieval.base import build_recommender

SLATE = ("alien", "nemo", "notebook")
TITLES = "Alien (1979)", "Finding Nemo (2003)", "The Notebook (2004)"
VIEW = ContextView("chat", (Turn("seeker", "Something good to watch tonight?"),))


@dataclass
class FakeRewriteLLM:
    """A fake that injects a failure: answers every polish request with the same rewrite (one that states
    what the catalogue does not, or drops a title), and keeps the requests."""

    text: str
    requests: list[ChatRequest] = field(default_factory=list)

    def complete(self, request: ChatRequest) -> ChatResponse:
        self.requests.append(request)
        return ChatResponse(text=self.text, model="fake-rewrite", backend="fake", finish_reason="stop")


class FakeFailingLLM:
    """A fake that injects a failure: every call fails as a backend does after its retries."""

    def complete(self, request: ChatRequest) -> ChatResponse:
        raise LLMRequestError("FakeFailingLLM: injected failure")


class FakeDeadEndpointLLM:
    """A fake that injects a failure: the endpoint cannot serve at all (what the client raises for it)."""

    def complete(self, request: ChatRequest) -> ChatResponse:
        raise LLMUnavailableError("FakeDeadEndpointLLM: http://127.0.0.1:9 refused the connection")


@pytest.fixture(scope="module")
def world() -> worlds.World:
    return worlds.world(classics=True)


@pytest.fixture(scope="module")
def itemknn(world):
    retriever = build_recommender("itemknn", world.catalog, {})
    retriever.fit(world.train)
    return retriever


def explainer(world, itemknn, llm, explainer: str = "llm") -> ExplainerAgent:
    options = HarpoOptions(retriever="itemknn", explainer=explainer)
    return ExplainerAgent(AgentContext.for_catalog(world.catalog, itemknn, options, llm=llm))


def rewrite(world, itemknn, text: str, slate=SLATE, state: AgentState | None = None, **reply):
    llm = FakeRewriteLLM(text)
    agent = explainer(world, itemknn, llm)
    return agent.reply(VIEW, slate, state or AgentState(), **reply), llm, agent


# ------------------------------------------------------------------------------------------ what is kept

def test_the_template_is_the_default_and_never_asks_the_llm(world, itemknn):
    assert HarpoOptions().explainer == "template"
    llm = FakeRewriteLLM(f"{TITLES[0]} is great. Also {TITLES[1]} or {TITLES[2]}.")
    agent = explainer(world, itemknn, llm, explainer="template")
    answer = agent.reply(VIEW, SLATE, AgentState())
    assert llm.requests == [] and answer.source == "template" and answer.refusal is None and answer.draft is None
    assert (answer.text, list(answer.reasons)) == agent.explain(SLATE, AgentState())


def test_a_grounded_rewrite_is_kept_and_its_pronouns_refer_to_the_item_before(world, itemknn):
    text = (f"{TITLES[0]} is a sci-fi horror film. It stars Sigourney Weaver, directed by Ridley Scott. "
            f"For something lighter, try {TITLES[1]} or {TITLES[2]}.")
    answer, llm, agent = rewrite(world, itemknn, text)
    assert answer.source == "llm" and answer.text == text and answer.refusal is None
    assert answer.draft == agent.explain(SLATE, AgentState())[0]
    # the LLM was asked once, with the template as its draft and the dialogue
    assert len(llm.requests) == 1 and answer.draft in llm.requests[0].messages[-1].content
    assert "Something good to watch tonight?" in llm.requests[0].messages[-1].content


def test_a_reason_that_compares_with_a_liked_item_may_keep_its_title_and_shared_director(world, itemknn):
    state = AgentState(liked=("conjuring",), mentioned=("conjuring",))
    slate = ("insidious", "nemo", "notebook")
    text = ("Since you enjoyed The Conjuring (2013), try Insidious (2010): James Wan directed both. "
            f"You might also like {TITLES[1]} or {TITLES[2]}.")
    answer, _, _ = rewrite(world, itemknn, text, slate=slate, state=state)
    assert "The Conjuring (2013)" in answer.draft
    assert answer.source == "llm", answer.refusal


def test_the_note_on_wishes_let_go_is_not_rewritten_but_follows_the_rewrite(world, itemknn):
    relaxed = (Constraint(attribute="genre", value="documentary", text="documentaries"),)
    text = f"Try {TITLES[0]}, or {TITLES[1]} or {TITLES[2]}."
    answer, llm, _ = rewrite(world, itemknn, text, relaxed=relaxed)
    note = " No item fits everything you asked for, so these leave out what you asked for first: documentaries."
    assert answer.source == "llm" and answer.text == text + note
    assert "documentaries" not in llm.requests[0].messages[-1].content and not answer.draft.endswith(note)


# ------------------------------------------------------------------------------------- what is refused

@pytest.mark.parametrize(("text", "why"), [
    # Alien is horror and sci-fi, not a romantic comedy
    (f"How about {TITLES[0]}? It is a romantic comedy. You might also like {TITLES[1]} or {TITLES[2]}.",
     "states the genre"),
    # Tom Hanks is in the catalogue (Toy Story), not in Alien
    (f"How about {TITLES[0]}? It stars Tom Hanks. You might also like {TITLES[1]} or {TITLES[2]}.",
     "names Tom Hanks"),
    # true of Alien, said of Finding Nemo: the sentence is about the titles it names
    (f"{TITLES[0]} is great fun. {TITLES[1]} is a horror film, and so is {TITLES[2]}.", "states the genre"),
])
def test_a_rewrite_stating_a_genre_or_person_the_item_lacks_is_refused(world, itemknn, text, why):
    trace = Trace()
    llm = FakeRewriteLLM(text)
    agent = explainer(world, itemknn, llm)
    answer = agent.reply(VIEW, SLATE, AgentState(), trace)
    assert answer.source == "template" and answer.text == answer.draft == agent.explain(SLATE, AgentState())[0]
    assert answer.rejected == text and answer.refusal is not None and answer.refusal.startswith(why), answer.refusal
    # the facts came from the query_knowledge VTO, recorded in the trace by the Explainer
    assert any(call.operation == "query_knowledge" and call.agent == "explainer" for call in trace)


def test_the_reply_writers_own_check_refuses_first(world, itemknn):
    text = f"How about {TITLES[0]}? You might also like Finding Nemo or {TITLES[2]}."  # a year dropped
    answer, _, agent = rewrite(world, itemknn, text)
    assert answer.source == "template" and answer.rejected == text
    assert answer.refusal == agent.ctx.reply_writer.check(text, SLATE, answer.draft)  # the same check, not a copy
    echo, _, _ = rewrite(world, itemknn, f"Draft reply: {TITLES[0]}, {TITLES[1]}, {TITLES[2]}.")
    assert echo.source == "template" and echo.refusal.startswith("repeats its prompt")


@pytest.mark.parametrize(("llm", "why"), [(FakeFailingLLM(), "LLM call failed"),
                                          (FakeDeadEndpointLLM(), "LLM unavailable"),
                                          (None, "no LLM: no LLM client was given")])
def test_no_llm_or_a_failing_one_leaves_the_template_with_the_reason(world, itemknn, llm, why):
    agent = explainer(world, itemknn, llm)
    answer = agent.reply(VIEW, SLATE, AgentState())
    assert answer.source == "template" and answer.text == agent.explain(SLATE, AgentState())[0]
    assert answer.refusal.startswith(why), answer.refusal


def test_harpo_records_the_explainer_on_its_turn_as_json(world, itemknn):
    text = "A romantic comedy for you!"
    options = HarpoOptions(retriever="itemknn", explainer="llm", ask_first=False)
    agent = HarpoAgent.build(world.catalog, itemknn, options, llm=FakeRewriteLLM(text))
    turn = agent.respond(ContextView("chat", (Turn("seeker", "I loved The Conjuring (2013), more like it?",
                                                   ("conjuring",)),)))
    assert turn.slate and turn.explainer_source == "template" and turn.reply == turn.explainer_draft
    assert turn.explainer_rejected == text and turn.explainer_refusal.startswith("does not name")
    assert HarpoTurn.model_validate_json(turn.model_dump_json()) == turn


def test_the_harpo_recommender_without_a_loadable_model_answers_with_the_template(world, tmp_path: Path):
    options = {"retriever": "itemknn", "explainer": "llm", "ask_first": False,
               "llm": {"model": str(tmp_path / "missing.gguf")}}
    harpo = build_recommender("harpo", world.catalog, options, resources=Resources.from_env(tmp_path, tmp_path))
    harpo.fit(world.train, world.valid)
    harpo.score([world.test.samples[0].view()])
    turn = harpo.turns_[0]
    assert turn.slate and turn.explainer_source == "template"
    assert turn.explainer_refusal.startswith("no LLM: ModelNotAvailableError") and "missing.gguf" in \
        turn.explainer_refusal


# ---------------------------------------------------------------------------------- the real model, ReDial

@pytest.fixture(scope="module")
def redial_itemknn(redial: CRSDataset):
    retriever = build_recommender("itemknn", redial.catalog, {})
    retriever.fit(redial.split("train"))
    return retriever


def test_grounding_reads_real_catalogue_facts_surnames_and_full_names(redial, redial_itemknn):
    ctx = AgentContext.for_catalog(redial.catalog, redial_itemknn, HarpoOptions(retriever="itemknn"), redial.name)
    ids = {item.display_title: item.item_id for item in redial.catalog}
    jaws, alien, toy_story = ids["Jaws (1975)"], ids["Alien (1979)"], ids["Toy Story (1995)"]
    check = ExplainerAgent(ctx).ungrounded
    assert check("Jaws (1975) is a Spielberg thriller, starring Roy Scheider. Also Alien (1979) or Toy Story "
                 "(1995).", (jaws, alien, toy_story)) is None
    assert check("Alien (1979) is a Spielberg classic. Also Jaws (1975) or Toy Story (1995).",
                 (alien, jaws, toy_story)).startswith("names Steven Spielberg")
    assert check("Alien (1979), with Tom Hanks, is great. Also Jaws (1975) or Toy Story (1995).",
                 (alien, jaws, toy_story)).startswith("names Tom Hanks")
    assert check("Toy Story (1995) is an adventure. It is a thriller. Also Jaws (1975) or Alien (1979).",
                 (toy_story, jaws, alien)).startswith("states the genre 'thriller'")


def test_smollm2_rewrites_real_redial_replies_and_every_kept_one_passes_both_checks(redial, redial_itemknn,
                                                                                      smollm2):
    options = HarpoOptions(retriever="itemknn", ask_first=False)
    template = HarpoAgent.build(redial.catalog, redial_itemknn, options, redial.name)
    with_llm = HarpoAgent.build(redial.catalog, redial_itemknn, options.model_copy(update={"explainer": "llm"}),
                                redial.name, smollm2)
    explainer = ExplainerAgent(with_llm.ctx)
    samples = random.Random(0).sample(redial.split("valid").selection_samples, 4)
    for sample in samples:
        plain, turn = template.respond(sample.view()), with_llm.respond(sample.view())
        assert turn.slate == plain.slate and turn.explainer_draft == plain.reply  # the LLM rewrote the template
        if turn.explainer_source == "llm":
            ties = [i for i in turn.state.mentioned if redial.catalog.get(i).display_title in turn.explainer_draft
                    and i not in turn.slate[:3]]
            assert turn.explainer_refusal is None and turn.reply != plain.reply
            assert with_llm.ctx.reply_writer.check(turn.reply, (*turn.slate[:3], *ties), plain.reply) is None
            assert explainer.ungrounded(turn.reply, turn.slate[:3], ties) is None
        else:
            assert turn.reply == plain.reply and turn.explainer_refusal
        assert HarpoTurn.model_validate_json(turn.model_dump_json()) == turn
