"""The two-stage recommender ``rar`` on the tiny world: a registry retriever + the real SmolLM2."""

from __future__ import annotations

import numpy as np
import pytest

from convrec.catalog.items import Catalog, Item
from convrec.data.dataset import CRSDataset, Split
from convrec.data.model import Dialogue, Turn
from convrec.evaluate.harness import evaluate_recommender
from convrec.evaluate.protocol import Protocol
from convrec.evaluate.runner import evaluate
from convrec.llm import LLMClient, ResponseCache
from convrec.llm.types import ChatRequest, ChatResponse
from convrec.rerank.pipeline import RAR, RARConfig, place_above
from convrec.retrieval import RECOMMENDERS, build_recommender
from convrec.retrieval.base import item_counts, top_indices

POPULAR_TOP4 = ["toystory", "conjuring", "insidious", "nemo"]  # training mentions 5, 3, 2, 2 (ties: catalogue order)


def check_candidates_on_top(scores: np.ndarray, catalog, k: int) -> list[list[str]]:
    """Every row: k candidates strictly above every other item; returns each row's top k ids."""
    tops = []
    for row in scores:
        order = np.argsort(-row, kind="stable")
        top, rest = order[:k], order[k:]
        assert row[top].min() > row[rest].max()
        assert len(np.unique(row[top])) == k  # a strict order among the candidates
        tops.append([catalog.ids[i] for i in top])
    return tops


def test_rar_is_registered_with_its_options():
    assert "rar" in RECOMMENDERS
    fields = RECOMMENDERS["rar"].config_class.model_fields
    assert {"retriever", "k", "strategy", "fusion_weight", "llm", "max_samples", "seed"} <= set(fields)
    with pytest.raises(ValueError, match="option 'strategy'"):
        build_recommender("rar", _catalog_of_one(), {"strategy": "cosmic"})


def _catalog_of_one():
    from convrec.catalog.items import Catalog, Item

    return Catalog([Item("x", "X")])


def test_place_above_lifts_candidates_in_order_whatever_the_scale():
    row = np.array([1e9, -np.inf, 5.0, 2e9, 7.0], dtype=np.float32)
    place_above(row, [2, 4, 1])
    assert row[2] > row[4] > row[1] > row[3] > row[0]
    empty = np.full(3, -np.inf, dtype=np.float32)
    place_above(empty, [1])
    assert np.isfinite(empty[1]) and empty[1] > empty[0]


def test_a_failing_llm_gives_the_retriever_order_and_counts_fallbacks(world, splits, failing_llm):
    # Every call fails: past the default transport-failure threshold the run would stop, so it is lifted
    # here to see what a sample does when its LLM calls fail.
    train, valid, test = splits
    config = RARConfig(retriever="popularity", k=4, fusion_weight=0.7, max_transport_failure_share=1.0)
    rar = RAR(world.catalog, config, llm=failing_llm)
    rar.fit(train, valid)
    scores = rar.score(test.samples)
    assert check_candidates_on_top(scores, world.catalog, 4) == [POPULAR_TOP4, POPULAR_TOP4]
    run = rar.describe()["run"]
    assert run["samples"] == 2 and run["fallbacks"] == 2 and run["fallback_share"] == 1.0
    assert run["llm_failed_calls"] == 8 and run["llm_calls"] == 0
    assert list(run["fallback_reasons"]) == ["every LLM call failed"]


