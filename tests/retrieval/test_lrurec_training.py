"""LRURec as a recommender on the shared test world (tests/worlds.py, 40 items): BOS handling, training with
early stopping, checkpoints, resume, dialogue text."""

import json

import numpy as np
import pytest
import torch

from convrec.catalog.items import Catalog, Item
from convrec.data.dataset import Split
from convrec.data.model import Dialogue, Turn
from convrec.errors import CheckpointError
from convrec.evaluate.metrics import recall_and_ndcg_at
from convrec.retrieval import build_recommender
from convrec.retrieval.lrurec.recommender import link_by_imdb, relabel_dialogues
from convrec.retrieval.lrurec.sequences import TokenMap, dialogue_examples, left_pad
from worlds import BLOCKBUSTER, BLOCKBUSTER_REQUEST, FAST_LRUREC, GENRES, cluster_ids, open_request

FAST = {"hidden": 16, "n_blocks": 1, "dropout": 0.0, "text_init": False,
        "train": {"epochs": 30, "batch_size": 8, "lr": 0.01, "patience": 30, "threads": 1}}

# Seekers who name no movie, only what they feel like; each is answered with the first movie of the genre.
GENRE_REQUESTS = {"horror": "Something scary with ghosts and demons, please.",
                  "animation": "A funny cartoon I can watch with my kids?",
                  "romance": "I would like a tender love story tonight."}
REQUEST_ANSWERS = [cluster_ids(genre)[0] for genre in GENRES] + [BLOCKBUSTER]


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def text_cache(tmp_path_factory) -> str:
    """One embedding cache for the module: the world's dialogue texts are embedded once."""
    return str(tmp_path_factory.mktemp("text-cache"))


def with_requests(test_world) -> tuple[Split, Split, Split]:
    """The shared world's train and valid splits plus genre requests (8 per genre in train), and the requests
    to score: one per genre and one for the blockbuster. From the items alone (BOS only) every request looks
    like the blockbuster's, by far the most frequent first item: only the text tells them apart."""
    def requests(split: str, copies: int) -> list[Dialogue]:
        return [open_request(f"{split}-{genre}-request{n}", split, text, test_world.item(cluster_ids(genre)[0]))
                for genre, text in GENRE_REQUESTS.items() for n in range(copies)]

    asked = Split("valid", test_world.catalog, [*requests("valid", 1), open_request(
        "valid-pop", "valid", BLOCKBUSTER_REQUEST, test_world.item(BLOCKBUSTER))])
    train = Split("train", test_world.catalog, [*test_world.train.dialogues, *requests("train", 8)])
    valid = Split("valid", test_world.catalog, [*test_world.valid.dialogues, *asked.dialogues])
    return train, valid, asked


def first_choices(recommender, samples) -> list[str]:
    return [recommender.catalog[int(i)].item_id for i in recommender.score(samples).argmax(axis=1)]


def test_examples_start_with_bos_and_keep_target_turns(test_world):
    tokens = TokenMap(len(test_world.catalog))
    liked, blockbuster = dialogue_examples([test_world.train.dialogues[0], test_world.train.dialogues[-1]],
                                           test_world.catalog, tokens, max_len=50)
    assert liked.dialogue.dialogue_id == "t-horror0-horror1" and tokens.bos == 41
    assert liked.tokens.tolist() == [41, 1, 2]  # horror0, horror1 -> catalogue index + 1
    assert liked.target_turns.tolist() == [0, 1]  # the seeker's movie is a target too, predicted from BOS
    assert blockbuster.tokens.tolist() == [41, 37] and blockbuster.target_turns.tolist() == [1]  # heist: 36 + 1
    short = dialogue_examples(test_world.train.dialogues[:1], test_world.catalog, tokens, max_len=1)[0]
    assert short.tokens.tolist() == [1, 2] and short.target_turns.tolist() == [1]  # the window starts at an item
    no_items = Dialogue("x", "train", [Turn("seeker", "hello"), Turn("recommender", "what do you like?")])
    assert dialogue_examples([no_items], test_world.catalog, tokens, max_len=50) == []  # nothing to predict


def test_left_pad():
    assert left_pad([[1, 2], [3]]).tolist() == [[1, 2], [0, 3]]


