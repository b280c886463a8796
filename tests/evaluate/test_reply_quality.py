"""Reply quality (``convrec.evaluate.reply_quality``): the metrics on hand-computed cases, the samples drawn from
real ReDial recommender turns, and the command end to end with the real SmolLM2 on a few of them (its rerun
answered by the response cache)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from convrec.data.dataset import CRSDataset
from convrec.evaluate import reply_quality as rq
from convrec.resources import Resources

# ------------------------------------------------------------------------------------------------ metrics

def test_distinct_counts_distinct_over_all_ngrams_and_per_reply():
    score = rq.distinct(["a b a b", "a b c"], 2)
    # bigrams: (a b) (b a) (a b) | (a b) (b c): 3 distinct of 5
    assert (score.distinct, score.total, score.replies) == (3, 5, 2)
    assert score.ratio == pytest.approx(0.6) and score.per_reply == pytest.approx(1.5)
    assert rq.distinct(["How about Alien (1979)?"], 4).total == len(rq.tokens("How about Alien (1979)?")) - 3
    assert rq.tokens("Don't miss It (2017)!") == ["don't", "miss", "it", "(", "2017", ")", "!"]
    assert rq.distinct(["one"], 2).ratio == 0.0


def test_corpus_bleu_and_rouge_l_on_hand_computed_cases():
    # unigram precision 5/6, bigram precision 3/5, equal lengths: BLEU-2 = sqrt(1/2)
    assert rq.corpus_bleu(["the cat sat on the mat"], ["the cat sat on a mat"], 2) == pytest.approx(0.5 ** 0.5,
                                                                                                  abs=1e-4)
    assert rq.corpus_bleu(["the very same five words"], ["the very same five words"], 4) == pytest.approx(1.0)
    assert rq.corpus_bleu(["nothing shared"], ["entirely different text"], 2) == 0.0
    # LCS "a c d": precision 3/4, recall 3/4
    assert rq.rouge_l(["a b c d", "x"], ["a c d e", "y"]) == pytest.approx([0.75, 0.0])


def test_the_paired_bootstrap_resamples_dialogues():
    baseline = np.asarray([0.1, 0.2, 0.3, 0.4])
    assert rq.paired_bootstrap(baseline + 0.05, baseline, ["d1", "d1", "d2", "d3"]) == pytest.approx((0.05,) * 3)
    diff, low, high = rq.paired_bootstrap(np.asarray([0.3, 0.0, 0.2, 0.1]), np.zeros(4), ["a", "b", "c", "d"])
    assert diff == pytest.approx(0.15) and 0.0 <= low < diff < high <= 0.3
    # one dialogue holds every sample: every resample is that dialogue
    assert rq.paired_bootstrap(np.asarray([0.3, 0.0]), np.zeros(2), ["a", "a"])[1:] == pytest.approx((0.15, 0.15))
    with pytest.raises(ValueError, match="cluster labels"):
        rq.paired_bootstrap(np.zeros(3), np.zeros(3), ["a"])


def test_refusal_reasons_are_grouped():
    assert rq.refusal_kind("repeats its prompt: the label 'Seeker:'") == "repeats its prompt"
    assert rq.refusal_kind("does not name ['Fast 8'] exactly") == "drops or changes a title"
    assert rq.refusal_kind("states the genre 'comedy', which Alien (1979) lack(s)") == "ungrounded value"
    assert rq.refusal_kind("names Tom Hanks, whom the catalogue does not list for Alien (1979)") == \
        "ungrounded person"
    assert rq.refusal_kind("names another title: Heat (1995)") == "names another title"


# ------------------------------------------------------------------------------------------------ samples

def test_samples_are_real_recommender_turns_one_per_turn_seeded(redial: CRSDataset):
    chosen = rq.reply_samples(redial, "valid", 40, seed=0)
    assert len(chosen) == 40 and chosen == rq.reply_samples(redial, "valid", 40, seed=0)
    assert chosen != rq.reply_samples(redial, "valid", 40, seed=1)
    assert len({(s.dialogue_id, s.turn_index) for s in chosen}) == 40
    every = rq.reply_samples(redial, "valid", None, 0)
    turns = {(s.dialogue_id, s.turn_index): s.dialogue.turns[s.turn_index].text
             for s in redial.split("valid").selection_samples}
    assert len(every) == len(turns) - sum(1 for text in turns.values() if re.search(r"@\d+", text))
    for sample in chosen:
        turn = sample.dialogue.turns[sample.turn_index]
        assert turn.role == "recommender" and sample.target in turn.items
        assert rq.reference_text(sample) == turn.text.strip()
        # the recommended items are written as display titles, as every system writes them
        assert not re.search(r"@\d+", turn.text)
    # every reference names a recommended item by its title (half of the latest conversations, the temporal
    # validation split, write it without the year, as the T3 fragments do)
    titled = [s for s in every if any(redial.catalog.get(i).title.lower() in rq.reference_text(s).lower()
                                      for i in s.dialogue.turns[s.turn_index].items)]
    assert len(titled) > 0.95 * len(every)


# ----------------------------------------------------------------------------------------- the command

def test_the_command_compares_the_four_systems_and_a_rerun_comes_from_the_cache(redial, data_dir, mirror,
                                                                                 tmp_path: Path):
    out = tmp_path / "out"
    argv = ["--dataset", "redial", "--split", "valid", "--limit", "3", "--seed", "0", "--llm", "smollm2-135m",
            "--threads", "1", "--out", str(out), "--quiet", "--data-dir", str(data_dir), "--mirror", str(mirror)]
    with Resources.from_env(tmp_path / "cache", data_dir) as resources:
        first = rq.run(argv, resources)
    assert (out / "reply_quality.md").read_text().startswith("# Reply quality: redial valid, 3 recommender turns")
    assert json.loads((out / "reply_quality.json").read_text()) == json.loads(json.dumps(first))
    rows = {row["system"]: row for row in first["systems"]}
    assert list(rows) == [*rq.SYSTEMS, rq.REFERENCE]
    samples = rq.reply_samples(redial, "valid", 3, 0)
    assert [r["reference"] for r in first["samples"]] == [rq.reference_text(s) for s in samples]
    for system in ("harpo-llm", "rar-llm"):
        row = rows[system]
        assert row["llm_asked"] == 3 and row["llm_kept"] + row["llm_refused"] == 3
        assert row["llm_calls"] == 3 and row["cache_hits"] == 0 and sum(row["refusals"].values()) == row["llm_refused"]
        assert row["prompt_tokens"] > 3 * 50 and row["completion_tokens"] > 0 and row["seconds_mean_uncached"] > 0
    for sample in first["samples"]:
        for llm_system, template in (("harpo-llm", "harpo-template"), ("rar-llm", "rar-template")):
            answer, plain = sample[llm_system], sample[template]
            assert answer["items"] == plain["items"]  # one retriever, the same items: only the wording differs
            if answer["source"] == "template":
                assert answer["text"] == plain["text"] and answer["refusal"]
    assert {p["system"] for p in first["paired_rouge_l"]} == {"harpo-llm", "rar-llm", "harpo-template"}
    assert 0.0 < rows["reference"]["distinct_2"] <= 1.0 and "rouge_l" not in rows["reference"]
    assert all(0.0 <= rows[s]["rouge_l"] <= 1.0 and 0.0 <= rows[s]["bleu_4"] <= rows[s]["bleu_2"] for s in rq.SYSTEMS)

    with Resources.from_env(tmp_path / "cache", data_dir) as resources:
        again = rq.run(argv, resources)
    for system in ("harpo-llm", "rar-llm"):
        row = {row["system"]: row for row in again["systems"]}[system]
        assert row["cache_hits"] == 3 and row["prompt_tokens"] == 0 and row["seconds_mean_uncached"] is None
    assert [s["harpo-llm"]["text"] for s in again["samples"]] == [s["harpo-llm"]["text"] for s in first["samples"]]


def test_bad_arguments_are_one_line_errors(capsys, tmp_path: Path, monkeypatch, data_dir, mirror):
    monkeypatch.setenv("CONVREC_CACHE_DIR", str(tmp_path / "cache"))
    base = ["--split", "valid", "--out", str(tmp_path / "out"), "--data-dir", str(data_dir), "--mirror", str(mirror)]
    assert rq.main([*base, "--llm", "smollm2-135m", "--limit", "0"]) == 2
    assert rq.main([*base, "--llm", "no-such-model", "--limit", "2"]) == 2
    err = capsys.readouterr().err
    assert "--limit must be at least 1" in err and "no-such-model" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
