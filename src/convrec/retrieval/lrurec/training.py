"""Training LRURec on a dataset's dialogues: full-softmax cross-entropy, AdamW, early stopping on validation
Recall@10, atomic checkpoints and resumption after an interruption.

A run directory holds:
- ``config.json``: everything needed to rebuild the model (model + training options, catalogue hash, data hash);
- ``model.safetensors``: the best weights so far (by validation Recall@10);
- ``state.pt``: the last epoch's model, optimiser, RNG states and history, to resume from;
- ``history.json`` and ``curve.png``: loss and validation metrics per epoch.
"""

from __future__ import annotations

import json
import logging
import pickle
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch.nn import functional as F
from tqdm import tqdm

from convrec.catalog.items import Catalog
from convrec.data.model import RecSample
from convrec.devices import DEVICE_HELP, torch_device
from convrec.errors import CheckpointError
from convrec.evaluate.metrics import recall_and_ndcg_at
from convrec.io import DataError, atomic_write, write_json
from convrec.retrieval.lrurec.network import ConversationalLRURec, mentioned_so_far
from convrec.retrieval.lrurec.sequences import PAD, SequenceExample, left_pad

log = logging.getLogger(__name__)


class TrainOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(60, ge=0, description="upper bound; early stopping usually ends sooner")
    batch_size: int = Field(128, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    grad_clip: float = Field(5.0, gt=0)
    patience: int = Field(5, ge=1, description="epochs without a better validation Recall@10 before stopping")
    seed: int = 0
    max_len: int = Field(50, ge=2, description="most recent items kept per training sequence")
    threads: int | None = Field(None, ge=1, description="torch threads (default: all cores)")
    device: str = Field("cpu", description="where to train: " + DEVICE_HELP + "; the trained model comes back "
                        "to the CPU, where it is evaluated and served")
    pretrain_epochs: int = Field(0, ge=0, description="epochs on the pre-training sequences first (MovieLens)")
    turn_aligned: bool = Field(False, description="predict every item of a turn from the state before that turn, "
                               "as the test protocol does (False: plain next-item, the later items of a turn "
                               "see the earlier ones)")
    seeker_targets: bool = Field(True, description="also learn to predict the items the seeker names (False: "
                                 "only recommender turns are targets, as in the test protocol; the seeker's "
                                 "items stay in the input)")


# The copy bonus starts at 0 and should reach a few units: Adam moves a parameter by about lr per step, so at
# 1e-3 that would take dozens of epochs.
COPY_LR_FACTOR = 20.0

QueryFn = Callable[[SequenceExample], np.ndarray | None]  # (n_targets, Dq) text vectors, or None


# Options that may change between a run and its resumption without changing what is being trained.
_RESUMABLE_CHANGES = {"epochs", "patience", "threads", "device"}
# Options that say where a run lives or how the trained model is searched (index), not what is trained.
_LOCATION_OPTIONS = {"run_dir", "checkpoint", "cache_dir", "index"}


def _resume_key(run_config: dict[str, Any] | None) -> dict[str, Any] | None:
    if run_config is None:
        return None
    options = {k: v for k, v in run_config.get("options", {}).items() if k not in _LOCATION_OPTIONS}
    if isinstance(options.get("train"), dict):
        options["train"] = {k: v for k, v in options["train"].items() if k not in _RESUMABLE_CHANGES}
    return {**run_config, "options": options}


class RunMismatchError(DataError):
    """A run directory is resumed with options or data other than those it was started with."""


class EpochStats(BaseModel):
    epoch: int
    phase: str
    loss: float
    valid_recall_at_10: float | None = None
    valid_ndcg_at_10: float | None = None
    seconds: float


def _on_cpu(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in state.items()}


def _rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():  # dropout on a GPU draws from the GPU's generators
        state["cuda"] = [s.cpu() for s in torch.cuda.get_rng_state_all()]
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"].cpu())  # loaded with map_location, it may sit on a GPU
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_batch(examples: Sequence[SequenceExample], query_fn: QueryFn | None, query_dim: int | None,
               turn_aligned: bool = False, seeker_targets: bool = True):
    """Left-padded inputs (B, L), targets (B, L) with PAD where there is nothing to predict, queries (B, L, Dq),
    and sources (B, L): the input position whose state predicts each column (itself, or with ``turn_aligned``
    the position before the first item of the target's turn)."""
    inputs = left_pad([e.tokens[:-1] for e in examples])
    targets = left_pad([e.tokens[1:] for e in examples])
    width = inputs.shape[1]
    sources = torch.arange(width).repeat(len(examples), 1)
    if not seeker_targets:
        for row, example in enumerate(examples):
            roles = [example.dialogue.turns[t].role for t in example.target_turns]
            seeker = torch.tensor([role == "seeker" for role in roles], dtype=torch.bool)
            targets[row, width - len(roles) :][seeker] = PAD
    if turn_aligned:
        for row, example in enumerate(examples):
            offset = width - len(example.target_turns)
            sources[row, offset:] = torch.from_numpy(example.turn_sources + offset)
    queries = None
    if query_fn is not None and query_dim:
        queries = torch.zeros(len(examples), inputs.shape[1], query_dim)
        for row, example in enumerate(examples):
            vectors = query_fn(example)
            if vectors is not None:
                queries[row, inputs.shape[1] - len(vectors) :] = torch.from_numpy(vectors)
    return inputs, targets, queries, sources


class Trainer:
    def __init__(self, network: ConversationalLRURec, options: TrainOptions, run_dir: Path | None,
                 run_config: dict[str, Any]):
        self.network = network
        self.options = options
        self.device = torch_device(options.device, "train.device")
        network.to(self.device)
        self.run_dir = run_dir
        self.run_config = run_config
        self.optimizer = torch.optim.AdamW(network.lru.param_groups(options.weight_decay)
                                           + ([{"params": list(network.query_proj.parameters()),
                                                "weight_decay": options.weight_decay}]
                                              if network.query_proj is not None else [])
                                           + [{"params": network.match_parameters(), "weight_decay": 0.0}]
                                           + ([{"params": [network.copy_scale], "weight_decay": 0.0,
                                                "lr": options.lr * COPY_LR_FACTOR}]
                                              if network.copy_scale is not None else []),
                                           lr=options.lr, eps=1e-9)
        self.history: list[EpochStats] = []
        self.epoch = 0
        self.best = -1.0
        self.best_ndcg = -1.0
        self.best_epoch = 0
        self.finished = False  # early-stopped: running the command again changes nothing (more epochs would)

    # -- checkpoints -------------------------------------------------------------------------------------------

    def _save_state(self) -> None:
        if self.run_dir is None:
            return
        state = {"model": _on_cpu(self.network.state_dict()), "optimizer": self.optimizer.state_dict(), "epoch": self.epoch,
                 "best": self.best, "best_ndcg": self.best_ndcg, "best_epoch": self.best_epoch, "rng": _rng_state(),
                 "history": [h.model_dump() for h in self.history], "finished": self.finished,
                 "run_config": self.run_config}
        with atomic_write(self.run_dir / "state.pt", "wb") as handle:
            torch.save(state, handle)
        write_json(self.run_dir / "history.json", [h.model_dump() for h in self.history])

    def _save_best(self) -> None:
        if self.run_dir is None:
            self._best_weights = {k: v.detach().clone() for k, v in self.network.state_dict().items()}
            return
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.network.state_dict().items()}
        with atomic_write(self.run_dir / "model.safetensors", "wb") as handle:
            handle.write(save(tensors))
        write_json(self.run_dir / "config.json", {**self.run_config, "best_epoch": self.best_epoch,
                                                  "best_valid_recall@10": self.best})

    def try_resume(self) -> bool:
        if self.run_dir is None or not (self.run_dir / "state.pt").exists():
            return False
        path = self.run_dir / "state.pt"
        try:
            # map_location: a run started on a GPU resumes on the CPU, and the other way round
            state = torch.load(path, weights_only=False, map_location=self.device)
        except (RuntimeError, EOFError, pickle.UnpicklingError) as err:  # torch's and pickle's "not a whole file"
            raise CheckpointError(f"{path}: the saved training state cannot be read ({err}); it is damaged",
                                  hint=f"delete {path} to train this run from the start") from None
        if _resume_key(state.get("run_config")) != _resume_key(self.run_config):
            raise RunMismatchError(
                f"{self.run_dir} holds a run with other options or data; resume it with the same options, "
                f"or train into a new --out (or delete {self.run_dir / 'state.pt'})"
            )
        self.network.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.best, self.best_epoch = state["epoch"], state["best"], state["best_epoch"]
        self.best_ndcg = state.get("best_ndcg", -1.0)
        self.finished = bool(state.get("finished", False))
        self.history = [EpochStats(**h) for h in state["history"]]
        _set_rng_state(state["rng"])
        log.info("resumed %s at epoch %d (best valid recall@10 %.4f)", self.run_dir, self.epoch, self.best)
        return True

    def load_best(self) -> None:
        if self.run_dir is None:
            if getattr(self, "_best_weights", None) is not None:
                self.network.load_state_dict(self._best_weights)
            return
        if (self.run_dir / "model.safetensors").exists():
            self.network.load_state_dict(load_file(self.run_dir / "model.safetensors"))

    # -- training ----------------------------------------------------------------------------------------------

    def _run_epoch(self, examples: list[SequenceExample], query_fn: QueryFn | None, query_dim: int | None,
                   description: str) -> float:
        self.network.train()
        order = list(range(len(examples)))
        random.shuffle(order)
        # Batches of similar lengths waste less padding; shuffled within and across buckets.
        chunk = self.options.batch_size * 32
        batches = []
        for start in range(0, len(order), chunk):
            part = sorted(order[start : start + chunk], key=lambda i: len(examples[i].tokens))
            batches += [part[i : i + self.options.batch_size] for i in range(0, len(part), self.options.batch_size)]
        random.shuffle(batches)
        total, count = 0.0, 0
        bar = tqdm(batches, desc=description, unit="batch", leave=False)
        for batch in bar:
            inputs, targets, queries, sources = (
                None if t is None else t.to(self.device)
                for t in make_batch([examples[i] for i in batch], query_fn, query_dim, self.options.turn_aligned,
                                    self.options.seeker_targets))
            n = int((targets != PAD).sum())
            if n == 0:  # only seeker targets, masked out
                continue
            hidden = self.network.hidden(inputs, queries)
            if self.options.turn_aligned:
                hidden = hidden.gather(1, sources[..., None].expand_as(hidden))
            mentioned = None
            if self.network.copy_scale is not None:
                mentioned = mentioned_so_far(inputs, sources, self.network.token_map.model_items + 1)
            logits = self.network.logits(hidden, queries, mentioned)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=PAD)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), self.options.grad_clip)
            self.optimizer.step()
            total += loss.item() * n
            count += n
            bar.set_postfix(loss=f"{total / max(count, 1):.3f}")
        return total / max(count, 1)

    def fit(self, train: list[SequenceExample], validate: Callable[[], tuple[float, float]],
            query_fn: QueryFn | None = None, query_dim: int | None = None,
            pretrain: list[SequenceExample] | None = None) -> list[EpochStats]:
        resumed = self.try_resume()
        if not resumed:
            seed_everything(self.options.seed)
        pretrain_epochs = self.options.pretrain_epochs if pretrain else 0
        total_epochs = pretrain_epochs + self.options.epochs
        while self.epoch < total_epochs and not self.finished:
            started = time.perf_counter()
            in_pretrain = self.epoch < pretrain_epochs
            phase = "pretrain" if in_pretrain else "train"
            loss = self._run_epoch(pretrain if in_pretrain else train, None if in_pretrain else query_fn, query_dim,
                                   f"epoch {self.epoch + 1}/{total_epochs} ({phase})")
            recall, ndcg = validate()
            self.epoch += 1
            stats = EpochStats(epoch=self.epoch, phase=phase, loss=loss, valid_recall_at_10=recall,
                               valid_ndcg_at_10=ndcg, seconds=time.perf_counter() - started)
            self.history.append(stats)
            # Recall@10 decides; NDCG@10 breaks its ties (small catalogues saturate Recall@10).
            improved = not in_pretrain and (recall, ndcg) > (self.best, self.best_ndcg)
            if improved:
                self.best, self.best_ndcg, self.best_epoch = recall, ndcg, self.epoch
                self._save_best()
            log.info("epoch %d %s loss %.4f valid R@10 %.4f N@10 %.4f%s (%.1fs)", self.epoch, phase, loss, recall,
                     ndcg, " *" if improved else "", stats.seconds)
            if not in_pretrain and self.epoch - self.best_epoch >= self.options.patience:
                log.info("early stop: no better validation Recall@10 for %d epochs", self.options.patience)
                self.finished = True
            self._save_state()
        self.load_best()
        self.network.to("cpu")
        if self.run_dir is not None:
            plot_curves(self.history, self.run_dir / "curve.png")
        return self.history


