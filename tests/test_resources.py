"""Shared resources injected into components (issue 14, item 2): :class:`convrec.resources.Resources` is the one
place that reads ``CONVREC_CACHE_DIR`` / ``CONVREC_DATA_DIR``; recommenders, rar, the harness and the chat
engine built from one ``Resources`` share one text encoder per encoder config and one LLM client per LLM
config, safely from many threads, and ``close()`` closes the clients.

The encoder is the real offline MiniLM, on the shared 40-item world (tests/worlds.py). The sharing of LLM
clients is shown with the ``openai`` backend, whose client contacts nothing until asked (none is asked
here); loading and closing a real model once from many threads with the local SmolLM2 (marked slow)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import convrec.llm.factory
from convrec.evaluate.harness import evaluate_recommender
from convrec.evaluate.protocol import Protocol
from convrec.llm import ChatRequest, LLMConfig, LLMError, LocalOptions
from convrec.llm.models import default_models_dir
from convrec.rerank.pipeline import default_llm_cache, with_default_cache
from convrec.resources import Resources
from convrec.retrieval import build_recommender
from convrec.serve.build import ChatConfig, build_engine
from convrec.text.encoder import EncoderConfig, default_cache_dir

# Never contacted: building an openai-backend client makes no request.
SERVER = LLMConfig(backend="openai", model="some-model", base_url="http://127.0.0.1:9/v1")
SMOLLM2 = LLMConfig(model="smollm2-135m", max_retries=0, local=LocalOptions(n_ctx=512, n_threads=1))


@pytest.fixture
def resources(tmp_path: Path):
    with Resources(tmp_path / "cache", tmp_path / "data") as shared:
        yield shared


def test_from_env_reads_the_two_variables_and_given_folders_win(monkeypatch, tmp_path):
    monkeypatch.setenv("CONVREC_CACHE_DIR", str(tmp_path / "c"))
    monkeypatch.setenv("CONVREC_DATA_DIR", str(tmp_path / "d"))
    found = Resources.from_env()
    assert (found.cache_dir, found.data_dir) == (tmp_path / "c", tmp_path / "d")
    assert Resources.from_env(data_dir="elsewhere").data_dir == Path("elsewhere")
    # The defaults elsewhere in the package are this one reading.
    assert default_cache_dir() == tmp_path / "c" and default_models_dir() == tmp_path / "c" / "models"
    assert default_llm_cache() == tmp_path / "c" / "llm" / "responses.sqlite"
    monkeypatch.delenv("CONVREC_CACHE_DIR")
    monkeypatch.delenv("CONVREC_DATA_DIR")
    assert Resources.from_env().cache_dir == Path.home() / ".cache" / "convrec"
    assert Resources.from_env().data_dir == Path("data")


def test_two_recommenders_built_from_one_resources_share_one_text_encoder(resources, test_world):
    catalog = test_world.catalog
    dense = build_recommender("dense-text", catalog, {"popularity_weight": 0.0}, resources=resources)
    lrurec = build_recommender("lrurec-text", catalog, resources=resources)
    assert dense.encoder is lrurec.encoder is resources.encoder(EncoderConfig())
    assert lrurec.cache_dir == dense.cache_root == resources.cache_dir
    other = build_recommender("dense-text", catalog, {"encoder": {"max_seq_length": 64}}, resources=resources)
    assert other.encoder is not dense.encoder and other.encoder.config.max_seq_length == 64
    # Built without resources, each takes its own from the environment, as before.
    apart = build_recommender("dense-text", catalog), build_recommender("dense-text", catalog)
    assert apart[0].encoder is not apart[1].encoder and apart[0].encoder is not dense.encoder
    # A recommender that takes no resources is built as before.
    assert not build_recommender("itemknn", catalog, resources=resources).uses_resources


def test_the_harness_evaluates_with_the_resources_encoder_and_cache(resources, test_world):
    shared = resources.encoder(EncoderConfig())
    (result,) = evaluate_recommender(test_world.dataset(), "dense-text", {"popularity_weight": 0.0}, "test",
                                     [Protocol.STANDARD], progress=False, resources=resources)
    assert shared._model is not None  # the shared encoder did the encoding
    assert len(list((resources.cache_dir / "embeddings").glob("items-*.npz"))) == 1
    assert result["n_samples"] == 33


def test_many_threads_asking_at_once_get_one_encoder_and_load_its_model_once(resources, monkeypatch):
    import sentence_transformers

    loads = []
    real = sentence_transformers.SentenceTransformer

    def counted(*args, **kwargs):
        loads.append(threading.get_ident())
        return real(*args, **kwargs)

    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", counted)
    config = EncoderConfig(batch_size=8)
    with ThreadPoolExecutor(8) as pool:
        encoders = list(pool.map(lambda _: resources.encoder(config), range(8)))
    assert all(encoder is encoders[0] for encoder in encoders)
    with ThreadPoolExecutor(4) as pool:
        dims = list(pool.map(lambda _: encoders[0].dim, range(4)))
    assert dims == [384] * 4 and len(loads) == 1


def test_one_client_per_llm_config_and_close_closes_them(tmp_path):
    resources = Resources(tmp_path / "cache", tmp_path / "data")
    first = resources.llm(SERVER)
    assert resources.llm(SERVER) is first
    cached = resources.llm(with_default_cache(SERVER, True, resources))
    assert cached is not first and cached.cache is not None
    assert (tmp_path / "cache" / "llm" / "responses.sqlite").exists()
    resources.close()
    with pytest.raises(RuntimeError, match="closed"):
        resources.llm(SERVER)


def test_rar_and_the_chat_engine_take_the_llm_and_the_encoder_from_resources(resources, test_world):
    dataset = test_world.dataset()
    options = {"retriever": "dense-text", "retriever_options": {"popularity_weight": 0.0}, "k": 3,
               "fusion_weight": 0.5, "llm": SERVER.model_dump()}
    first = build_recommender("rar", dataset.catalog, options, resources=resources)
    second = build_recommender("rar", dataset.catalog, options, resources=resources)
    for rar in (first, second):
        rar.fit(dataset.split("train"), None)  # a fixed fusion weight: no LLM call
    assert first.llm_ is second.llm_ is resources.llm(with_default_cache(SERVER, True, resources))
    assert first.retriever_.encoder is second.retriever_.encoder is resources.encoder(EncoderConfig())
    engine = build_engine(dataset, ChatConfig(retriever="dense-text", llm=SERVER), resources=resources)
    assert engine.reranker.llm is engine.writer.llm is resources.llm(SERVER)
    assert engine.retriever.encoder is resources.encoder(EncoderConfig())


@pytest.mark.slow
def test_a_local_model_is_loaded_once_for_many_threads_and_closed_with_the_resources(tmp_path, monkeypatch):
    builds = []
    real = convrec.llm.factory.build_llm

    def counted(config):
        builds.append(config)
        return real(config)

    monkeypatch.setattr(convrec.llm.factory, "build_llm", counted)
    resources = Resources(tmp_path / "cache", tmp_path / "data")
    with ThreadPoolExecutor(4) as pool:
        clients = list(pool.map(lambda _: resources.llm(SMOLLM2), range(4)))
    assert all(client is clients[0] for client in clients) and len(builds) == 1
    assert builds[0].local.models_dir == tmp_path / "cache" / "models"  # assembled models go to its cache
    request = ChatRequest.from_prompt("Is Alien a horror film? Answer Yes or No.", max_tokens=1)
    assert clients[0].complete(request).text
    resources.close()
    with pytest.raises(LLMError, match="closed"):
        clients[0].complete(request)

