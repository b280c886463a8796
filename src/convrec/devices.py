"""Where the heavy parts run: a torch device for training and text encoding, and llama.cpp's GPU layers.

Everything runs on the CPU unless a setting asks for a GPU (``device = "cuda"`` or ``"auto"`` for torch,
``llm.local.n_gpu_layers`` for llama.cpp). A GPU that is asked for but absent is a :class:`ConfigError` that
says what this machine has, before any work starts, not a CUDA traceback minutes into a run. Results trained
on a GPU are moved back to the CPU, where convrec evaluates and serves them; floats differ from a CPU run in
the last bits, so compare the two with paired differences, not for equality.

This module sits at the bottom of the imports (beside ``errors``); torch and xllamacpp are imported only when
a setting is resolved.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from convrec.errors import ConfigError

if TYPE_CHECKING:
    import torch

DEVICE_HELP = "'cpu' (the default), 'cuda' or 'cuda:N' (fails when torch sees no GPU), or 'auto' (a GPU if any)"


def torch_device(setting: str | None, what: str = "device") -> torch.device:
    """The torch device ``setting`` names (None: the CPU). ``what`` names the setting in the error."""
    import torch

    setting = (setting or "cpu").strip().lower()
    if setting == "cpu":
        return torch.device("cpu")
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if setting == "cuda" or setting.startswith("cuda:"):
        if not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
            raise ConfigError(f"{what} = {setting!r}, but torch {torch.__version__} ({build}) sees no GPU here",
                              hint="use 'cpu' or 'auto', or install a CUDA build of torch on a machine with a GPU")
        index = setting.partition(":")[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise ConfigError(f"{what} = {setting!r}: this machine has {torch.cuda.device_count()} GPU(s), "
                              f"numbered from 0")
        return torch.device(setting)
    raise ConfigError(f"{what} = {setting!r} is not a device: expected {DEVICE_HELP}")


def llama_gpu_devices() -> list[str]:
    """The GPU devices the installed llama.cpp build (xllamacpp) can offload layers to; empty on a CPU build."""
    import xllamacpp

    return [f"{d['name']} ({d['description']})" for d in xllamacpp.get_device_info()
            if d["type"] != xllamacpp.ggml_backend_dev_type.GGML_BACKEND_DEVICE_TYPE_CPU]


def check_llama_gpu_layers(n_gpu_layers: int) -> None:
    """Refuse GPU layers when the llama.cpp build has no GPU backend (it would silently run on the CPU)."""
    if n_gpu_layers != 0 and not llama_gpu_devices():
        raise ConfigError(f"llm.local.n_gpu_layers = {n_gpu_layers}, but the installed llama.cpp (xllamacpp) has no "
                          "GPU backend: it would run on the CPU anyway",
                          hint="set n_gpu_layers = 0, or install a CUDA build of xllamacpp (see docs/distributed.md)")


THREADS_ENV = "CONVREC_MAX_THREADS"


def cpu_threads(requested: int | None = None) -> int:
    """Threads for a CPU-bound part: ``requested``, else every core; never more than ``$CONVREC_MAX_THREADS``
    when it is set (several convrec processes sharing a machine, e.g. the test suite on two workers:
    oversubscribed torch and llama.cpp threads spin-wait and run several times slower)."""
    import os

    threads = requested or os.cpu_count() or 1
    cap = os.environ.get(THREADS_ENV, "").strip()
    if cap:
        if not cap.isdigit() or int(cap) < 1:
            raise ConfigError(f"${THREADS_ENV} = {cap!r}: expected a whole number of threads, at least 1")
        threads = min(threads, int(cap))
    return threads
