"""The two-stage recommender ``rar`` on the shared test world (tests/worlds.py, with its classics: 50 items): a
registry retriever + the real SmolLM2. What rar must output is worked out here from the retriever alone and
the LLM's answers: its K candidates, their fused order, the retriever's order below them, and the metrics."""

from __future__ import annotations

import numpy as np
import pytest

from convrec.catalog.items import Catalog, Item
from convrec.data.dataset import CRSDataset, Split
from convrec.data.model import Dialogue, RecSample, Turn
from convrec.evaluate.harness import evaluate_recommender
from convrec.evaluate.protocol import Protocol
from convrec.evaluate.runner import evaluate
from convrec.llm import LLMClient, ResponseCache
from convrec.llm.types import ChatRequest, ChatResponse
from convrec.rerank.pipeline import RAR, RARConfig, place_above
from convrec.rerank.pointwise import PointwiseOptions, PointwiseReranker
from convrec.rerank.prompts import PromptOptions
from convrec.retrieval import RECOMMENDERS, build_recommender
from convrec.retrieval.base import item_counts, top_indices
from convrec.trace import brief_list
from worlds import FAST_LRUREC, GENRES

K = 4


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


def best(row: np.ndarray, catalog: Catalog, n: int = 10) -> list[str]:
    """The n best items of a score row, best first, ties in catalogue order (as the metrics' lists)."""
    return [catalog.ids[i] for i in top_indices(row, n)]


def fused(candidates: list[str], retriever_scores: np.ndarray, llm_scores: np.ndarray, weight: float) -> list[str]:
    """The candidates in the order rar must give them, written out from the fusion's definition: retriever
    scores normalised by rank (1 for the best candidate down to 0 for the K-th, a tie shares the better
    value), mixed with the LLM's P(Yes) as (1 - w) * retriever + w * LLM; ties go to the retriever's order."""
    n = len(candidates)
    by_rank = [1 - sum(other > score for other in retriever_scores) / (n - 1) for score in retriever_scores]
    mixed = [(1 - weight) * r + weight * llm for r, llm in zip(by_rank, llm_scores, strict=True)]
    order = sorted(range(n), key=lambda i: (-round(mixed[i], 12), -retriever_scores[i], i))
    return [candidates[i] for i in order]


def ndcg_of(ranking: list[str], target: str, k: int = 10) -> float:
    return 1 / np.log2(ranking.index(target) + 2) if target in ranking[:k] else 0.0


def one_per_genre(samples: list[RecSample], wanted) -> list[RecSample]:
    """The first sample of each genre's dialogues for which ``wanted(sample, genre_number)`` holds."""
    picked = []
    for number, genre in enumerate(GENRES):
        of_genre = [s for s in samples if s.target.rstrip("0123456789") == genre]
        picked.append(next(s for s in of_genre if wanted(s, number)))
    return picked


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
    samples = one_per_genre(test.samples, lambda sample, _: True)  # liked: the second movie of each cluster
    config = RARConfig(retriever="itemknn", k=K, fusion_weight=0.7, max_transport_failure_share=1.0)
    rar = RAR(world.catalog, config, llm=failing_llm)
    rar.fit(train, valid)
    scores = rar.score([sample.view() for sample in samples])
    retriever = build_recommender("itemknn", world.catalog)
    retriever.fit(train)
    alone = retriever.score([sample.view() for sample in samples])
    # the candidates are the sample's own (its cluster mates, tied: catalogue order), and with no LLM score
    # the whole top 10 is the retriever's
    assert check_candidates_on_top(scores, world.catalog, K) == [
        [f"{genre}{n}" for n in (0, 2, 3, 4)] for genre in GENRES]
    for row, retriever_row in zip(scores, alone, strict=True):
        assert best(row, world.catalog) == best(retriever_row, world.catalog)
    run = rar.describe()["run"]
    assert run["samples"] == 3 and run["fallbacks"] == 3 and run["fallback_share"] == 1.0
    assert run["llm_failed_calls"] == 3 * K and run["llm_calls"] == 0
    assert list(run["fallback_reasons"]) == ["every LLM call failed"]


