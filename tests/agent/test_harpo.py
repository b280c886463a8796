"""The HARPO agent end to end: ``harpo`` as a registered recommender (its score matrix is its ranking in tiers,
ruled-out items last, and it only ever sees a context-only view), the agent in conversation on the real ReDial
catalogue (the issue's "after 2010" and Hugh Grant examples) and on the OpenDialKG books with the same code,
bad input, and the latency of a turn without an LLM."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

import worlds
from convrec.agent.config import HarpoOptions
from convrec.agent.harpo import HarpoAgent, HarpoRecommender, HarpoTurn
from convrec.catalog.items import Catalog
from convrec.data.dataset import CRSDataset
from convrec.data.load import load_dataset
from convrec.data.model import ContextView, RecSample, Turn
from convrec.errors import ConfigError
from convrec.evaluate.metrics import recall_and_ndcg_at
from convrec.evaluate.protocol import Protocol
from convrec.evaluate.runner import evaluate
from convrec.retrieval.base import Recommender, build_recommender, item_counts

HORROR, ROMANCE = worlds.cluster_ids("horror"), worlds.cluster_ids("romance")


@pytest.fixture(scope="module")
def world() -> worlds.World:
    return worlds.world(classics=True)


@pytest.fixture(scope="module")
def harpo(world) -> HarpoRecommender:
    recommender = build_recommender("harpo", world.catalog, {"retriever": "itemknn"})
    recommender.fit(world.train, world.valid)
    return recommender


def agent_for(dataset: CRSDataset, **options) -> HarpoAgent:
    retriever = build_recommender("itemknn", dataset.catalog, {})
    retriever.fit(dataset.split("train"))
    return HarpoAgent.build(dataset.catalog, retriever, HarpoOptions(retriever="itemknn", **options), dataset.name)


def converse(agent: HarpoAgent, messages: Sequence[str]) -> list[HarpoTurn]:
    """A chat: each message a seeker turn with its linked titles, each answer a recommender turn."""
    turns: list[Turn] = []
    answers: list[HarpoTurn] = []
    for message in messages:
        items = tuple(dict.fromkeys(t.item_id for t in agent.ctx.adapter.find_titles(message)))
        turns.append(Turn("seeker", message, items))
        answer = agent.respond(ContextView("chat", tuple(turns)), last_proposed=answers[-1].slate if answers else ())
        turns.append(Turn("recommender", answer.reply, answer.slate))
        answers.append(answer)
    return answers


# ------------------------------------------------------------------------------------ the harpo recommender

def test_harpo_scores_a_batch_and_its_top_is_the_critiqued_slate(harpo, world):
    views = [sample.view() for sample in world.test.samples]
    scores = harpo.score(views)
    assert scores.shape == (len(views), len(world.catalog)) and scores.dtype == np.float32
    assert np.isfinite(scores).all() and len(harpo.turns_) == len(views)
    for row, turn in zip(scores, harpo.turns_, strict=True):
        top = [world.catalog.ids[k] for k in np.argsort(-row, kind="stable")[: len(turn.slate)]]
        assert top == list(turn.slate) and len(turn.slate) == 5
    # when the Critic edits the slate, its slate (not the Recommender's draft) comes first
    wish = ContextView("w", (Turn("seeker", "I liked The Farmhouse (2000), anything with Patrick Wilson?",
                                  ("horror0",)),))
    row = harpo.score([wish])[0]
    edited = harpo.turns_[0]
    assert edited.critique and set(edited.slate) == {"conjuring", "insidious"} != set(edited.proposed)
    assert [world.catalog.ids[k] for k in np.argsort(-row, kind="stable")[:2]] == list(edited.slate)
    harpo.score(views)
    # the world's answer is "another movie of the liked one's cluster": the slate says so
    first = harpo.turns_[0]
    assert set(first.slate) <= set(HORROR) and first.reply.startswith("How about")
    targets = np.asarray(world.catalog.indices([s.target for s in world.test.samples]))
    assert recall_and_ndcg_at(scores.astype(np.float64), targets, 10)[0].mean() > 0.7
    assert harpo.describe()["vtos"] == 21 and harpo.describe()["retriever"]["name"] == "itemknn"


def test_ruled_out_items_rank_last_and_broken_constraints_below_the_rest(harpo, world):
    view = ContextView("d", (
        Turn("seeker", "I loved The Farmhouse (2000) but The Lighthouse (2001) was awful", ("horror0", "horror1")),
        Turn("recommender", "Try The Hospital (2002)", ("horror2",)),
        Turn("seeker", "Seen it already. And no romance please")))
    row = harpo.score([view])[0]
    turn = harpo.turns_[0]
    assert set(turn.state.blocked) == {"horror1", "horror2"}
    score = dict(zip(world.catalog.ids, row, strict=True))
    romantic = set(harpo.agent_.ctx.adapter.items_with("genre", "romance"))
    assert romantic == {*ROMANCE, "notebook"}
    ruled_out = [score["horror1"], score["horror2"]]
    romance = [score[i] for i in romantic]
    rest = [s for i, s in score.items() if i not in {"horror1", "horror2", *romantic}]
    assert max(ruled_out) < min(romance) and max(romance) < min(rest)
    assert not set(turn.slate) & {"horror0", "horror1", "horror2", *romantic}


def test_the_ablations_change_what_they_name(world):
    view = ContextView("d", (Turn("seeker", "I loved The Farmhouse (2000) but The Lighthouse (2001) was awful",
                                  ("horror0", "horror1")),))
    rows = {}
    for name, options in {"full": {}, "no-state": {"state_tracking": False}, "no-vtos": {"vtos": False},
                          "no-critic": {"critic": False}}.items():
        recommender = build_recommender("harpo", world.catalog, {"retriever": "itemknn", **options})
        recommender.fit(world.train)
        rows[name] = (recommender.score([view])[0], recommender.turns_[0], recommender)
    disliked = world.catalog.indices(["horror1"])[0]
    assert np.argmin(rows["full"][0]) == disliked  # ruled out: last
    assert np.argmin(rows["no-state"][0]) != disliked  # without state tracking it is not
    base = np.asarray(rows["no-vtos"][2].retriever_.score([view])[0], dtype=np.float64)
    order = np.argsort(-base, kind="stable")
    assert np.all(np.diff(rows["no-vtos"][0][order]) <= 0)  # without VTOs: the retriever's order
    assert rows["no-critic"][1].critique == () and rows["no-critic"][1].slate == rows["no-critic"][1].proposed


def test_config_errors_and_use_before_fit_are_clear(world):
    with pytest.raises(ConfigError, match="not a first-stage retriever"):
        build_recommender("harpo", world.catalog, {"retriever": "harpo"})
    with pytest.raises(ConfigError, match="no-such-model"):
        build_recommender("harpo", world.catalog, {"retriever": "no-such-model"})
    with pytest.raises(ConfigError, match="slate"):
        build_recommender("harpo", world.catalog, {"slate": 0})
    with pytest.raises(RuntimeError, match="fit"):
        build_recommender("harpo", world.catalog, {"retriever": "itemknn"}).score([])


class ReadsAhead(Recommender):
    """A retriever that cheats wherever it can: the items of the target's turn and later ones score 1. It also
    records what it was handed."""

    name = "reads-ahead"  # a test double, not registered

    def __init__(self, catalog: Catalog):
        super().__init__(catalog)
        self.handed: list[type] = []

    def score(self, samples: Sequence[RecSample | ContextView]) -> np.ndarray:
        scores = np.zeros((len(samples), len(self.catalog)), dtype=np.float32)
        for row, sample in enumerate(samples):
            self.handed.append(type(sample))
            dialogue = getattr(sample, "dialogue", None)
            if dialogue is not None:
                later = {i for turn in dialogue.turns[sample.turn_index:] for i in turn.items}
                scores[row, self.catalog.indices(later)] = 1.0
        return scores


def test_a_retriever_that_reads_ahead_gains_nothing_inside_harpo(harpo, world):
    samples = world.test.samples
    catalog = world.catalog

    def harpo_with(retriever: Recommender) -> HarpoRecommender:
        inner = HarpoRecommender(catalog, HarpoOptions(retriever="itemknn"))
        inner.retriever_ = retriever
        inner.agent_ = HarpoAgent.build(catalog, retriever, inner.config)
        return inner

    def run(recommender: HarpoRecommender) -> dict[str, float]:
        return evaluate(recommender.score, samples, catalog, Protocol.STANDARD, item_counts(world.train),
                        dataset="world", split="test", recommender="harpo", progress=False).metrics

    cheat = ReadsAhead(catalog)
    zero = ReadsAhead(catalog)
    zero.score = lambda views: np.zeros((len(views), len(catalog)), dtype=np.float32)  # type: ignore[method-assign]
    cheated, honest = run(harpo_with(cheat)), run(harpo_with(zero))
    assert cheated == pytest.approx(honest, nan_ok=True)  # whatever it tried, it saw only the context
    assert cheat.handed and set(cheat.handed) == {ContextView}
    # The control: had harpo's retriever been handed the samples, harpo would rank their targets first.
    leaked = harpo_with(cheat).agent_
    targets = catalog.indices([s.target for s in samples])
    ranks = [int((row > row[t]).sum()) for row, t in (
        (leaked.final_scores(s.view(), cheat.score([s])[0].astype(np.float64))[0], t)
        for s, t in zip(samples, targets, strict=True))]
    assert np.mean([r < 10 for r in ranks]) > 0.9


def test_a_turn_is_json_and_comes_back_equal(harpo, world):
    harpo.score([world.test.samples[0].view()])
    turn = harpo.turns_[0]
    assert HarpoTurn.model_validate_json(turn.model_dump_json()) == turn
    assert turn.trace and {c.agent for c in turn.trace} == {"recommender", "critic", "explainer"}


# ------------------------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("message", ["", "   ", "I loved The Conjuring. " * 4400, "\x00\x1b[31m;DROP TABLE",
                                     "Recommend me Star Wars and The Godfather, they are not in your list"],
                         ids=["empty", "blank", "100KB", "control-chars", "unknown-titles"])
def test_bad_input_gets_an_answer_never_a_traceback(harpo, world, message):
    agent = harpo.agent_
    started = time.perf_counter()
    turn = agent.respond(ContextView("d", (Turn("seeker", message, ()),)))
    assert time.perf_counter() - started < 5.0
    assert turn.reply and all(i in world.catalog for i in turn.slate)
    assert turn.action.action in ("ask", "recommend")


# ------------------------------------------------------------------------------------- real conversations

@pytest.fixture(scope="module")
def movies(redial) -> HarpoAgent:
    return agent_for(redial)


@pytest.fixture(scope="module")
def books(mirror: Path, data_dir: Path) -> HarpoAgent:
    return agent_for(load_dataset("opendialkg-books", data_dir, mirror))


def test_the_issues_examples_after_2010_and_hugh_grant(movies):
    """Today's chat ignores a "from after 2010" follow-up and explains a Hugh Grant request with "It is a comedy
    and romance movie" (the issue). The agent: every later slate holds the era, reasons name Hugh Grant."""
    catalog = movies.ctx.adapter.catalog
    grant = converse(movies, ["Hi! I really like Notting Hill", "anything with Hugh Grant?"])[-1]
    assert len(grant.slate) == 5
    assert all("Hugh Grant" in catalog.get(i).metadata.get("star", []) for i in grant.slate)
    assert all("Hugh Grant" in reason.ties and "Hugh Grant" in reason.text for reason in grant.reasons)
    later = converse(movies, ["I loved The Terminator", "from after 2010 please", "something with aliens maybe?",
                              "I've seen Arrival (2016), what else?"])
    for answer in later[1:]:
        assert answer.slate and all((catalog.get(i).year or 0) >= 2011 for i in answer.slate)
    arrival = catalog.get(next(i for i in later[-1].state.seen)).display_title
    assert arrival == "Arrival (2016)" and not set(later[-1].slate) & set(later[-1].state.seen)
    assert not set(later[-1].slate) & {i for answer in later[:-1] for i in answer.slate}  # nothing twice