def evaluate_samples(network: ConversationalLRURec, samples: Sequence[RecSample], tokens_fn,
                     queries: torch.Tensor | None, catalog: Catalog, batch_size: int = 512) -> tuple[float, float]:
    """Mean validation Recall@10 and NDCG@10 over ``samples`` (standard protocol, full catalogue), as reported:
    ties broken at random in expectation."""
    if not samples:
        return 0.0, 0.0
    network.eval()
    weights = next(iter(network.parameters()), None) if hasattr(network, "parameters") else None
    device = weights.device if weights is not None else torch.device("cpu")  # a GPU while training there
    hits, ndcgs = [], []
    with torch.no_grad():
        for start in range(0, len(samples), batch_size):
            batch = samples[start : start + batch_size]
            batch_queries = None if queries is None else queries[start : start + len(batch)].to(device)
            scores = network.catalogue_scores(left_pad([tokens_fn(s) for s in batch]).to(device), batch_queries)
            hit, ndcg = recall_and_ndcg_at(scores.cpu().numpy(), np.asarray(catalog.indices(s.target for s in batch)))
            hits.append(hit)
            ndcgs.append(ndcg)
    return float(np.concatenate(hits).mean()), float(np.concatenate(ndcgs).mean())


def plot_curves(history: Sequence[EpochStats], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h.epoch for h in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    left.plot(epochs, [h.loss for h in history], marker=".")
    left.set_xlabel("epoch")
    left.set_ylabel("training loss (cross-entropy)")
    right.plot(epochs, [h.valid_recall_at_10 for h in history], marker=".", label="Recall@10")
    right.plot(epochs, [h.valid_ndcg_at_10 for h in history], marker=".", label="NDCG@10")
    pre = [h.epoch for h in history if h.phase == "pretrain"]
    if pre:
        for ax in (left, right):
            ax.axvspan(0.5, max(pre) + 0.5, color="0.9", label="pre-training")
    right.set_xlabel("epoch")
    right.set_ylabel("validation (standard protocol)")
    right.legend(fontsize=8)
    fig.tight_layout()
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=110)
    plt.close(fig)