@pytest.mark.slow
def test_rar_pointwise_end_to_end_with_smollm2(world, splits, lrurec_run, smollm2, tmp_path):
    """rar's output, the weight it chose and its metrics, each recomputed from the retriever alone and the
    LLM's P(Yes) of each candidate: a re-ranker that kept the retriever's order, a fusion that mixed the
    wrong scores, candidates of another sample or a weight not the best on validation all change them."""
    train, valid, test = splits
    catalog = world.catalog
    retriever = build_recommender("lrurec", catalog, {**FAST_LRUREC, "checkpoint": str(lrurec_run)})
    retriever.fit(train)

    def retrieved(samples: list[RecSample]) -> tuple[np.ndarray, list[list[str]]]:
        scores = retriever.score([sample.view() for sample in samples])
        return scores, [best(row, catalog, K) for row in scores]

    def target_ranks(split: Split) -> dict[str, int]:
        """Per dialogue of the split (each has one sample), the target's 0-based rank in the retriever's list."""
        scores, _ = retrieved(split.samples)
        return {sample.dialogue_id: best(row, catalog, len(catalog)).index(sample.target)
                for sample, row in zip(split.samples, scores, strict=True)}

    # Test: one target among the candidates, one below them in the top 10, one beyond it (the retriever's
    # Recall@10 of these three is 2/3 by construction).
    ranks = target_ranks(test)
    wanted = (range(K), range(K, 10), range(10, len(catalog)))
    samples = one_per_genre(test.samples, lambda sample, number: ranks[sample.dialogue_id] in wanted[number])

    client = LLMClient(smollm2, ResponseCache(tmp_path / "llm.sqlite"))
    # The LLM's answers, asked in the words of a catalogue that is not all movies, as rar asks them.
    asking = PointwiseReranker(client, catalog, PointwiseOptions(prompt=PromptOptions(domain="items")))

    def llm_scores(samples: list[RecSample], candidates: list[list[str]]) -> list[np.ndarray]:
        return [asking.llm_scores(sample.view(), ids)[0] for sample, ids in zip(samples, candidates, strict=True)]

    # Validation: the first context of each genre, its target the candidate the LLM likes best. Where that is
    # not the retriever's first candidate the LLM helps, so the weight chosen is not 0, and the test output
    # below is the LLM's doing.
    contexts = one_per_genre(valid.samples, lambda sample, number: True)
    valid_scores, valid_candidates = retrieved(contexts)
    valid_llm = llm_scores(contexts, valid_candidates)
    favourites = [ids[int(np.argmax(llm))] for ids, llm in zip(valid_candidates, valid_llm, strict=True)]
    assert favourites != [ids[0] for ids in valid_candidates], "the LLM agrees with the retriever: no test"
    chosen_valid = [next(s for s in valid.samples if s.context_items == context.context_items and s.target == item)
                    for context, item in zip(contexts, favourites, strict=True)]

    config = RARConfig(retriever="lrurec", checkpoint=str(lrurec_run), retriever_options=FAST_LRUREC, k=K,
                       fusion_weight="valid", fusion_grid=(0.0, 0.5, 1.0))
    rar = RAR(catalog, config, llm=client)
    rar.fit(train, Split("valid", catalog, [sample.dialogue for sample in chosen_valid]))

    # the weight: the best mean NDCG@10 of the fused order on validation, ties to the smaller weight
    evidence = {}
    for weight in (0.0, 0.5, 1.0):
        evidence[weight] = np.mean([
            ndcg_of(fused(ids, row[catalog.indices(ids)], llm, weight), sample.target)
            for sample, row, ids, llm in zip(chosen_valid, valid_scores, valid_candidates, valid_llm, strict=True)])
    fusion = rar.describe()["fusion"]
    assert fusion["chosen_on"] == "validation" and fusion["n_samples"] == fusion["n_target_in_candidates"] == 3
    # rar asked exactly the questions asked above: every answer came from the cache
    assert fusion["validation_run"]["llm_calls"] == 3 * K and fusion["validation_run"]["llm_real_calls"] == 0
    recorded = {float(w): v for w, v in fusion["validation_ndcg@10_by_weight"].items()}
    assert recorded == pytest.approx(evidence, abs=1e-5)
    assert fusion["weight"] == min(w for w, v in evidence.items() if v >= max(evidence.values()) - 1e-12)
    assert fusion["weight"] > 0  # the LLM earned its weight on the validation samples chosen above

    # the test output: the fused candidates, then the retriever's order
    scores = rar.score([sample.view() for sample in samples])
    real_calls = client.usage.backend_calls
    test_scores, test_candidates = retrieved(samples)
    test_llm = llm_scores(samples, test_candidates)
    assert client.usage.backend_calls == real_calls  # rar asked exactly these: all answered by the cache

    def expected(weight: float) -> list[list[str]]:
        lists = []
        for row, ids, llm in zip(test_scores, test_candidates, test_llm, strict=True):
            lists.append(fused(ids, row[catalog.indices(ids)], llm, weight) + best(row, catalog, 10)[K:])
        return lists

    # what makes this test able to fail: the LLM's order is not the retriever's for some sample
    assert expected(1.0) != expected(0.0)
    assert scores.shape == (3, len(catalog)) and scores.dtype == np.float32
    check_candidates_on_top(scores, catalog, K)
    assert [best(row, catalog) for row in scores] == expected(fusion["weight"])
    run = rar.describe()["run"]
    assert run["samples"] == 3 and run["llm_calls"] == 3 * K and run["fallbacks"] == 0
    assert run["latency_s_per_turn"]["mean"] > 0 and run["prompt_tokens"] > 0
    assert rar.describe()["llm"]["backend"] == "local" and "smollm2" in rar.describe()["llm"]["model"]

    # the harness runs it like any recommender, under both protocols, the same questions answered by the cache:
    # re-ordering the top K of a top 10 leaves Recall@10 the retriever's, and NDCG@10 is that of the lists above
    counts = item_counts(train)
    for protocol in Protocol:
        rar.reset_stats()
        result = evaluate(rar.score, samples, catalog, protocol, counts, dataset="test-world", split="test",
                          recommender="rar", progress=False)
        alone = evaluate(retriever.score, samples, catalog, protocol, counts, dataset="test-world", split="test",
                         recommender="lrurec", progress=False)
        assert result.metrics["recall@10"] == pytest.approx(alone.metrics["recall@10"])
        if protocol == Protocol.STANDARD:
            assert result.metrics["recall@10"] == pytest.approx(2 / 3)
            lists = expected(fusion["weight"])
            assert result.metrics["ndcg@10"] == pytest.approx(
                np.mean([ndcg_of(ranking, sample.target) for ranking, sample in zip(lists, samples, strict=True)]))
        assert rar.describe()["run"]["llm_real_calls"] == 0

    # a weight set in the config, from the cached calls: 0 keeps the retriever's order, 1 takes the LLM's
    for weight in (0.0, 1.0):
        fixed = RAR(catalog, config.model_copy(update={"fusion_weight": weight}), llm=client)
        fixed.fit(train, None)
        assert [best(row, catalog) for row in fixed.score([s.view() for s in samples])] == expected(weight)
    # the trace of the last run (weight 1) names the LLM's order, which is the final one
    for trace, ranking in zip(fixed.traces_, expected(1.0), strict=True):
        rerank, fuse = (record.output for record in trace[1:])
        titles = brief_list([catalog.get(item_id).display_title for item_id in ranking[:K]])
        assert fuse == f"final order: {titles}" and rerank.endswith(f"LLM's best: {titles}")
    client.cache.close()


@pytest.mark.slow
def test_rar_listwise_with_smollm2_grounds_every_title(world, splits, smollm2):
    train, _, test = splits
    [sample] = one_per_genre(test.samples, lambda sample, number: True)[:1]
    config = RARConfig(retriever="itemknn", k=K, strategy="listwise", fusion_weight=1.0)
    rar = RAR(world.catalog, config, llm=LLMClient(smollm2))
    rar.fit(train, None)
    scores = rar.score([sample.view()])
    (top,) = check_candidates_on_top(scores, world.catalog, K)
    assert sorted(top) == [f"horror{n}" for n in (0, 2, 3, 4)]  # the liked movie's cluster mates, re-ordered
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
    assert standard["n_samples"] == 1 and standard["subset"]["of"] == 33 and standard["subset"]["seed"] == 3
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
