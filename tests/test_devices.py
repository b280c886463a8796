"""Device settings: the CPU by default; a GPU that is asked for but absent is a clear ConfigError before any work
(torch and llama.cpp alike); where a GPU is present (a lent GPU machine), lrurec trains there, comes back to
the CPU, and matches a CPU run's validation Recall@10 closely; llama.cpp offloads its layers and answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from convrec.devices import check_llama_gpu_layers, llama_gpu_devices, torch_device
from convrec.errors import ConfigError
from convrec.retrieval import build_recommender
from worlds import FAST_LRUREC

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU here (torch sees none)")
no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here")


def test_cpu_is_the_default_and_auto_falls_back_to_it():
    assert torch_device(None) == torch.device("cpu") == torch_device("CPU ")
    assert torch_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize("setting", ["gpu", "cuda:x", "tpu", ""])
def test_a_setting_that_is_no_device_is_refused_with_what_is_expected(setting):
    if setting == "":
        assert torch_device(setting) == torch.device("cpu")  # empty reads as unset
        return
    with pytest.raises(ConfigError, match="expected 'cpu'|numbered from 0|sees no GPU"):
        torch_device(setting, "train.device")


@no_gpu
def test_an_absent_gpu_is_refused_before_training_starts(test_world, tmp_path):
    with pytest.raises(ConfigError, match=r"train.device = 'cuda'.*sees no GPU"):
        build_recommender("lrurec", test_world.catalog,
                          {**FAST_LRUREC, "train": {**FAST_LRUREC["train"], "device": "cuda"}}).fit(test_world.train)
    assert not any(tmp_path.iterdir())


def test_llama_gpu_layers_are_off_by_default_and_refused_on_a_cpu_build():
    from convrec.llm.config import LocalOptions

    assert LocalOptions().n_gpu_layers == 0  # llama.cpp's own default (-1) would offload on a GPU build
    check_llama_gpu_layers(0)
    if llama_gpu_devices():
        pytest.skip("this llama.cpp build has a GPU backend")
    with pytest.raises(ConfigError, match="no GPU backend"):
        check_llama_gpu_layers(-1)


def test_the_train_command_refuses_an_absent_gpu_in_one_line(tmp_path, capsys):
    from convrec.cli.main import main

    if torch.cuda.is_available():
        pytest.skip("a GPU is here")
    code = main(["train", "--dataset", "redial", "--recommender", "lrurec", "--out", str(tmp_path / "run"),
                 "--device", "cuda"])
    err = capsys.readouterr().err
    assert code == 2 and "--device = 'cuda'" in err and "Traceback" not in err


@needs_gpu
def test_lrurec_trains_on_the_gpu_and_comes_back_to_the_cpu(test_world, tmp_path):
    options = {**FAST_LRUREC, "text_init": True, "cache_dir": str(tmp_path)}
    cpu = build_recommender("lrurec-text", test_world.catalog, options)
    cpu.fit(test_world.train, test_world.valid)
    gpu = build_recommender("lrurec-text", test_world.catalog,
                            {**options, "train": {**FAST_LRUREC["train"], "device": "cuda"},
                             "encoder": {"device": "cuda"}, "run_dir": str(tmp_path / "run")})
    gpu.fit(test_world.train, test_world.valid)
    assert next(gpu.network.parameters()).device.type == "cpu"
    assert (tmp_path / "run" / "model.safetensors").exists()
    assert abs(gpu.summary["best_valid_recall@10"] - cpu.summary["best_valid_recall@10"]) <= 0.1
    scores = gpu.retrieve(test_world.valid.selection_samples[:4], 5)
    assert all(np.isfinite(c.scores).all() for c in scores)


@needs_gpu
def test_llama_cpp_offloads_layers_when_its_build_has_a_gpu():
    from convrec.llm.config import LocalOptions
    from convrec.llm.local import LocalLLM
    from convrec.llm.models import resolve_local_model
    from convrec.llm.types import ChatMessage, ChatRequest

    if not llama_gpu_devices():
        pytest.skip("torch sees a GPU but this llama.cpp (xllamacpp) build has no GPU backend")
    with LocalLLM(resolve_local_model("smollm2-135m"), LocalOptions(n_ctx=512, n_gpu_layers=-1)) as llm:
        answer = llm.complete(ChatRequest(messages=(ChatMessage(role="user", content="Say yes."),),
                                                max_tokens=4))
    assert answer.text.strip()


def test_the_thread_cap_limits_every_default_and_a_bad_one_is_refused(monkeypatch):
    import os

    from convrec.devices import cpu_threads
    from convrec.llm.config import default_threads

    monkeypatch.delenv("CONVREC_MAX_THREADS", raising=False)
    assert cpu_threads() == (os.cpu_count() or 1) and cpu_threads(3) == 3
    monkeypatch.setenv("CONVREC_MAX_THREADS", "1")
    assert cpu_threads() == cpu_threads(8) == default_threads() == 1
    monkeypatch.setenv("CONVREC_MAX_THREADS", "two")
    with pytest.raises(ConfigError, match="CONVREC_MAX_THREADS"):
        cpu_threads()