def test_lrurec_learns_the_clusters_of_the_shared_world(test_world, tmp_path):
    """40 items, 11 equally likely targets per context: a model that learned the clusters scores near 10/11,
    popularity scores 1/4, and 1.0 is out of reach by construction (tests/worlds.py)."""
    options = {**FAST, "run_dir": str(tmp_path / "run"),
               "train": {**FAST["train"], "epochs": 10, "batch_size": 32, "patience": 10}}
    rec = build_recommender("lrurec", test_world.catalog, options)
    rec.fit(test_world.train, test_world.valid)
    # from BOS alone (no movie named yet) the first item is the blockbuster: 40 first mentions, 11 at most
    # for any other movie
    nothing_named = Split("test", test_world.catalog, [open_request("x", "test", "hello", test_world.item("whales"))])
    assert first_choices(rec, nothing_named.samples) == [BLOCKBUSTER]
    run = tmp_path / "run"
    for name in ("config.json", "model.safetensors", "state.pt", "history.json", "curve.png"):
        assert (run / name).exists(), name
    assert json.loads((run / "config.json").read_text())["catalog_hash"] == test_world.catalog.content_hash()
    samples = test_world.test.selection_samples
    targets = np.asarray(test_world.catalog.indices(s.target for s in samples))
    test_recall = float(recall_and_ndcg_at(rec.score(samples), targets)[0].mean())
    popularity = build_recommender("popularity", test_world.catalog)
    popularity.fit(test_world.train)
    popularity_recall = float(recall_and_ndcg_at(popularity.score(samples), targets)[0].mean())
    assert popularity_recall == pytest.approx(0.25)
    assert 0.7 < test_recall <= 10 / 11 + 1e-9
    # the epoch kept is the best on validation, and what the run records is what the kept weights score
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    best = max(h["valid_recall_at_10"] for h in history if h["valid_recall_at_10"] is not None)
    assert config["best_valid_recall@10"] == pytest.approx(best, abs=1e-4)
    assert 0.7 < best <= 10 / 11 + 1e-4
    valid = test_world.valid.selection_samples
    valid_targets = np.asarray(test_world.catalog.indices(s.target for s in valid))
    kept = float(recall_and_ndcg_at(rec.score(valid), valid_targets)[0].mean())
    assert kept == pytest.approx(best, abs=1e-4)


def test_lrurec_text_uses_the_dialogue_to_pick_the_first_item(test_world, text_cache):
    train, valid, asked = with_requests(test_world)
    rec = build_recommender("lrurec-text", test_world.catalog, {**FAST_LRUREC, "text_match": False,
                                                                "cache_dir": text_cache})
    rec.fit(train, valid)
    assert first_choices(rec, asked.samples) == REQUEST_ANSWERS
    items_only = build_recommender("lrurec", test_world.catalog, FAST_LRUREC)
    items_only.fit(train, valid)
    assert first_choices(items_only, asked.samples) == [BLOCKBUSTER] * 4  # what the items alone say


def test_checkpoint_loads_identically_and_rejects_other_catalogue(test_world, tmp_path):
    train, valid = test_world.train, test_world.valid
    options = {**FAST_LRUREC, "train": {**FAST_LRUREC["train"], "epochs": 3}}
    trained = build_recommender("lrurec", test_world.catalog, {**options, "run_dir": str(tmp_path / "run")})
    trained.fit(train, valid)
    loaded = build_recommender("lrurec", test_world.catalog, {**options, "checkpoint": str(tmp_path / "run")})
    loaded.fit(train, valid)
    np.testing.assert_allclose(loaded.score(valid.samples), trained.score(valid.samples), rtol=1e-5, atol=1e-6)
    other = Catalog([Item(f"other{i}", f"Other {i}") for i in range(len(test_world.catalog))])
    with pytest.raises(CheckpointError, match="another catalogue"):
        build_recommender("lrurec", other, {**options, "checkpoint": str(tmp_path / "run")})


def test_interrupted_training_resumes_from_the_last_epoch(test_world, tmp_path):
    train, valid = test_world.train, test_world.valid
    options = {**FAST_LRUREC, "run_dir": str(tmp_path / "run"),
               "train": {**FAST_LRUREC["train"], "epochs": 4, "patience": 10}}
    first = build_recommender("lrurec", test_world.catalog, {**options, "train": {**options["train"], "epochs": 2}})
    first.fit(train, valid)  # stands for a run killed after epoch 2: its state.pt is what survives
    resumed = build_recommender("lrurec", test_world.catalog, options)
    resumed.fit(train, valid)
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]  # epochs 1-2 kept, 3-4 added, none repeated
    uninterrupted = build_recommender("lrurec", test_world.catalog, {**options, "run_dir": str(tmp_path / "run2")})
    uninterrupted.fit(train, valid)
    history2 = json.loads((tmp_path / "run2" / "history.json").read_text())
    # same seed, same data: resuming reproduces the uninterrupted losses
    assert [round(h["loss"], 4) for h in history] == [round(h["loss"], 4) for h in history2]
    # a finished run is not trained further by running it again
    build_recommender("lrurec", test_world.catalog, options).fit(train, valid)
    assert len(json.loads((tmp_path / "run" / "history.json").read_text())) == 4
    # resuming with other options is refused, not silently mixed
    with pytest.raises(ValueError, match="other options"):
        build_recommender("lrurec", test_world.catalog, {**options, "hidden": 32}).fit(train, valid)


