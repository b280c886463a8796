"""The llm user: a real episode end to end with SmolLM2 (through the cached client), its parsing, and what it
does when its LLM fails or says the title (failure injections, named as such)."""

from __future__ import annotations

import json
import re

import pytest

from convrec.data.dataset import CRSDataset
from convrec.llm.cache import ResponseCache
from convrec.llm.client import LLMClient
from convrec.llm.errors import LLMRequestError, LLMUnavailableError
from convrec.llm.types import ChatRequest, ChatResponse
from convrec.retrieval.base import build_recommender
from convrec.simulate.llm_user import MAX_REPLY_CHARS, parse_decision, parse_reply
from convrec.simulate.runner import SimulationConfig, simulate
from convrec.simulate.system import RankingSystem
from convrec.simulate.user import SAFE

EPISODES, TURNS = 3, 2


@pytest.fixture(scope="module")
def system(redial: CRSDataset) -> RankingSystem:
    recommender = build_recommender("itemknn", redial.catalog)
    recommender.fit(redial.split("train"))
    return RankingSystem(recommender, 5, "redial")


def config(**changes) -> SimulationConfig:
    return SimulationConfig(**{"dataset": "redial", "recommender": "itemknn", "user": "llm", "episodes": EPISODES,
                               "turns": TURNS, **changes})


class Recording:
    """The real client, with every request it was sent kept (to check what each prompt holds)."""

    def __init__(self, llm):
        self.llm = llm
        self.requests: list[ChatRequest] = []

    def complete(self, request: ChatRequest) -> ChatResponse:
        self.requests.append(request)
        return self.llm.complete(request)


def lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()[1:]]


def without_timing(record: dict) -> dict:
    record = {k: v for k, v in record.items() if k not in ("system_seconds", "user_seconds")}
    record["turns"] = [{k: v for k, v in t.items() if k != "seconds"} for t in record["turns"]]
    for turn in record["turns"]:
        if turn.get("llm"):
            turn["llm"] = {k: v for k, v in turn["llm"].items() if k != "cached"}
    return record


def test_a_real_episode_with_smollm2_is_audited_never_shows_the_title_to_the_writer_and_replays_from_the_cache(
        redial, system, smollm2, tmp_path):
    cache = ResponseCache(tmp_path / "llm.sqlite")
    recording = Recording(LLMClient(smollm2, cache))
    first = simulate(config(), redial, system, transcripts=tmp_path / "first.jsonl", progress=False,
                     user_llm=recording)
    records = lines(tmp_path / "first.jsonl")
    assert len(records) == EPISODES and first["status"] in ("ok", "failed")
    titles = {redial.catalog.get(r["goal"]["target"]).display_title for r in records}
    decisions = [r for r in recording.requests if r.json_schema is not None]
    replies = [r for r in recording.requests if r.json_schema is None]
    assert decisions and replies
    for request in decisions:  # the decision call alone reads the title (and the slate's)
        assert any(title in request.messages[-1].content for title in titles)
    for request in replies:  # the writing call never does, but in what the system said or the item it accepts
        for message in request.messages:
            told = [line for line in message.content.splitlines()
                    if not line.startswith(("Recommender:", "The message must say yes"))]
            assert not any(title in line for title in titles for line in told)
    for record in records:
        users = [t for t in record["turns"] if t["role"] == "user"]
        systems = [t for t in record["turns"] if t["role"] == "system"]
        assert users and all(u["llm"] is not None for u in users)
        for shown, said in zip(systems, users, strict=True):
            audit = said["llm"]
            assert audit["rule_decision"] == ("accept" if record["goal"]["target"] in shown["slate"] else "reject")
            if audit["parsed"]:
                assert audit["raw_decision"] and audit["raw"] and audit["decision"] in ("accept", "reject")
                assert said["act"] == audit["decision"]
                assert said["text"] == (SAFE if audit["leaked"] else parse_reply(audit["raw"]))
        # the episode ends as the user decided: an acceptance without the target is no success
        last = users[-1]
        if last["act"] == "accept":
            in_slate = record["goal"]["target"] in systems[-1]["slate"]
            assert (record["success_turn"] is not None) == in_slate
            assert (record["wrong_accept_turn"] is not None) == (not in_slate)
    metrics = first["metrics"]
    for name in ("llm_fallback_share", "llm_leak_share", "llm_agreement", "llm_false_accept_share"):
        assert name in metrics
    assert first["failure"] is None or "fell back" in first["failure"]

    calls = len(recording.requests)
    again = simulate(config(), redial, system, transcripts=tmp_path / "again.jsonl", progress=False,
                     user_llm=recording)
    assert len(recording.requests) == 2 * calls  # the same requests, in the same order ...
    assert recording.requests[calls:] == recording.requests[:calls]
    replayed = lines(tmp_path / "again.jsonl")
    assert all(u["llm"]["cached"] for r in replayed for u in r["turns"] if u["role"] == "user")  # ... from the cache
    assert [without_timing(r) for r in replayed] == [without_timing(r) for r in records]
    assert again["metrics"] == pytest.approx(first["metrics"], nan_ok=True)
    cache.close()


class FailingLLM:
    """Failure injection: every call fails (an LLM error that is not a dead endpoint)."""

    def complete(self, request: ChatRequest) -> ChatResponse:
        raise LLMRequestError("injected failure")


class DeadEndpointLLM:
    """Failure injection: the endpoint is gone."""

    def complete(self, request: ChatRequest) -> ChatResponse:
        raise LLMUnavailableError("injected: endpoint unreachable")


