"""An LLM endpoint that cannot serve is one clear error and exit code 2, never a normal-looking ``rar`` row.

Issue 13, cases 2 (the ``openai`` backend with its API-key variable unset) and 3 (a dead endpoint, a bad
``base_url``, transport failures past the threshold). Every server is real and on loopback: a closed port
(connection refused), the scripted ``FaultyOpenAIServer`` (500s, hangs; a FAKE server, see
test_faulty_server.py) and llama.cpp's own HTTP server serving SmolLM2 (wrong key, wrong path, and a run
that works). Retries and timeouts are cut to milliseconds so that each case takes about a second.
"""

from __future__ import annotations

import json
import socket

import pytest
from test_faulty_server import FaultyOpenAIServer

from convrec.llm.retry import RetryPolicy
from convrec.retrieval import RECOMMENDERS

DEAD_URL = "http://127.0.0.1:1/v1"  # the example: nothing listens on port 1


@pytest.fixture
def eval_rar(run_cli, inspired, data_dir, mirror):
    """``convrec eval`` of ``rar`` on INSPIRED (popularity retriever, 3 candidates, fixed fusion weight, no
    response cache unless given) with an ``openai`` backend; ``options`` are more ``--set`` pairs."""

    def run(*options: str, limit: int = 2, json_out=None):
        argv = ["eval", "--dataset", "inspired", "--recommender", "rar", "--limit", str(limit), "--quiet",
                "--data-dir", data_dir, "--mirror", mirror]
        base = ["retriever=popularity", "k=3", "fusion_weight=0.5", "llm_cache=false", "llm.backend=openai",
                "llm.model=x", "llm.max_retries=1", "llm.backoff_base_s=0.01"]
        for option in [*base, *options]:
            argv += ["--set", option]
        if json_out is not None:
            argv += ["--json", json_out]
        return run_cli(*argv)

    return run


@pytest.fixture
def retriever_fit_is_work(monkeypatch):
    """Makes fitting rar's retriever a test failure: an LLM problem must be found before it."""

    def fit(self, train, valid=None):
        raise AssertionError("the retriever was fit before the LLM was built")

    monkeypatch.setattr(RECOMMENDERS["popularity"], "fit", fit)


def closed_port_url() -> str:
    with socket.socket() as probe:  # bound, never listened on, then closed: connections are refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


# -- the API key ------------------------------------------------------------------------------------------


def test_an_unset_key_variable_is_named_before_any_work(eval_rar, retriever_fit_is_work, monkeypatch):
    monkeypatch.delenv("CONVREC_TEST_UNSET_KEY", raising=False)
    run = eval_rar(f"llm.base_url={DEAD_URL}", "llm.api_key_env=CONVREC_TEST_UNSET_KEY")
    assert run.failed_with("environment variable CONVREC_TEST_UNSET_KEY, which is not set",
                           "export CONVREC_TEST_UNSET_KEY=", "--set llm.api_key_env=NAME")


def test_api_openai_com_without_a_key_variable_is_refused_at_once(eval_rar, retriever_fit_is_work):
    run = eval_rar()  # no llm.base_url: the official endpoint, which answers 401 to every keyless request
    assert run.failed_with("https://api.openai.com/v1, which needs an API key", "--set llm.api_key_env=")


def test_chat_names_the_unset_key_variable_before_loading_data(run_cli, monkeypatch):
    def load_dataset(*args, **kwargs):
        raise AssertionError("the dataset was loaded before the LLM was built")

    monkeypatch.setattr("convrec.cli.chat_cmd.load_dataset", load_dataset)
    monkeypatch.delenv("CONVREC_TEST_UNSET_KEY", raising=False)
    run = run_cli("chat", "--llm-backend", "openai", "--model", "x", "--base-url", DEAD_URL,
                  "--api-key-env", "CONVREC_TEST_UNSET_KEY", "-m", "hi")
    assert run.failed_with("CONVREC_TEST_UNSET_KEY, which is not set", "--api-key-env NAME")


# -- a bad base_url or option --------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["notaurl", "localhost:8000/v1", "ftp://example.org/v1", "http://host:port/v1"])
def test_a_base_url_that_is_no_http_url_is_refused_with_the_config(eval_rar, retriever_fit_is_work, url):
    run = eval_rar(f"llm.base_url={url}")
    assert run.failed_with("option 'llm.base_url'", "must be an http:// or https:// URL with a host", repr(url))


def test_chat_names_the_option_of_a_bad_llm_setting(run_cli):
    run = run_cli("chat", "--llm-backend", "openai", "--model", "x", "--base-url", "notaurl", "-m", "hi")
    assert run.failed_with("--base-url: ", "got 'notaurl'")
    run = run_cli("chat", "--threads", "-2", "-m", "hi")
    assert run.failed_with("--threads: ", "greater than or equal to 1")


# -- a dead endpoint -------------------------------------------------------------------------------------


def test_a_dead_endpoint_fails_the_run_instead_of_a_retriever_row(eval_rar, tmp_path):
    out = tmp_path / "result.json"
    run = eval_rar(f"llm.base_url={DEAD_URL}", json_out=out)
    assert run.failed_with(f"LLM endpoint {DEAD_URL} is unreachable", "Connection refused",
                           "check --set llm.base_url", "is running")
    assert "rar" not in run.out and not out.exists()  # no table row, no result file


def test_an_endpoint_that_answers_500_fails_at_its_first_request(eval_rar):
    with FaultyOpenAIServer(["500", "500", "ok"]) as server:
        run = eval_rar(f"llm.base_url={server.base_url}")
    assert run.failed_with(f"LLM endpoint {server.base_url} keeps failing", "failed, 2 attempts", "HTTP 500")
    assert server.request_count == 2  # the first request and its one retry; the others were never sent


