"""The HARPO behaviour report (:mod:`convrec.evaluate.agent_report`): on real ReDial valid dialogues with the
itemknn retriever (a small seeded subset, the harness's own draw), on hand-made dialogues whose answers are known
(a seeker who hated the item the retriever puts first), and through its command line."""

from __future__ import annotations

import json
from collections import Counter

import pytest

import worlds
from convrec.agent.domain import DomainAdapter
from convrec.agent.vto import PAPER_OPERATIONS
from convrec.data.dataset import CRSDataset
from convrec.data.model import Dialogue, ItemFeedback, Turn
from convrec.errors import DataError
from convrec.evaluate import agent_report as ar
from convrec.evaluate.harness import evaluate_recommender
from convrec.evaluate.protocol import Protocol
from convrec.retrieval.base import item_counts, top_indices

LIMIT, SEED = 60, 0
RUN = {"dataset": "redial", "split": "valid", "samples": LIMIT, "retriever": "itemknn", "options": {},
       "command": "test"}


@pytest.fixture(scope="module")
def redial_run(redial):
    samples, subset = ar.choose_samples(redial, "valid", LIMIT, SEED)
    harpo = ar.fit_harpo(redial, {"retriever": "itemknn"}, "valid")
    outcomes, accuracy = ar.run_agent(harpo, samples, item_counts(redial.split("train")), batch_size=25,
                                      seed=SEED, progress=False)
    report = ar.build_report(redial, "valid", harpo, outcomes, accuracy, RUN | {"subset": subset}, SEED)
    return samples, harpo, outcomes, report


# ------------------------------------------------------------------------------------- on real ReDial
def test_it_scores_the_harness_samples_and_each_outcome_is_its_sample(redial, redial_run):
    samples, harpo, outcomes, report = redial_run
    assert [o.sample for o in outcomes] == samples and len(samples) == LIMIT
    # the same samples and the same fitting as `convrec eval --recommender harpo --limit 60 --seed 0`
    harness = evaluate_recommender(redial, "harpo", {"retriever": "itemknn"}, "valid", [Protocol.STANDARD],
                                   seed=SEED, limit=LIMIT, progress=False)[0]
    assert harness["n_samples"] == LIMIT
    assert report.harpo_accuracy["ndcg@10"] == pytest.approx(harness["metrics"]["ndcg@10"])
    assert report.harpo_accuracy["recall@10"] == pytest.approx(harness["metrics"]["recall@10"])
    # harpo's slate heads its ranking; the retriever's list is its raw score row of the same context view
    for outcome in outcomes[:10]:
        assert outcome.harpo_top[: len(outcome.turn.slate)] == outcome.turn.slate
        raw = harpo.retriever_.score([outcome.sample.view()])[0]
        assert outcome.retriever_top == tuple(redial.catalog.ids[k] for k in top_indices(raw, 10))


def test_per_vto_counts_equal_the_traces(redial_run):
    _, _, outcomes, report = redial_run
    vtos = report.vtos
    calls = [c for o in outcomes for c in o.turn.trace]
    per_operation = Counter(c.operation for c in calls)
    assert vtos.turns == LIMIT and vtos.calls == len(calls) > 0
    names = [name for group in PAPER_OPERATIONS.values() for name in group]
    assert [op.operation for op in vtos.operations] == names and len(names) == 21
    for op in vtos.operations:
        assert op.calls == per_operation[op.operation]
        assert op.turns_calling == sum(1 for o in outcomes if any(c.operation == op.operation for c in o.turn.trace))
        assert op.changed_slate == sum(1 for c in calls if c.operation == op.operation and c.changed_slate)
        assert op.calls_per_turn == pytest.approx(op.calls / LIMIT)
        assert (op.seconds_mean is None) == (op.calls == 0)
    assert sum(a.calls for a in vtos.agents) == len(calls) and vtos.other_operations == {}
    assert {a.agent: a.calls for a in vtos.agents} == dict(Counter(c.agent for c in calls))
    notes = [n for o in outcomes for n in o.turn.critique]
    assert sum(vtos.critic_notes.values()) == len(notes) > 0
    assert "other" not in vtos.critic_notes  # every problem the Critic writes has a kind
    assert sum(vtos.actions.values()) == LIMIT