class TitleSayingLLM:
    """Failure injection: an LLM that turns every slate down and then names the title it was asked about."""

    def __init__(self):
        self.title = ""

    def complete(self, request: ChatRequest) -> ChatResponse:
        prompt = request.messages[-1].content
        wanted = re.search(r"^Wanted movie: (.+?)(?: \(\d{4}\))?$", prompt, re.MULTILINE)
        if wanted:
            self.title = wanted.group(1)
            text = '{"in_list": "no"}'
        else:
            text = f"No, what I really want is {self.title}."
        return ChatResponse(text=text, model="title-saying", backend="injected")


def test_a_failing_llm_falls_back_to_the_rule_user_and_the_run_is_reported_failed(redial, system):
    rule = simulate(config(user="rule"), redial, system, progress=False)
    failed = simulate(config(), redial, system, progress=False, user_llm=FailingLLM())
    assert failed["status"] == "failed" and "fell back to the rule user on 100.0%" in failed["failure"]
    assert failed["metrics"]["llm_fallback_share"] == 1.0
    assert rule["status"] == "ok" and rule["failure"] is None and "llm_fallback_share" not in rule["metrics"]
    # the fallback is the rule user's own turn: the same episodes, turn for turn
    for name in ("success", "recall@10", "rejection_rate"):
        assert failed["metrics"][name] == rule["metrics"][name]


def test_a_dead_endpoint_stops_the_run(redial, system):
    with pytest.raises(LLMUnavailableError):
        simulate(config(), redial, system, progress=False, user_llm=DeadEndpointLLM())


def test_a_reply_naming_the_target_is_counted_as_a_leak_and_never_reaches_the_system(redial, system, tmp_path):
    result = simulate(config(), redial, system, transcripts=tmp_path / "leaky.jsonl", progress=False,
                      user_llm=TitleSayingLLM())
    records = lines(tmp_path / "leaky.jsonl")
    leaks = [u for r in records for u in r["turns"] if u["role"] == "user" and u["llm"]["leaked"]]
    assert leaks and all(u["text"] == SAFE and u["guarded"] for u in leaks)
    assert all(redial.catalog.get(r["goal"]["target"]).title in u["llm"]["raw"]
               for r in records for u in r["turns"] if u["role"] == "user" and u["llm"]["leaked"])
    assert result["metrics"]["llm_leak_share"] == pytest.approx(
        len(leaks) / sum(1 for r in records for u in r["turns"] if u["role"] == "user"))
    assert result["metrics"]["guarded_share"] == result["metrics"]["llm_leak_share"]


@pytest.mark.parametrize(("raw", "expected"), [
    ('{"in_list": "yes"}', "accept"), ('{"in_list": "no"}', "reject"), ('{"in_list": " YES "}', "accept"),
    ('Sure: ```json\n{"in_list": "no"}\n```', "reject"), ('{"in_list": "maybe"}', None), ("yes", None),
    ('{"in_list": "yes"', None), ("", None), ('["yes"]', None),
])
def test_parse_decision(raw, expected):
    assert parse_decision(raw) == expected


def test_parse_reply():
    assert parse_reply('Person: "No thanks, something funnier?"') == "No thanks, something funnier?"
    assert parse_reply("  Sounds great, I'll take it!  ") == "Sounds great, I'll take it!"
    assert parse_reply("No thanks", finish_reason="length") is None  # cut off at its token limit
    assert parse_reply("   ") is None and parse_reply('Person: ""') is None
    assert parse_reply("a" * (MAX_REPLY_CHARS + 1)) is None


def test_the_cli_checks_the_llm_users_options_before_loading_anything(run_cli):
    result = run_cli("simulate", "--dataset", "redial", "--recommender", "itemknn", "--user", "rule",
                     "--user-set", "llm.model=smollm2-135m")
    assert result.failed_with("--user-set llm", "Extra inputs are not permitted")
    result = run_cli("simulate", "--dataset", "redial", "--recommender", "itemknn", "--user", "llm",
                     "--user-set", "max_fallback_share=2")
    assert result.failed_with("--user-set max_fallback_share")


@pytest.fixture(scope="module")
def smollm2_server():
    """SmolLM2 behind the local backend's OpenAI-compatible HTTP endpoint, without the prompt-prefix cache (its
    reuse may change a near-tied greedy token with the order of calls, and this test compares two orders)."""
    from convrec.llm.config import LocalOptions
    from convrec.llm.local import LocalLLM
    from convrec.llm.models import resolve_local_model

    with LocalLLM(resolve_local_model("smollm2-135m"), LocalOptions(n_ctx=1024, n_threads=1, cache_prompt=False),
                  timeout_s=120) as llm:
        yield llm


def test_episodes_played_at_once_over_the_openai_backend_say_what_one_at_a_time_says(redial, system,
                                                                                      smollm2_server, tmp_path):
    from convrec.llm.openai_backend import OpenAICompatibleLLM

    backend = OpenAICompatibleLLM("smollm2-135m", smollm2_server.http_base_url, smollm2_server.http_api_key,
                                  timeout_s=120)
    client = LLMClient(backend, cache=None, max_concurrency=2)  # no cache: every call goes over HTTP
    # two episodes on two workers: the smallest run where episodes overlap (each call is ~3 s on 2 cores)
    one = simulate(config(episodes=2), redial, system, transcripts=tmp_path / "one.jsonl", progress=False,
                   user_llm=client)
    two = simulate(config(episodes=2), redial, system, transcripts=tmp_path / "two.jsonl", workers=2,
                   progress=False, user_llm=client)
    assert two["run"]["workers"] == 2 and two["n_episodes"] == one["n_episodes"] == 2
    assert [without_timing(r) for r in lines(tmp_path / "two.jsonl")] == [
        without_timing(r) for r in lines(tmp_path / "one.jsonl")]
    assert any(u["llm"]["parsed"] for r in lines(tmp_path / "one.jsonl") for u in r["turns"] if u["role"] == "user")