def test_pretraining_dialogues_are_linked_by_imdb_id():
    source = Catalog([Item("1", "A", metadata={"imdb_id": "tt1"}), Item("2", "B", metadata={"imdb_id": "tt2"}),
                      Item("3", "C")])
    target = Catalog([Item("x", "A", metadata={"imdb_id": "tt1"}), Item("y", "B", metadata={"imdb_id": "tt2"})])
    mapping = link_by_imdb(source, target)
    assert mapping == {"1": "x", "2": "y"}
    users = [Dialogue("u", "train", [Turn("unknown", "", (i,)) for i in ("1", "3", "2")])]
    [relabelled] = relabel_dialogues(users, mapping)
    assert relabelled.items_in_order() == ["x", "y"]


def test_hashed_bag_of_words_is_stable_and_normalised():
    from convrec.retrieval.lrurec.recommender import hashed_bag_of_words

    vectors = hashed_bag_of_words(["Will Ferrell comedies, Will Ferrell!", "", "will ferrell comedies"], 64)
    assert vectors.shape == (3, 64)
    np.testing.assert_allclose(np.linalg.norm(vectors[0]), 1.0, rtol=1e-6)
    assert not vectors[1].any()
    # same words, different counts: same buckets, different weights
    assert set(np.flatnonzero(vectors[0])) == set(np.flatnonzero(vectors[2]))
    assert not np.allclose(vectors[0], vectors[2])
    np.testing.assert_array_equal(hashed_bag_of_words(["will ferrell"], 64), hashed_bag_of_words(["Will Ferrell"], 64))


def test_lrurec_text_with_bag_of_words_trains(test_world, text_cache):
    train, valid, asked = with_requests(test_world)
    rec = build_recommender("lrurec-text", test_world.catalog, {**FAST_LRUREC, "bow_dim": 32, "fusion": "mlp",
                                                                "text_match": False, "cache_dir": text_cache})
    rec.fit(train, valid)
    assert first_choices(rec, asked.samples) == REQUEST_ANSWERS


def test_text_match_needs_text_initialised_items(test_world, text_cache):
    train, valid, asked = with_requests(test_world)
    with pytest.raises(ValueError, match="text_match"):
        build_recommender("lrurec-text", test_world.catalog, {**FAST_LRUREC, "text_match": True,
                                                              "cache_dir": text_cache}).fit(train, valid)
    rec = build_recommender("lrurec-text", test_world.catalog, {**FAST_LRUREC, "text_init": True, "text_match": True,
                                                                "cache_dir": text_cache})
    rec.fit(train, valid)
    assert rec.network.match_scale is not None
    assert first_choices(rec, asked.samples) == REQUEST_ANSWERS


def test_turn_sources_point_before_the_first_item_of_each_turn():
    from convrec.retrieval.lrurec.sequences import SequenceExample

    example = SequenceExample(np.array([9, 1, 2, 3, 4, 5]), np.array([1, 1, 3, 4, 4]), Dialogue("d", "train", []))
    # targets 0-1 share turn 1: both from position 0 (BOS); target 2 from position 2 (after both);
    # targets 3-4 share turn 4: both from position 3
    assert example.turn_sources.tolist() == [0, 0, 2, 3, 3]


