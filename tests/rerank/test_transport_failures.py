"""LLM calls that got no reply (transport failures) counted apart from replies that were unusable (quality
failures), and what each does to a ``rar`` run: issue 13, case 3.

The failed calls are real: an ``openai`` client pointed at a loopback port nobody listens on (connection
refused). ``GarbageLLM`` (conftest.py) answers nonsense for the quality failures; ``FlakyLLM`` and
``BuggyLLM`` below are FAKES that fail some calls, or raise what no LLM failure is.
"""

from __future__ import annotations

import socket

import numpy as np
import pytest
from rich.console import Console

from convrec.evaluate.report import print_table
from convrec.llm import (
    ChatRequest,
    ChatResponse,
    LLMClient,
    LLMUnavailableError,
    RetriesExhaustedError,
    RetryPolicy,
    TransientLLMError,
)
from convrec.llm.openai_backend import OpenAICompatibleLLM
from convrec.rerank.listwise import ListwiseReranker
from convrec.rerank.pipeline import RAR, RARConfig
from convrec.rerank.pointwise import PointwiseReranker
from convrec.rerank.reply import ReplyOptions, ReplyWriter
from convrec.rerank.stats import RunStats

CANDIDATES = ["insidious", "toystory", "notebook", "alien"]
SCORES = np.array([4.0, 3.0, 2.0, 1.0])


