"""The HARPO agent on the constraint suite of issue 15 (``convrec.evaluate.suites/constraints.toml``, checked
on catalogue metadata only, never on the agent's own state), as a chat would drive it: each user message a
seeker turn with the titles the domain adapter links, the agent's answer to the whole dialogue so far
(reading a rejection of its previous slate), its slate a recommender turn. The retriever is itemknn fitted on
each dataset's train split, the rule path reads sentiment (no LLM).

The issue's targets (``assert_suite_holds``): at most 5% of (slate, constraint) pairs violated, no seen or
disliked item ever recommended again. The reference is today's chat engine on the same suite (the retriever
alone). Re-measure and print both tables with ``pytest tests/agent/test_harpo_suite.py -s``.

The suite was read while the agent's misses were fixed, so its rate is an in-sample number; the few
conversations of :data:`HELD_OUT`, written for this test after those fixes and never tuned on, are the check
that the rules carry over to phrasings the agent has not seen.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from convrec.agent.config import HarpoOptions
from convrec.agent.harpo import HarpoAgent
from convrec.data.dataset import CRSDataset
from convrec.data.load import load_dataset
from convrec.data.model import ContextView, Turn
from convrec.evaluate.constraints import ConstraintSuite, Converse, SuiteConversation, load_suite, run_suite
from convrec.retrieval.base import build_recommender
from evaluate.test_constraint_suite import assert_suite_holds, check_report, engine_converse

REFERENCE_RATE = 0.5  # the chat engine's rate is far above the target: the suite can tell the two apart


def harpo_converse(datasets: Mapping[str, CRSDataset], options: HarpoOptions | None = None) -> Converse:
    """The agent as a system under test: a new conversation per call, one slate per user message (empty when
    the agent asks a question instead; it asks at most once a conversation, as the chat does)."""
    agents = {}
    for name, dataset in datasets.items():
        retriever = build_recommender("itemknn", dataset.catalog, {})
        retriever.fit(dataset.split("train"))
        agents[name] = HarpoAgent.build(dataset.catalog, retriever, options or HarpoOptions(retriever="itemknn"), name)

    def converse(dataset: str, messages: Sequence[str]) -> list[list[str]]:
        agent = agents[dataset]
        ctx = agent.ctx
        turns: list[Turn] = []
        slates: list[list[str]] = []
        last: tuple[str, ...] = ()
        for message in messages:
            linked = tuple(dict.fromkeys(t.item_id for t in ctx.adapter.find_titles(message)))
            turns.append(Turn("seeker", message, linked))
            answer = agent.respond(ContextView(f"suite-{dataset}", tuple(turns)), last_proposed=last, ctx=ctx)
            if answer.action.action == "ask":
                ctx = replace(ctx, options=ctx.options.model_copy(update={"ask_first": False}))
            turns.append(Turn("recommender", answer.reply, answer.slate))
            slates.append(list(answer.slate))
            last = answer.slate
        return slates

    return converse


@pytest.fixture(scope="module")
def datasets(redial: CRSDataset, mirror: Path, data_dir: Path) -> dict[str, CRSDataset]:
    return {"redial": redial, "opendialkg-books": load_dataset("opendialkg-books", data_dir, mirror)}


@pytest.fixture(scope="module")
def catalogs(datasets):
    return {name: dataset.catalog for name, dataset in datasets.items()}


@pytest.fixture(scope="module")
def converse(datasets) -> Converse:
    return harpo_converse(datasets)


def side_by_side(harpo, reference) -> str:
    rows = [("all", harpo.overall, reference.overall)]
    rows += [(f"domain {name}", harpo.by_domain[name], reference.by_domain[name]) for name in harpo.by_domain]
    rows += [(f"kind {name}", harpo.by_kind[name], reference.by_kind[name]) for name in harpo.by_kind]
    lines = ["| group | harpo: rate ± SE (violated/determined) | undetermined | chat engine (retriever alone) "
             "| undetermined |", "|---|---|---|---|---|"]
    lines += [f"| {name} | {ours.cell()} | {ours.undetermined} | {theirs.cell()} | {theirs.undetermined} |"
              for name, ours, theirs in rows]
    return "\n".join(lines)


def test_harpo_holds_the_constraint_suite(converse, datasets, catalogs):
    suite = load_suite()
    report = assert_suite_holds(converse, suite, catalogs)
    reference = run_suite(engine_converse(datasets), suite, catalogs)
    print(f"\nconstraint suite v{report.suite_version}: {report.conversations} conversations, {report.slates} "
          f"slates ({report.empty_slates} empty for harpo: it asked instead), {len(report.pairs)} (slate, "
          f"constraint) pairs; SE clustered by conversation; itemknn fitted on train, no LLM\n"
          f"{side_by_side(report, reference)}")
    assert reference.overall.rate > REFERENCE_RATE
    # the conversation target, stricter than the 5%: a stated constraint holds in every later slate
    assert report.overall.violated == 0, [(p.conversation, p.turn, p.kind.value, p.violating)
                                          for p in report.pairs if p.violating]
    # an empty slate is only ever a question, once per conversation, before anything is known
    assert report.empty_slates <= report.conversations * 0.15


def test_the_suites_checks_fail_on_an_agent_without_state_tracking(datasets, catalogs):
    """The control: the same agent with its state tracking ablated (no filtering by constraints or rejections)
    breaks the suite, so the pass above is the state tracking's doing."""
    untracked = harpo_converse(datasets, HarpoOptions(retriever="itemknn", state_tracking=False))
    report = run_suite(untracked, load_suite(), catalogs)
    assert report.overall.rate > 0.2
    with pytest.raises(AssertionError, match="violated"):
        check_report(report)


