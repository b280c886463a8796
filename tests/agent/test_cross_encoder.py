"""The cross-encoder (fine-tuned MiniLM over dialogue and item text) and the learned ranker's last stage."""

from __future__ import annotations

import numpy as np
import pytest

from convrec.agent.quality.cross import CrossTrainingOptions, train
from convrec.agent.quality.relevance import blend_cross, top_candidates
from convrec.errors import ConfigError
from convrec.retrieval.base import build_recommender
from convrec.text.cross_encoder import CrossEncoder, CrossEncoderConfig
from worlds import world

pytest.importorskip("lightgbm")

# popularity's top items span every genre, so its negatives can be told from a target by the genre the seeker
# names ("Any other horror movies?"); item-kNN's are the target's own cluster, which no text separates
TINY = {"negatives_from": "popularity", "negatives": 3, "pool": 8, "turns_per_step": 4, "valid_turns": 30,
        "save_every": 2, "encoder": {"max_length": 64, "item_tokens": 24}}


@pytest.fixture(scope="module")
def shared_world():
    return world()


@pytest.fixture(scope="module")
def trained_run(shared_world, tmp_path_factory):
    out = tmp_path_factory.mktemp("cross")
    options = CrossTrainingOptions(**TINY, turns=48, epochs=3, learning_rate=3e-4)
    report = train(shared_world.dataset(), out, options)
    return out, report


def test_a_pair_keeps_the_latest_dialogue_and_the_start_of_the_item():
    model = CrossEncoder(CrossEncoderConfig(max_length=32, item_tokens=8))
    dialogue = "seeker: " + " ".join(f"word{n}" for n in range(40)) + " finally zebra"
    item = "giraffe " + " ".join(f"fact{n}" for n in range(40))
    batch = model.encode_pairs([dialogue], [item])
    assert batch["input_ids"].shape[1] <= 32
    text = model.tokenizer.decode(batch["input_ids"][0])
    assert "zebra" in text and "word0 " not in text  # the dialogue is cut from the left
    assert "giraffe" in text and "fact39" not in text  # the item from the right
    types = batch["token_type_ids"][0].tolist()
    assert types[0] == 0 and types[-1] == 1 and types == sorted(types)


def test_fine_tuning_learns_to_read_the_genre_the_seeker_asks_for(trained_run):
    _, report = trained_run
    assert report["loss_window"] == 9 and report["loss_last"] < report["loss_first"] - 0.2
    ours, theirs = report["valid_cross_encoder"], report["valid_retriever"]
    # popularity does not read the dialogue: it ties the cluster's items, and the target sits in the middle of its
    # ties; the model reads the genre and ranks the target above chance (MRR 0.174 for a random order of 21)
    chance = float(np.mean(1.0 / np.arange(1, 22)))
    assert ours["mrr"] > chance + 0.05 and ours["mrr"] > theirs["mrr"] + 0.1


def test_training_resumes_where_a_killed_run_stopped(shared_world, tmp_path, monkeypatch):
    options = CrossTrainingOptions(**TINY, turns=12, epochs=1, learning_rate=1e-4)
    dataset = shared_world.dataset()
    train(dataset, tmp_path / "whole", options)
    calls = {"n": 0}
    original = CrossEncoder.forward

    def interrupt_at_the_third_step(self, batch):  # a fake failure: the process is killed mid-run
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(self, batch)

    monkeypatch.setattr(CrossEncoder, "forward", interrupt_at_the_third_step)
    with pytest.raises(KeyboardInterrupt):
        train(dataset, tmp_path / "killed", options)
    assert (tmp_path / "killed" / "train_state.pt").is_file()
    assert not (tmp_path / "killed" / "cross_encoder.pt").exists()
    monkeypatch.setattr(CrossEncoder, "forward", original)
    resumed = train(dataset, tmp_path / "killed", options)
    whole, _ = CrossEncoder.load(tmp_path / "whole")
    again, _ = CrossEncoder.load(tmp_path / "killed")
    texts = [s.context_text() for s in shared_world.test.samples[:5]]
    items = [CrossEncoder.item_text(shared_world.catalog.items[n]) for n in range(5)]
    np.testing.assert_allclose(again.score(texts, items), whole.score(texts, items), rtol=1e-5, atol=1e-5)
    assert resumed["steps"] == 3 and not (tmp_path / "killed" / "train_state.pt").exists()


def test_loading_a_folder_without_a_model_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no trained cross-encoder"):
        CrossEncoder.load(tmp_path)


def test_blend_reorders_only_the_top_and_keeps_it_on_top():
    predicted = np.asarray([5.0, 4.0, 3.0, 2.0, 1.0])
    top = top_candidates(predicted, 3)
    cross = np.asarray([0.0, 0.0, 10.0])  # the cross-encoder prefers the model's third
    np.testing.assert_array_equal(blend_cross(predicted, top, cross, 0.0), predicted)
    blended = blend_cross(predicted, top, cross, 4.0)
    assert np.argmax(blended) == 2
    assert blended[top].min() > blended[3] > blended[4]  # the rest keep their place below


def test_learned_ranker_chooses_the_weight_on_validation_and_reloads_it(shared_world, trained_run, tmp_path):
    w = shared_world
    run, _ = trained_run
    options = {"trees": 30, "leaves": 7, "min_leaf": 5, "per_retriever": 10, "folds": 3,
               "retrievers": {"popularity": {}, "itemknn": {}}, "cross_encoder": str(run), "cross_encoder_top": 10,
               "cross_encoder_weights": [0.0, 1.0, 100.0], "run_dir": str(tmp_path / "ranker")}
    ranker = build_recommender("learned-ranker", w.catalog, options)
    ranker.fit(w.train, w.valid)
    report = ranker.summary["cross_encoder"]
    assert set(report["by_weight"]) == {"0.0", "1.0", "100.0"} and report["turns_scored"] > 0
    best = max(v["recall@10"]["mean"] for v in report["by_weight"].values())
    assert report["by_weight"][str(report["chosen_weight"])]["recall@10"]["mean"] == best
    assert report["by_weight"]["0.0"]["recall@10"]["difference"] == 0.0
    loaded = build_recommender("learned-ranker", w.catalog, {"checkpoint": str(tmp_path / "ranker")})
    loaded.fit(w.train, w.valid)
    assert loaded.cross_weight_ == ranker.cross_weight_ and loaded.config.cross_encoder == str(run)
    views = [s.view() for s in w.test.samples[:6]]
    np.testing.assert_allclose(loaded.score(views), ranker.score(views), rtol=1e-5)
    with pytest.raises(ConfigError, match="no trained cross-encoder"):
        build_recommender("learned-ranker", w.catalog, {**options, "cross_encoder": str(tmp_path)}).fit(w.train, w.valid)