@pytest.mark.slow
def test_rar_pointwise_end_to_end_with_smollm2(world, splits, smollm2, tmp_path):
    train, valid, test = splits
    config = RARConfig(retriever="popularity", k=4, fusion_weight="valid", fusion_grid=(0.0, 0.5, 1.0))
    client = LLMClient(smollm2, ResponseCache(tmp_path / "llm.sqlite"))
    rar = RAR(world.catalog, config, llm=client)
    rar.fit(train, valid)
    fusion = rar.describe()["fusion"]
    assert fusion["chosen_on"] == "validation"
    assert fusion["n_samples"] == 2 and fusion["validation_run"]["llm_calls"] == 8
    # the weight kept is the best on its recorded evidence, ties going to the smaller weight
    evidence = {float(w): v for w, v in fusion["validation_ndcg@10_by_weight"].items()}
    assert set(evidence) == {0.0, 0.5, 1.0}
    assert fusion["weight"] == min(w for w, v in evidence.items() if v == max(evidence.values()))

    scores = rar.score(test.samples)
    assert scores.shape == (2, len(world.catalog)) and scores.dtype == np.float32
    for top in check_candidates_on_top(scores, world.catalog, 4):
        assert sorted(top) == sorted(POPULAR_TOP4)  # re-ordered candidates, nothing else
        assert all(item_id in world.catalog for item_id in top)
    description = rar.describe()
    run = description["run"]
    assert run["samples"] == 2 and run["llm_calls"] == 8 and run["fallbacks"] == 0
    assert run["latency_s_per_turn"]["mean"] > 0 and run["prompt_tokens"] > 0
    assert description["llm"]["backend"] == "local" and "smollm2" in description["llm"]["model"]

    # the harness runs it like any recommender, under both protocols; the same questions hit the cache
    for protocol in Protocol:
        rar.reset_stats()
        result = evaluate(rar.score, test.samples, world.catalog, protocol, item_counts(train),
                          dataset="tiny", split="test", recommender="rar", progress=False)
        # both targets (insidious, nemo) are among the 4 candidates, which rar puts above the other 6 items
        assert result.metrics["recall@10"] == 1.0 and result.metrics["recall@5"] == 1.0
        assert rar.describe()["run"]["llm_real_calls"] == 0

    # the fusion at its two ends, from the cached calls: weight 0 keeps the retriever's order, weight 1 the LLM's
    for weight in (0.0, 1.0):
        fixed = RAR(world.catalog, RARConfig(retriever="popularity", k=4, fusion_weight=weight), llm=client)
        fixed.fit(train, None)
        tops = check_candidates_on_top(fixed.score(test.samples), world.catalog, 4)
        if weight == 0.0:
            assert tops == [POPULAR_TOP4, POPULAR_TOP4]
        for trace in fixed.traces_:
            rerank, fuse = (record.output for record in trace[1:])
            if weight == 1.0:  # the final order is the LLM's own (ties keep the retriever's order)
                assert fuse.removeprefix("final order: ") == rerank.split("LLM's best: ")[1]
    client.cache.close()


@pytest.mark.slow
def test_rar_listwise_with_smollm2_grounds_every_title(world, splits, smollm2):
    train, _, test = splits
    config = RARConfig(retriever="popularity", k=4, strategy="listwise", fusion_weight=1.0)
    rar = RAR(world.catalog, config, llm=LLMClient(smollm2))
    rar.fit(train, None)
    scores = rar.score(test.samples[:1])
    (top,) = check_candidates_on_top(scores, world.catalog, 4)
    assert sorted(top) == sorted(POPULAR_TOP4)
    grounding = rar.describe()["run"]["grounding"]
    assert grounding["replies"] == 1
    # the JSON schema's enum allows only candidate titles: nothing unmatched or outside, at most duplicates
    assert grounding["unmatched_titles"] == 0 and grounding["outside_candidate_titles"] == 0
    assert grounding["generated_titles"] == grounding["matched_candidates"] + grounding["duplicate_titles"]


@pytest.mark.slow
def test_evaluation_uses_and_records_the_subset_rar_asks_for(world, smollm2, tmp_path, monkeypatch):
    """Through the CLI's evaluation path, with the LLM over the OpenAI-compatible API of the same model."""
    monkeypatch.setenv("CONVREC_TEST_LLM_KEY", smollm2.http_api_key)
    options = {
        "retriever": "popularity", "k": 3, "fusion_weight": 0.5, "max_samples": 1, "seed": 3,
        "llm": {"backend": "openai", "model": "smollm2-135m", "base_url": smollm2.http_base_url,
                "api_key_env": "CONVREC_TEST_LLM_KEY", "cache_path": str(tmp_path / "llm.sqlite")},
    }
    standard, dedup = evaluate_recommender(world, "rar", options, "test", [Protocol.STANDARD, Protocol.DEDUP])
    assert standard["n_samples"] == 1 and standard["subset"]["of"] == 2 and standard["subset"]["seed"] == 3
    assert "max_samples" in standard["subset"]["chosen_by"]
    first, second = standard["config"]["run"], dedup["config"]["run"]
    assert first["samples"] == 1 and first["llm_real_calls"] == 3
    assert second["samples"] == dedup["n_samples"] and second["llm_real_calls"] == 0  # answered by the cache
    assert standard["config"]["llm"]["backend"] == "openai"