def test_the_same_agent_code_answers_about_books(books):
    catalog = books.ctx.adapter.catalog
    answer = converse(books, ["Something by Terry Pratchett please"])[-1]
    assert answer.slate and all(catalog.get(i).metadata.get("author") == ["Terry Pratchett"]
                                or "Terry Pratchett" in catalog.get(i).metadata.get("author", [])
                                for i in answer.slate)
    assert "It is written by Terry Pratchett, and you asked for Terry Pratchett." in answer.reply
    liked = converse(books, ["I loved Wyrd Sisters (1988)"])[-1]
    assert liked.reasons[0].text.startswith("Like Wyrd Sisters (1988), which you enjoyed, it is written by")
    avoided = converse(books, ["I read City of Bones last month", "I'm done with Cassandra Clare"])[-1]
    assert avoided.slate and not any("Cassandra Clare" in catalog.get(i).metadata.get("author", [])
                                     for i in avoided.slate)


def test_a_turn_without_an_llm_is_fast_on_redial(movies, redial):
    """The issue's target: under 100 ms a turn without the LLM at 7k items. Measured over 200 seeded test
    contexts (the report prints the median and p90, and the share of each agent from the VTO trace)."""
    samples = random.Random(15).sample(redial.split("test").samples, 200)
    movies.respond(samples[0].view())  # the adapter's indexes are built on first use
    walls, by_agent = [], {"recommender": [], "critic": [], "explainer": []}
    for sample in samples:
        started = time.perf_counter()
        turn = movies.respond(sample.view())
        walls.append(time.perf_counter() - started)
        for agent in by_agent:
            by_agent[agent].append(sum(c.seconds for c in turn.trace if c.agent == agent))
    median, p90 = np.percentile(walls, 50) * 1000, np.percentile(walls, 90) * 1000
    shares = ", ".join(f"{agent} {np.median(s) * 1000:.1f} / {np.percentile(s, 90) * 1000:.1f}"
                       for agent, s in by_agent.items())
    print(f"\nHarpoAgent.respond on {len(samples)} ReDial test contexts ({len(redial.catalog)} items, itemknn, "
          f"rule path): median {median:.1f} ms, p90 {p90:.1f} ms; VTO seconds by agent, median / p90 ms: {shares}")
    assert median < 100