RUN_CONFIG = "config.json"
WEIGHTS = "model.safetensors"
# What a run's config.json must hold to rebuild and check its network (written by Trainer and save_checkpoint).
_RUN_CONFIG_FIELDS = {"recommender": str, "options": dict, "catalog": str, "catalog_hash": str}
_WHAT_A_RUN_IS = "a checkpoint is the --out folder of `convrec train` or `convrec align`"


def read_run_config(run_dir: Path) -> dict[str, Any]:
    """The config.json of a finished run dir, checked: a path that is not a loadable run (missing, a file, an
    empty or other folder, a damaged config.json, no weights) is a CheckpointError that names it and says why."""
    run_dir = Path(run_dir)
    path = run_dir / RUN_CONFIG
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        raise CheckpointError(f"{run_dir}: {_why_not_a_run(run_dir)}", hint=_WHAT_A_RUN_IS) from None
    except (OSError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path}: cannot be read ({err})") from None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: not valid JSON ({err.msg} at line {err.lineno} column {err.colno}): the "
                              "run's config is damaged", hint="train the run again") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(config).__name__}")
    wrong = [f"'{key}' ({kind.__name__})" for key, kind in _RUN_CONFIG_FIELDS.items()
             if not isinstance(config.get(key), kind)]
    if wrong:
        raise CheckpointError(f"{path}: missing or of the wrong type: {', '.join(wrong)}; not the config of a "
                              "`convrec train` run", hint=_WHAT_A_RUN_IS)
    if not (run_dir / WEIGHTS).is_file():
        raise CheckpointError(f"{run_dir}: no {WEIGHTS} beside its {RUN_CONFIG}: the run's weights are missing",
                              hint="train the run again (its config.json alone cannot be loaded)")
    return config


def _why_not_a_run(run_dir: Path) -> str:
    if run_dir.is_file():
        return f"is a file, not a run folder (holding {RUN_CONFIG} and {WEIGHTS})"
    if not run_dir.is_dir():
        return "no such folder"
    if (run_dir / "build.json").exists():
        return "is a processed dataset folder, not a checkpoint"
    if not any(run_dir.iterdir()):
        return "is an empty folder, not a checkpoint"
    return f"no {RUN_CONFIG}: not a finished `convrec train` run (an interrupted one resumes with the same command)"


def read_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    """The run's model.safetensors; a truncated or damaged file is a CheckpointError naming it."""
    path = Path(run_dir) / WEIGHTS
    try:
        return load_file(path)
    except SafetensorError as err:
        raise CheckpointError(f"{path}: not a complete safetensors file ({err}); it was cut short or damaged",
                              hint="train the run again") from None
    except OSError as err:
        raise CheckpointError(f"{path}: cannot be read ({err})") from None