def test_the_cli_lists_rar_and_its_options(capsys):
    from convrec.cli.main import main

    assert main(["recommenders"]) == 0
    out = capsys.readouterr().out
    assert "rar:" in out and "fusion_weight" in out and "max_samples" in out


def test_top_indices_best_first_ties_in_catalogue_order_and_exclusions():
    scores = np.array([0.5, 0.9, np.nan, 0.9, 0.1, 0.5])
    assert top_indices(scores, 4).tolist() == [1, 3, 0, 5]
    assert top_indices(scores, 3, exclude=[1, 0]).tolist() == [3, 5, 4]
    assert top_indices(scores, 10, exclude=[0, 1, 3, 4, 5]).tolist() == [2]  # only the NaN is left
    assert top_indices(scores, 2, exclude=range(6)).tolist() == []
    # ties at the k-th place are broken in catalogue order too, however large the catalogue
    assert top_indices(np.zeros(1140), 5).tolist() == [0, 1, 2, 3, 4]
    tied = np.array([0.0] * 30 + [1.0] + [0.0] * 30)
    assert top_indices(tied, 3).tolist() == [30, 0, 1]
    assert top_indices(tied, 3, exclude=[0]).tolist() == [30, 1, 2]


class RecordingLLM:
    """Answers every question "Yes" (no logprobs) and keeps the prompts it was asked."""

    def __init__(self) -> None:
        self.prompts: list[str] = []

    def complete(self, request: ChatRequest) -> ChatResponse:
        self.prompts.append("\n".join(message.content for message in request.messages))
        return ChatResponse(text="Yes", model="recording", backend="fake")


def books_world(dataset: str) -> tuple[Split, Split]:
    catalog = Catalog([Item(f"b{i}", f"Volume Number {i}", 1990 + i, {"author": [f"Writer {i % 4}"]})
                       for i in range(24)])
    dialogues = [Dialogue(f"d{i}", split, [Turn("seeker", "a gripping story please", (f"b{i}",)),
                                          Turn("recommender", "try this", (f"b{(i + 1) % 24}",))])
                 for i, split in enumerate(["train"] * 12 + ["test"] * 4)]
    dataset_ = CRSDataset(dataset, catalog, dialogues)
    return dataset_.split("train"), dataset_.split("test")


@pytest.mark.parametrize("dataset, domain", [("mybooks", "books"), ("redial", "movies")])
def test_rar_asks_in_the_words_of_its_dataset(dataset, domain):
    train, test = books_world(dataset)  # book metadata; "redial" is known to be movies whatever it holds
    llm = RecordingLLM()
    rar = RAR(train.catalog, RARConfig(retriever="popularity", k=3, fusion_weight=0.5), llm=llm)
    rar.fit(train)
    rar.score([sample.view() for sample in test.samples[:1]])
    assert rar.describe()["prompt_domain"] == domain and len(llm.prompts) == 3
    text = " ".join(llm.prompts).lower()
    assert ("movie" in text) == (domain == "movies") and ("book" in text) == (domain == "books")


def test_a_domain_set_in_the_config_wins():
    train, test = books_world("mybooks")
    config = RARConfig(retriever="popularity", k=2, fusion_weight=0.5, pointwise={"prompt": {"domain": "items"}})
    rar = RAR(train.catalog, config, llm=RecordingLLM())
    rar.fit(train)
    assert rar.describe()["prompt_domain"] == "items"