HELD_OUT = [
    {"id": "held-2000s-titanic", "dataset": "redial",
     "messages": ["I adore Titanic (1997)", "Only stuff from the 2000s please", "what else?"],
     "constraints": [{"kind": "decade", "value": 2000, "from_turn": 2, "quote": "from the 2000s"}]},
    {"id": "held-no-scifi-jurassic", "dataset": "redial",
     "messages": ["Jurassic Park (1993) is a blast", "Skip the sci-fi stuff this time"],
     "constraints": [{"kind": "genre_avoid", "value": "sci-fi", "from_turn": 2, "quote": "Skip the sci-fi"}]},
    {"id": "held-no-keanu-matrix", "dataset": "redial",
     "messages": ["I watched The Matrix (1999) yesterday", "something without Keanu Reeves please"],
     "constraints": [{"kind": "person_avoid", "value": "Keanu Reeves", "from_turn": 2,
                      "quote": "without Keanu Reeves"}]},
    {"id": "held-disliked-notebook", "dataset": "redial",
     "messages": ["The Notebook (2004) was too sappy for me", "any good thrillers instead?"],
     "constraints": [{"kind": "disliked_item", "value": "185139", "from_turn": 1, "quote": "too sappy"}]},
    {"id": "held-seen-toy-story-3", "dataset": "redial",
     "messages": ["Loved Shrek (2001)", "I've already watched Toy Story 3 (2010) with the kids", "more animated ones?"],
     "constraints": [{"kind": "seen_item", "value": "161498", "from_turn": 2, "quote": "already watched"}]},
    {"id": "held-before-1990-heat", "dataset": "redial",
     "messages": ["Heat (1995) is my favourite crime film", "anything from before 1990?"],
     "constraints": [{"kind": "year_before", "value": 1990, "from_turn": 2, "quote": "before 1990"}]},
    {"id": "held-after-2000-gone-girl", "dataset": "opendialkg-books",
     "messages": ["Gone Girl (2012) was gripping", "only books published after 2000"],
     "constraints": [{"kind": "year_after", "value": 2000, "from_turn": 2, "quote": "published after 2000"}]},
    {"id": "held-no-king-martian", "dataset": "opendialkg-books",
     "messages": ["I loved The Martian (2012)", "no Stephen King please"],
     "constraints": [{"kind": "person_avoid", "value": "Stephen King", "from_turn": 2, "quote": "no Stephen King"}]},
]


def test_held_out_phrasings(converse, catalogs):
    suite = ConstraintSuite(version=1, conversations=tuple(SuiteConversation.model_validate(c) for c in HELD_OUT))
    report = run_suite(converse, suite, catalogs)
    print(f"\nheld-out conversations ({report.conversations}, {len(report.pairs)} pairs): "
          f"{report.overall.cell()}\n{report.table()}")
    check_report(report)