def test_an_endpoint_that_hangs_is_unreachable_after_its_timeout(eval_rar):
    with FaultyOpenAIServer(["hang", "hang"]) as server:
        run = eval_rar(f"llm.base_url={server.base_url}", "llm.timeout_s=0.3")
    assert run.failed_with(f"LLM endpoint {server.base_url} is unreachable", "no reply within timeout_s=0.3 s")


def test_chat_stops_at_a_dead_endpoint(run_cli, inspired, data_dir, mirror, monkeypatch):
    monkeypatch.setattr(RetryPolicy, "delay_s", lambda self, *args: 0.0)  # no waits between the retries
    url = closed_port_url()
    run = run_cli("chat", "--dataset", "inspired", "--data-dir", data_dir, "--mirror", mirror,
                  "--llm-backend", "openai", "--model", "x", "--base-url", url, "--no-llm-cache", "-m", "hi")
    assert run.failed_with(f"LLM endpoint {url} is unreachable", "failed, 5 attempts", "Connection refused")


def test_a_rerun_answered_by_the_cache_needs_no_server(eval_rar, tmp_path):
    cache, first_json, again_json = tmp_path / "llm.sqlite", tmp_path / "first.json", tmp_path / "again.json"
    with FaultyOpenAIServer() as server:
        url = server.base_url
        first = eval_rar(f"llm.base_url={url}", f"llm.cache_path={cache}", json_out=first_json)
    assert first.rc == 0 and server.request_count == 6  # 2 samples x 3 candidates
    # the server is gone and its port closed; every question of the same run is in the cache
    again = eval_rar(f"llm.base_url={url}", f"llm.cache_path={cache}", json_out=again_json)
    assert again.rc == 0 and again.out == first.out
    run = json.loads(again_json.read_text())["config"]["run"]
    assert run["llm_calls"] == run["llm_cache_hits"] == 6 and run["llm_real_calls"] == 0
    # a question the cache cannot answer reaches the dead endpoint and stops the run
    more = eval_rar(f"llm.base_url={url}", f"llm.cache_path={cache}", limit=4)
    assert more.failed_with(f"LLM endpoint {url} is unreachable")


# -- transport failures during a run --------------------------------------------------------------------------


def test_transport_failures_past_the_threshold_fail_the_run(eval_rar):
    # The first reply proves the endpoint; 1 of the run's 6 calls then fails (16.7% > the default 5%).
    with FaultyOpenAIServer(["ok", "500"]) as server:
        run = eval_rar(f"llm.base_url={server.base_url}", "llm.max_retries=0")
    assert run.failed_with("rar: 1 of 6 LLM calls got no reply (16.7%, more than max_transport_failure_share=0.05)",
                           "HTTP 500", "--set max_transport_failure_share=")


def test_below_the_threshold_the_table_shows_both_failure_shares(eval_rar, tmp_path):
    out = tmp_path / "result.json"
    with FaultyOpenAIServer(["ok", "500"]) as server:
        run = eval_rar(f"llm.base_url={server.base_url}", "llm.max_retries=0", "max_transport_failure_share=0.2",
                       json_out=out)
    assert run.rc == 0
    assert "llm transport fail" in run.out and "llm quality fail" in run.out
    # the fake server echoes the prompt: no reply says Yes or No, so the 5 replies are quality failures
    row = next(line for line in run.out.splitlines() if "│ rar" in line)
    assert "16.7%" in row and "83.3%" in row
    stats = json.loads(out.read_text())["config"]["run"]
    assert stats["llm_transport_failure_share"] == pytest.approx(1 / 6, abs=1e-4)
    assert stats["llm_quality_failure_share"] == pytest.approx(5 / 6, abs=1e-4)
    assert "HTTP 500" in stats["llm_call_error_examples"][0]


# -- llama.cpp's own server -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_wrong_key_or_path_on_a_real_server_fails_the_run(eval_rar, smollm2, monkeypatch):
    monkeypatch.setenv("CONVREC_TEST_LLM_KEY", "not-the-key")
    run = eval_rar(f"llm.base_url={smollm2.http_base_url}", "llm.api_key_env=CONVREC_TEST_LLM_KEY")
    assert run.failed_with(f"LLM endpoint {smollm2.http_base_url} refused the API key", "HTTP 401",
                           "llm.api_key_env")
    monkeypatch.setenv("CONVREC_TEST_LLM_KEY", smollm2.http_api_key)
    wrong_path = smollm2.http_base_url.removesuffix("/v1") + "/nope"
    run = eval_rar(f"llm.base_url={wrong_path}", "llm.api_key_env=CONVREC_TEST_LLM_KEY")
    assert run.failed_with(f"LLM endpoint {wrong_path} has no such model or path", "HTTP 404", "/v1")


@pytest.mark.slow
def test_a_working_real_server_gives_a_row_with_no_transport_failures(eval_rar, smollm2, monkeypatch, tmp_path):
    monkeypatch.setenv("CONVREC_TEST_LLM_KEY", smollm2.http_api_key)
    out = tmp_path / "result.json"
    run = eval_rar(f"llm.base_url={smollm2.http_base_url}", "llm.api_key_env=CONVREC_TEST_LLM_KEY",
                   "llm.model=smollm2-135m", json_out=out)
    assert run.rc == 0 and "llm transport fail" in run.out
    stats = json.loads(out.read_text())["config"]["run"]
    assert stats["llm_failed_calls"] == 0 and stats["llm_transport_failure_share"] == 0.0
    assert stats["llm_calls"] == 6 and stats["fallbacks"] == 0