def test_questionnaire_items_are_the_seekers_disliked_ones_before_the_target(redial_run):
    _, _, outcomes, report = redial_run
    q = report.questionnaire
    assert q.available and q.samples == LIMIT and q.slate_size == 5
    eligible = [o for o in outcomes if ar.disliked_before(o.sample)]
    assert q.eligible == len(eligible) > 0
    for outcome in eligible:
        sample = outcome.sample
        for item in ar.disliked_before(sample):
            assert sample.dialogue.feedback[item].liked is False
            assert any(item in t.items for t in sample.context if t.role == "seeker")
    for found in (q.slate, q.top10):
        assert found.harpo.of == found.retriever.of == q.eligible
        assert found.harpo.low <= found.harpo.rate <= found.harpo.high
        assert found.difference.diff == pytest.approx(found.harpo.rate - found.retriever.rate)


def test_diversity_and_grounding_on_real_redial(redial_run):
    _, harpo, outcomes, report = redial_run
    harpo_div, retriever_div = report.diversity
    assert list(harpo_div.distinct_share) == ["genre", "director", "writer", "star"]
    assert harpo_div.slates + harpo_div.empty_slates == retriever_div.slates == LIMIT
    assert harpo_div.distinct_items == len({i for o in outcomes for i in o.turn.slate})
    for stats in (harpo_div, retriever_div):
        assert 0 < stats.distinct_share_mean <= 1 and 0 < stats.jaccard_distance <= 1 and 0 < stats.coverage < 1
    g = report.grounding
    assert g.replies == sum(1 for o in outcomes if o.turn.slate) and g.reasons == sum(len(o.turn.slate)
                                                                                    for o in outcomes)
    assert g.reasons_grounded == g.reasons  # the Explainer states catalogue facts only
    assert g.recomputed_differs == 0 and 0 < g.replies_tied < g.replies
    assert g.replies_tied + g.replies_factless <= g.replies


# --------------------------------------------------------------------------------- hand-made dialogues
@pytest.fixture(scope="module")
def world() -> worlds.World:
    return worlds.world(classics=True)


def hated_alien(world: worlds.World) -> CRSDataset:
    """Three test dialogues: a seeker who hated Alien (questionnaire: liked no), then the recommender suggests Up;
    a seeker who has seen The Notebook (seen yes, liked unknown); Halloween named by the recommender, not the
    seeker, and marked liked no. Only the first has a disliked-before item."""
    hated = Dialogue("hated", "test", [Turn("seeker", "I hated Alien (1979). It was awful and boring.", ("alien",)),
                                       Turn("recommender", "Try Up (2009).", ("up",))],
                     feedback={"alien": ItemFeedback(liked=False, seen=True)})
    seen = Dialogue("seen", "test", [Turn("seeker", "I have seen The Notebook (2004).", ("notebook",)),
                                     Turn("recommender", "Try Up (2009).", ("up",))],
                    feedback={"notebook": ItemFeedback(seen=True)})
    theirs = Dialogue("theirs", "test", [Turn("seeker", "Any scary movies?"),
                                         Turn("recommender", "Halloween (1978)?", ("halloween78",)),
                                         Turn("seeker", "Hmm, maybe."),
                                         Turn("recommender", "Or Insidious (2010).", ("insidious",))],
                      feedback={"halloween78": ItemFeedback(liked=False)})
    return CRSDataset("hand-made", world.catalog, [*world.train.dialogues, hated, seen, theirs])


def report_on(dataset: CRSDataset, options: dict) -> tuple[list[ar.Outcome], ar.AgentReport]:
    harpo = ar.fit_harpo(dataset, options, "test")
    samples, _ = ar.choose_samples(dataset, "test", None, 0)
    outcomes, accuracy = ar.run_agent(harpo, samples, item_counts(dataset.split("train")), progress=False)
    return outcomes, ar.build_report(dataset, "test", harpo, outcomes, accuracy, RUN, 0)