def refused_client(check_endpoint: bool = False) -> LLMClient:
    """A real client whose every request is refused (the port was bound, never listened on, and closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    backend = OpenAICompatibleLLM("x", f"http://127.0.0.1:{port}/v1", "key", timeout_s=2)
    return LLMClient(backend, retry=RetryPolicy(max_retries=0), check_endpoint=check_endpoint)


class FlakyLLM:
    """A FAKE: answers "Yes", except that calls number ``fail_every``, 2 x ``fail_every``, ... fail as a client
    does after its retries."""

    def __init__(self, fail_every: int):
        self.fail_every = fail_every
        self.calls = 0

    def complete(self, request: ChatRequest) -> ChatResponse:
        self.calls += 1
        if self.calls % self.fail_every == 0:
            raise RetriesExhaustedError("FlakyLLM: injected failure", 1, TransientLLMError("injected"))
        return ChatResponse(text="Yes", model="flaky", backend="fake")


class BuggyLLM:
    """A FAKE with a bug: raises what no LLM failure is."""

    def complete(self, request: ChatRequest) -> ChatResponse:
        raise TypeError("BuggyLLM: a bug, not a failed call")


def test_pointwise_counts_no_reply_apart_from_an_unusable_reply(catalog, horror_sample, garbage_llm):
    refused = PointwiseReranker(refused_client(), catalog).rerank(horror_sample, CANDIDATES, SCORES)
    assert refused.diagnostics.failed_calls == 4 and refused.diagnostics.unusable_replies == 0
    assert "Connection refused" in refused.diagnostics.call_errors[0]
    garbage = PointwiseReranker(garbage_llm, catalog).rerank(horror_sample, CANDIDATES, SCORES)
    assert garbage.diagnostics.failed_calls == 0 and garbage.diagnostics.unusable_replies == 4

    stats = RunStats()
    stats.add(refused)
    stats.add(garbage)
    assert stats.calls == 8
    assert stats.transport_failure_share() == 0.5 and stats.quality_failure_share() == 0.5
    run = stats.to_json()
    assert run["llm_failed_calls"] == 4 and run["llm_unusable_replies"] == 4
    assert run["llm_transport_failure_share"] == 0.5 and run["llm_quality_failure_share"] == 0.5
    assert len(run["llm_call_error_examples"]) == 1  # the same refusal four times is one example


def test_listwise_counts_a_failed_call_and_an_unusable_reply(catalog, horror_sample, garbage_llm):
    refused = ListwiseReranker(refused_client(), catalog).rerank(horror_sample, CANDIDATES, SCORES)
    assert refused.diagnostics.failed_calls == 1 and refused.diagnostics.unusable_replies == 0
    garbage = ListwiseReranker(garbage_llm, catalog).rerank(horror_sample, CANDIDATES, SCORES)
    assert garbage.diagnostics.failed_calls == 0 and garbage.diagnostics.unusable_replies == 1
    assert garbage.diagnostics.fallback.startswith("unusable reply")


def test_an_unavailable_endpoint_is_raised_not_taken_for_a_fallback(catalog, horror_sample):
    for reranker in (PointwiseReranker(refused_client(check_endpoint=True), catalog),
                     ListwiseReranker(refused_client(check_endpoint=True), catalog)):
        with pytest.raises(LLMUnavailableError, match="is unreachable: its first request failed, 1 attempt;"):
            reranker.rerank(horror_sample, CANDIDATES, SCORES)
    writer = ReplyWriter(catalog, refused_client(check_endpoint=True), ReplyOptions(polish=True))
    with pytest.raises(LLMUnavailableError, match="is unreachable"):
        writer.write(horror_sample, CANDIDATES)


def test_a_bug_is_not_counted_as_a_failed_call(catalog, horror_sample):
    for reranker in (PointwiseReranker(BuggyLLM(), catalog), ListwiseReranker(BuggyLLM(), catalog)):
        with pytest.raises(TypeError, match="a bug, not a failed call"):
            reranker.rerank(horror_sample, CANDIDATES, SCORES)
    with pytest.raises(TypeError):
        ReplyWriter(catalog, BuggyLLM(), ReplyOptions(polish=True)).write(horror_sample, CANDIDATES)


def test_rar_fails_the_run_when_its_calls_get_no_reply(world, splits):
    train, _, test = splits
    rar = RAR(world.catalog, RARConfig(retriever="popularity", k=4, fusion_weight=0.5), llm=refused_client())
    rar.fit(train, None)
    with pytest.raises(LLMUnavailableError) as caught:
        rar.score(test.samples[:2])
    message = str(caught.value)
    assert "rar: 8 of 8 LLM calls got no reply (100.0%, more than max_transport_failure_share=0.05)" in message
    assert "Connection refused" in message and "--set max_transport_failure_share=" in caught.value.hint


def test_a_threshold_of_one_keeps_the_old_fallback(world, splits):
    train, _, test = splits
    config = RARConfig(retriever="popularity", k=4, fusion_weight=0.5, max_transport_failure_share=1.0)
    rar = RAR(world.catalog, config, llm=refused_client())
    rar.fit(train, None)
    rar.score(test.samples[:2])
    run = rar.describe()["run"]
    assert run["fallback_share"] == 1.0 and run["llm_transport_failure_share"] == 1.0


def test_few_failures_are_judged_at_the_end_of_the_batch(world, splits):
    train, _, test = splits
    flaky = FlakyLLM(fail_every=8)  # 1 of the 8 calls: 12.5%, over 5% but not 5% of 100 calls mid-run
    rar = RAR(world.catalog, RARConfig(retriever="popularity", k=4, fusion_weight=0.5), llm=flaky)
    rar.fit(train, None)
    with pytest.raises(LLMUnavailableError, match=r"1 of 8 LLM calls got no reply \(12.5%"):
        rar.score(test.samples[:2])  # one batch of two samples
    assert flaky.calls == 8  # both samples were scored before the verdict


def test_many_failures_stop_the_run_mid_batch(world, splits):
    train, valid, test = splits
    flaky = FlakyLLM(fail_every=1)  # every call fails: past 5 of 100 after the second sample
    rar = RAR(world.catalog, RARConfig(retriever="popularity", k=4, fusion_weight=0.5), llm=flaky)
    rar.fit(train, None)
    with pytest.raises(LLMUnavailableError, match="8 of 8 LLM calls got no reply"):
        rar.score([*valid.samples[:2], *test.samples[:2]])  # 4 samples
    assert flaky.calls == 8  # the last two samples were never asked


def _result(recommender: str, run: dict | None) -> dict:
    return {"dataset": "d", "protocol": "standard", "recommender": recommender, "n_samples": 2,
            "metrics": {"recall@10": 0.5}, "stderr": {}, "config": {"run": run} if run else {"name": recommender}}


def test_the_table_shows_both_shares_for_rows_that_used_an_llm():
    console = Console(record=True, width=250)
    rows = [_result("ease", None),
            _result("rar", {"llm_transport_failure_share": 0.25, "llm_quality_failure_share": 0.125})]
    print_table(rows, console=console, columns=["recall@10"])
    text = console.export_text()
    assert "llm transport fail" in text and "llm quality fail" in text
    rar_row = next(line for line in text.splitlines() if " rar " in line)
    ease_row = next(line for line in text.splitlines() if " ease " in line)
    assert "25.0%" in rar_row and "12.5%" in rar_row and ease_row.rstrip(" │").endswith("-")
    console = Console(record=True, width=250)
    print_table([_result("ease", None)], console=console, columns=["recall@10"])
    assert "llm transport fail" not in console.export_text()  # no LLM, no LLM columns