def test_turn_aligned_batches_and_mentioned_mask():
    from convrec.retrieval.lrurec.network import mentioned_so_far
    from convrec.retrieval.lrurec.training import make_batch

    catalog = Catalog([Item(c, f"Movie {c}") for c in "abcd"])
    tokens = TokenMap(len(catalog))
    dialogue = Dialogue("d", "train", [Turn("seeker", "hi", ("a",)), Turn("recommender", "b or c?", ("b", "c")),
                                       Turn("recommender", "a again", ("a",))])
    short = Dialogue("s", "train", [Turn("seeker", "", ("d",)), Turn("recommender", "", ("a",))])
    examples = dialogue_examples([dialogue, short], catalog, tokens, max_len=50)
    inputs, targets, _, sources = make_batch(examples, None, None, turn_aligned=True)
    assert inputs.tolist() == [[5, 1, 2, 3], [0, 0, 5, 4]] and targets.tolist() == [[1, 2, 3, 1], [0, 0, 4, 1]]
    assert sources.tolist() == [[0, 1, 1, 3], [0, 1, 2, 3]]  # "c" is predicted from the state before "b"
    _, _, _, plain = make_batch(examples, None, None, turn_aligned=False)
    assert plain.tolist() == [[0, 1, 2, 3], [0, 1, 2, 3]]
    mentioned = mentioned_so_far(inputs, sources, tokens.model_items + 1)
    assert mentioned.shape == (2, 4, 6)
    # row 0, column 2 (target "c", from position 1): BOS and "a" are mentioned, "b" not yet
    assert mentioned[0, 2].tolist() == [0, 1, 0, 0, 0, 1]
    assert mentioned[0, 3].tolist() == [0, 1, 1, 1, 0, 1]
    assert mentioned[1, 3].tolist() == [1, 0, 0, 0, 1, 1]  # left padding shows up only in the padding column


def test_copy_bonus_learns_to_return_to_a_mentioned_item():
    """The recommender always names the movie the seeker just named: the bonus must grow, and that movie come
    first even for movies never seen in training."""
    catalog = Catalog([Item(c, f"Movie {c}") for c in "abcdefgh"])

    def dialogue(did, movie):
        return Dialogue(did, "train", [Turn("seeker", "", (movie,)), Turn("recommender", "", (movie,))])

    train = Split("train", catalog, [dialogue(f"t{i}", "abcdef"[i % 6]) for i in range(24)])
    valid = Split("valid", catalog, [dialogue("v1", "g"), dialogue("v2", "h")])
    rec = build_recommender("lrurec", catalog, {**FAST, "copy_bonus": True,
                                                "train": {**FAST["train"], "epochs": 10, "turn_aligned": True}})
    rec.fit(train, valid)
    assert float(rec.network.copy_scale.detach()) > 0.3
    scores = rec.score(valid.samples)
    assert [catalog[int(i)].item_id for i in scores.argmax(axis=1)] == ["g", "h"]
    # serving adds exactly the learned scale to the mentioned items and nothing elsewhere
    scale = float(rec.network.copy_scale.detach())
    rec.network.copy_scale.data.fill_(0.0)
    difference = scores - rec.score(valid.samples)
    expected = np.zeros_like(difference)
    expected[0, 6] = expected[1, 7] = scale  # g and h
    np.testing.assert_allclose(difference, expected, atol=1e-5)


def test_seeker_targets_can_be_left_out_of_the_loss():
    from convrec.retrieval.lrurec.training import make_batch

    catalog = Catalog([Item(c, f"Movie {c}") for c in "abc"])
    dialogue = Dialogue("d", "train", [Turn("seeker", "", ("a",)), Turn("recommender", "", ("b",)),
                                       Turn("seeker", "", ("c",))])
    examples = dialogue_examples([dialogue], catalog, TokenMap(len(catalog)), max_len=50)
    _, targets, _, _ = make_batch(examples, None, None, seeker_targets=False)
    assert targets.tolist() == [[0, 2, 0]]  # "b" stays a target; "a" and "c" (seeker) are masked
    _, targets, _, _ = make_batch(examples, None, None)
    assert targets.tolist() == [[1, 2, 3]]


@pytest.mark.slow
def test_pretraining_datasets_option_links_movielens_to_inspired(inspired, mirror, data_dir, monkeypatch):
    """The option `convrec results` uses: MovieLens train sequences, linked by IMDb id, pre-train the model."""
    monkeypatch.setenv("CONVREC_DATA_MIRROR", str(mirror))
    monkeypatch.setenv("CONVREC_DATA_DIR", str(data_dir))
    options = {**FAST, "pretrain_datasets": ["movielens"],
               "train": {**FAST["train"], "epochs": 1, "pretrain_epochs": 1, "batch_size": 64}}
    rec = build_recommender("lrurec", inspired.catalog, options)
    linked = rec._load_pretraining()
    assert len(linked) > 300  # most of MovieLens's 610 users rated some INSPIRED movie
    assert all(item in inspired.catalog.index_of for d in linked for item in d.items_in_order())
    train = inspired.split("train")
    rec.fit(Split("train", inspired.catalog, train.dialogues[:50]), None)
    assert rec.summary["pretrain_examples"] == len([d for d in linked if len(d.items_in_order()) >= 2])
    assert rec.summary["epochs_run"] == 2