def test_the_retrievers_top_disliked_item_is_a_violation_for_it_and_not_for_harpo(world):
    # `repeat` ranks the items of the dialogue first: the hated Alien tops the retriever's list
    outcomes, report = report_on(hated_alien(world), {"retriever": "repeat"})
    by_dialogue = {o.sample.dialogue_id: o for o in outcomes}
    assert [ar.disliked_before(o.sample) for o in outcomes] == [("alien",), (), (), ()]  # theirs: 2 samples
    hated = by_dialogue["hated"]
    assert hated.retriever_top[0] == "alien" and "alien" in hated.turn.state.disliked
    assert "alien" not in hated.turn.slate and "alien" not in hated.harpo_top  # ruled out: ranked last
    q = report.questionnaire
    assert (q.eligible, q.eligible_dialogues, q.disliked_items) == (1, 1, 1)
    for found in (q.slate, q.top10):
        assert (found.harpo.count, found.retriever.count, found.harpo.of) == (0, 1, 1)
        assert found.difference.diff == -1.0
    # without state tracking the agent neither rules Alien out nor keeps it off the slate: now it violates too
    outcomes, report = report_on(hated_alien(world), {"retriever": "repeat", "state_tracking": False})
    assert outcomes[0].turn.slate[0] == "alien"
    assert report.questionnaire.slate.harpo.count == report.questionnaire.top10.harpo.count == 1
    assert report.questionnaire.slate.difference.diff == 0.0


def test_a_dataset_without_questionnaire_gets_parts_2_to_4_and_says_why_not_part_1(world):
    dataset = world.dataset()
    with pytest.raises(DataError, match="no questionnaire answers"):
        ar.questionnaire_violations(dataset, "test", [], 5)
    outcomes, report = report_on(dataset, {"retriever": "itemknn"})
    q = report.questionnaire
    assert not q.available and "no questionnaire answers" in q.reason and q.slate is None
    assert report.vtos.turns == len(outcomes) == len(world.test.samples)
    assert report.diversity[0].slates > 0 and report.grounding.replies > 0
    assert "Not available: dataset 'test-world' has no questionnaire" in ar.markdown(report)


def test_slate_diversity_by_hand(world):
    values = ar._ItemValues(DomainAdapter.of(world.catalog, world.catalog.name))
    assert values.attributes == ("genre", "director", "star")
    same = ar.slate_diversity("x", [("horror0", "horror1"), ()], values)
    assert (same.slates, same.empty_slates, same.distinct_items) == (1, 1, 2)
    assert same.distinct_share == {"genre": 0.5, "director": None, "star": None}
    assert same.jaccard_distance == 0.0 and same.coverage == 2 / len(world.catalog)
    # Alien and Aliens: genres horror, sci-fi | action, sci-fi; both star Sigourney Weaver; two directors
    sequel = ar.slate_diversity("x", [("alien", "aliens")], values)
    assert sequel.distinct_share == {"genre": 0.75, "director": 1.0, "star": 0.75}
    assert sequel.jaccard_distance == pytest.approx(1 - 2 / 8)


# ------------------------------------------------------------------------------------- command line
def test_cli_writes_both_files(redial, data_dir, mirror, tmp_path, capsys):
    out = tmp_path / "report"
    rc = ar.main(["--dataset", "redial", "--split", "valid", "--retriever", "itemknn", "--limit", "20",
                  "--seed", "3", "--set", "slate=3", "--out", str(out), "--quiet", "--data-dir", str(data_dir),
                  "--mirror", str(mirror)])
    assert rc == 0
    written = json.loads((out / "agent_report.json").read_text())
    assert written["run"]["subset"] == {"limit": 20, "seed": 3, "of": len(redial.split("valid").samples)}
    assert written["questionnaire"]["slate_size"] == 3 and written["vtos"]["turns"] == 20
    text = (out / "agent_report.md").read_text()
    for heading in ("## 1. Questionnaire violations", "## 2. Per VTO", "## 3. Slate diversity",
                    "## 4. Reply grounding"):
        assert heading in text
    assert text in capsys.readouterr().out
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temporary file


def test_cli_refuses_bad_options_in_one_line(tmp_path, capsys):
    for argv, fragment in ((["--set", "slat=3"], "'slat'"), (["--set", "slate=0"], "'slate'"),
                           (["--retriever", "rar"], "first-stage"), (["--limit", "0"], "--limit"),
                           (["--retriever", "itemknn", "--checkpoint", str(tmp_path)], "does not load")):
        assert ar.main([*argv, "--out", str(tmp_path / "never")]) == 2
        err = capsys.readouterr().err
        assert fragment in err and len(err.strip().splitlines()) <= 2 and "Traceback" not in err
    assert not (tmp_path / "never").exists()


def test_help_explains_every_option_and_the_protocol():
    text = ar.parser().format_help()
    for option in ("--dataset", "--split", "--checkpoint", "--retriever", "--limit", "--seed", "--set",
                   "--batch-size", "--out", "--quiet", "--data-dir", "--mirror"):
        assert option in text
    assert "standard" in text and "seeded subset" in text
