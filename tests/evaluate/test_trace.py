"""The per-turn trace: a typed record per stage, and what ``rar`` writes into it for each scored sample."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from convrec.catalog.items import Catalog, Item
from convrec.data.dataset import Split
from convrec.data.model import Dialogue, Turn, samples_from_dialogue
from convrec.llm.errors import LLMRequestError
from convrec.llm.types import ChatRequest, ChatResponse
from convrec.rerank.pipeline import RAR, RARConfig
from convrec.trace import SUMMARY_CHARS, Stage, TraceRecord, brief, brief_list

CATALOG = Catalog([Item(f"m{i}", f"Film {i:02d}") for i in range(30)])
LIKED = "Film 03"  # the retriever's 4th candidate; the LLM says Yes to it alone


class LikesOneFilm:
    """A fake LLM: Yes for the candidate titled :data:`LIKED`, No for every other."""

    def complete(self, request: ChatRequest) -> ChatResponse:
        return ChatResponse(text="Yes" if LIKED in request.messages[-1].content else "No", model="fake",
                            backend="fake")


class Unreachable:
    def complete(self, request: ChatRequest) -> ChatResponse:
        raise LLMRequestError("injected failure")


def popular_world() -> tuple[Split, list]:
    """Films 00..04 are mentioned 10, 9, 8, 7, 6 times in training: popularity's top 5, in that order."""
    train = [Dialogue(f"t{i}-{n}", "train", [Turn("seeker", "hi", (f"m{i}",))]) for i in range(5)
             for n in range(10 - i)]
    test = Dialogue("d", "test", [Turn("seeker", "I liked Film 10", ("m10",)), Turn("recommender", "Film 20",
                                                                                  ("m20",))])
    return Split("train", CATALOG, train), samples_from_dialogue(test)


def rar_with(llm) -> RAR:
    config = RARConfig(retriever="popularity", k=5, fusion_weight=1.0, max_transport_failure_share=1.0)
    rar = RAR(CATALOG, config, llm=llm)
    rar.fit(popular_world()[0], None)
    return rar


def test_rar_traces_retrieve_rerank_and_fuse_for_each_sample():
    rar = rar_with(LikesOneFilm())
    [sample] = popular_world()[1]
    scores = rar.score([sample.view()])
    [trace] = rar.traces_
    assert [record.stage for record in trace] == [Stage.RETRIEVE, Stage.RERANK, Stage.FUSE]
    retrieve, rerank, fuse = trace
    assert retrieve.input == "turns so far: 1; mentioned: Film 10"
    assert retrieve.output == "popularity, top 5: Film 00; Film 01; Film 02; Film 03; Film 04"
    assert rerank.input == "5 candidates, pointwise"
    assert rerank.output.startswith("5 calls (0 cached, 0 failed); LLM's best: Film 03; ")
    assert fuse.input == "weight 1 on the LLM, rank-normalised retriever scores"
    final = [CATALOG[int(i)].display_title for i in np.argsort(-scores[0], kind="stable")[:5]]
    assert fuse.output == "final order: " + "; ".join(final) and final[0] == LIKED
    assert retrieve.seconds == rar.stats_.retrieval_latency_s[-1]
    assert rerank.seconds == rar.stats_.rerank_latency_s[-1] and fuse.seconds >= 0.0


def test_a_failed_llm_shows_in_the_trace_and_each_call_replaces_the_last():
    rar = rar_with(Unreachable())
    [sample] = popular_world()[1]
    rar.score([sample.view(), sample.view()])
    assert len(rar.traces_) == 2
    assert rar.traces_[0][1].output.startswith("0 calls (0 cached, 5 failed); fell back: every LLM call failed")
    rar.score([sample.view()])
    assert len(rar.traces_) == 1


def test_a_record_is_typed_short_and_round_trips_through_json():
    record = TraceRecord.of(Stage.RETRIEVE, "a\n  long   " + "x" * 500, "out", 0.25)
    assert len(record.input) == SUMMARY_CHARS and record.input.startswith("a long xx") and record.input.endswith("...")
    assert TraceRecord.model_validate_json(record.model_dump_json()) == record
    with pytest.raises(ValidationError):
        TraceRecord(stage=Stage.FUSE, input="", output="", seconds=-1.0)
    with pytest.raises(ValidationError):
        TraceRecord(stage="think", input="", output="", seconds=0.0)
    with pytest.raises(ValidationError):
        TraceRecord(stage=Stage.FUSE, input="x" * (SUMMARY_CHARS + 1), output="", seconds=0.0)


def test_brief_lists():
    assert brief_list([]) == "none"
    assert brief_list(["A", "B"]) == "A; B"
    assert brief_list([str(i) for i in range(8)]) == "0; 1; 2; 3; 4 (+3 more)"
    assert brief("short") == "short" and brief("abcdef", limit=5) == "ab..."
