"""BRIDGE: one dialogue / item encoder shared by several domains (movies, books), with per-domain gates and an
adversarial domain discriminator. ``bridge`` in the registry.

**What it reads.** A dialogue context is three offline MiniLM vectors: the text so far (its last
``context_chars``), the mean of the vectors of the items mentioned in it, and the last one mentioned. An item is
its catalogue text's vector. Neither depends on the domain's item ids, so the same encoder can read a book
conversation after training on movie conversations.

**The network.** Two shared towers (context, item), each two layers wide ``hidden``; a per-domain gate scales
each tower's output unit by unit (``2 * sigmoid(logit)``, 1 at the start), and a per-domain item bias is learned
for the items of a domain it trains on. Scores are cosines times a learned scale (a softmax over the domain's
whole catalogue is the loss). A domain never trained on (``own_data = false``: zero-shot) reads with the mean of
the trained gates and no item bias.

**The discriminator.** With two or more training domains, an MLP guesses the domain of each context from the
shared tower's output (before its gate) through a gradient-reversal layer: its loss, times ``adversarial``,
pushes the tower towards a representation the discriminator cannot tell apart (Ganin and Lempitsky, 2015). The
reported accuracy of the discriminator says how far that got.

**Training.** The train splits of this dataset (unless ``own_data = false``) and of each dataset in ``also``;
batches are drawn from one domain at a time, all domains' batches shuffled together each epoch: every sample
once (``mixing = "proportional"``, a large domain dominates), or as many batches of each domain as the smallest
domain has (``"equal"``). The epoch kept is the best by validation Recall@10 of this
dataset, or of the ``also`` datasets when zero-shot (this dataset's dialogues are then never read, not even to
stop). ``run_dir`` keeps the weights and report (a finished run with the same options is loaded, not trained
again); ``checkpoint`` loads one.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field
from torch import nn

from convrec.catalog.items import Catalog
from convrec.data.dataset import CRSDataset, Split
from convrec.data.model import ContextView
from convrec.errors import ConfigError, ConvrecError
from convrec.evaluate.metrics import recall_and_ndcg_at
from convrec.io import atomic_write, write_json
from convrec.resources import Resources
from convrec.retrieval.base import Recommender, RecommenderConfig, register
from convrec.text.encoder import EncoderConfig, TextEncoder, context_cache_file, item_cache_file

log = logging.getLogger("convrec.agent.bridge")

WEIGHTS_FILE = "bridge.pt"
RUN_FORMAT = 1


class BridgeOptions(RecommenderConfig):
    also: tuple[str, ...] = Field((), description="other datasets whose train splits join training (e.g. "
                                  "[\"redial\"] for movies + books)")
    own_data: bool = Field(True, description="false = zero-shot: trained on the `also` datasets only, this "
                           "dataset's dialogues never read")
    # 0 chosen on validation: 0.1 lowered Recall@10 on both transfers measured (books with ReDial 0.663 -> 0.636,
    # INSPIRED with ReDial 0.259 -> 0.252; docs/results/bridge.md)
    adversarial: float = Field(0.0, ge=0.0, description="weight of the domain discriminator's loss, reversed into "
                               "the shared encoder (0: no discriminator); used with two or more training domains")
    gates: bool = Field(True, description="per-domain gates on the shared towers (false: one encoder for all)")
    # validation prefers equal for books with ReDial (0.686 vs 0.663) and proportional for INSPIRED with ReDial
    # (0.259 vs 0.236): no one default wins, so it stays the plain one
    mixing: Literal["proportional", "equal"] = Field(
        "proportional", description="how an epoch mixes the training domains: proportional = every sample of "
        "every domain once (a large domain dominates); equal = as many batches of each domain as the smallest "
        "has, drawn afresh each epoch (each domain weighs the same)")
    hidden: int = Field(256, ge=8, le=2048, description="width of the shared towers")
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    epochs: int = Field(30, ge=1, le=500, description="at most this many passes over the training samples")
    patience: int = Field(4, ge=1, description="stop after this many epochs without a better validation Recall@10")
    batch_size: int = Field(256, ge=8)
    learning_rate: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-5, ge=0)
    context_chars: int = Field(600, ge=50, description="characters of dialogue the context vector reads")
    encoder: EncoderConfig = EncoderConfig()
    seed: int = 0
    run_dir: str | None = Field(None, description="where training writes its weights and report; a finished run "
                                "with the same options is loaded instead")
    checkpoint: str | None = Field(None, description="a finished run dir to load instead of training")


class GradientReversal(torch.autograd.Function):
    """Identity forward; the gradient times -``weight`` backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: float) -> torch.Tensor:
        ctx.weight = weight
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.weight * grad, None


def tower(inputs: int, hidden: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inputs, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, hidden))


class BridgeNetwork(nn.Module):
    """The shared towers, the gates and item biases of the training domains, and the discriminator."""

    def __init__(self, context_dim: int, item_dim: int, hidden: int, domains: Sequence[str],
                 item_counts: Sequence[int], dropout: float = 0.1, gates: bool = True):
        super().__init__()
        self.domains = list(domains)
        self.use_gates = gates
        self.context = tower(context_dim, hidden, dropout)
        self.item = tower(item_dim, hidden, dropout)
        self.context_gate = nn.Parameter(torch.zeros(len(domains), hidden))
        self.item_gate = nn.Parameter(torch.zeros(len(domains), hidden))
        self.item_bias = nn.ParameterList([nn.Parameter(torch.zeros(n)) for n in item_counts])
        self.log_scale = nn.Parameter(torch.tensor(math.log(20.0)))
        self.discriminator = nn.Sequential(nn.Linear(hidden, hidden // 2), nn.GELU(),
                                           nn.Linear(hidden // 2, max(len(domains), 2)))

    def gate(self, logits: torch.Tensor, domain: str) -> torch.Tensor:
        if not self.use_gates:
            return torch.ones(logits.shape[1])
        # a domain never trained on reads with the average of the trained ones
        row = logits[self.domains.index(domain)] if domain in self.domains else logits.mean(0)
        return 2 * torch.sigmoid(row)

    def encode_contexts(self, contexts: torch.Tensor, domain: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(gated, normalised) context vectors and the shared tower's output the discriminator reads."""
        shared = self.context(contexts)
        return nn.functional.normalize(shared * self.gate(self.context_gate, domain), dim=-1), shared

    def encode_items(self, items: torch.Tensor, domain: str) -> torch.Tensor:
        return nn.functional.normalize(self.item(items) * self.gate(self.item_gate, domain), dim=-1)

    def scores(self, contexts: torch.Tensor, items: torch.Tensor, domain: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, n_items) logits over ``domain``'s catalogue and the shared context vectors."""
        context, shared = self.encode_contexts(contexts, domain)
        logits = self.log_scale.exp() * context @ self.encode_items(items, domain).T
        if domain in self.domains:
            logits = logits + self.item_bias[self.domains.index(domain)]
        return logits, shared


@dataclass
class DomainData:
    """One dataset as BRIDGE reads it: item vectors, and per split the context vectors and targets."""

    name: str
    catalog: Catalog
    items: np.ndarray  # (n_items, d)
    contexts: dict[str, np.ndarray]  # split -> (n, 3d)
    targets: dict[str, np.ndarray]  # split -> (n,)


class ContextReader:
    """Turns contexts into the vectors the context tower reads (text, mean of mentioned items, last item)."""

    def __init__(self, encoder: TextEncoder, cache_root: Path, context_chars: int):
        self.encoder, self.cache_root, self.context_chars = encoder, cache_root, context_chars

    def item_vectors(self, catalog: Catalog) -> np.ndarray:
        return self.encoder.encode_cached(catalog.texts(), item_cache_file(self.cache_root, self.encoder, catalog),
                                          progress=False)

    def read(self, samples: Sequence[ContextView], catalog: Catalog, items: np.ndarray) -> np.ndarray:
        texts = [s.context_text(max_chars=self.context_chars) for s in samples]
        text_vectors = np.zeros((len(samples), items.shape[1]), dtype=np.float32)
        written = [row for row, text in enumerate(texts) if text.strip()]
        if written:
            cache = context_cache_file(self.cache_root, self.encoder, catalog)
            text_vectors[written] = self.encoder.encode_cached([texts[r] for r in written], cache,
                                                               progress=len(written) > 1000)
        mean_items = np.zeros_like(text_vectors)
        last_item = np.zeros_like(text_vectors)
        for row, sample in enumerate(samples):
            known = [catalog.index_of[i] for i in sample.context_items if i in catalog.index_of]
            if known:
                mean_items[row] = items[known].mean(0)
                last_item[row] = items[known[-1]]
        return np.concatenate([text_vectors, mean_items, last_item], axis=1)


@register
class Bridge(Recommender):
    """HARPO's BRIDGE: a context / item encoder shared across domains (gates per domain, gradient reversal)."""

    name = "bridge"
    config_class = BridgeOptions
    config: BridgeOptions
    uses_resources = True

    def __init__(self, catalog: Catalog, config: BridgeOptions | None = None, *,
                 resources: Resources | None = None, datasets: Callable[[str], CRSDataset] | None = None):
        """``datasets`` loads the ``also`` datasets by name (default: :func:`convrec.data.load.load_dataset`,
        from the data folder)."""
        super().__init__(catalog, config)
        self.datasets = datasets
        resources = resources or Resources.from_env()
        self.reader = ContextReader(resources.encoder(self.config.encoder), resources.cache_dir,
                                    self.config.context_chars)
        self.network: BridgeNetwork | None = None
        self._items: np.ndarray | None = None
        self.domain = catalog.name
        self.report: dict[str, Any] = {}

    # -- training ------------------------------------------------------------------------------------------------
    def fit(self, train: Split, valid: Split | None = None) -> None:
        self.domain = train.dataset or self.catalog.name
        if self.config.checkpoint:
            self._load(Path(self.config.checkpoint))
            return
        run_dir = Path(self.config.run_dir) if self.config.run_dir else None
        # what the epoch is chosen on: this dataset's validation split, or the others' when zero-shot; none when
        # the harness evaluates on validation itself (then the last epoch is kept)
        select_on = ([self.domain] if valid is not None else []) if self.config.own_data else list(self.config.also)
        if run_dir is not None and self._finished_here(run_dir, select_on):
            log.info("bridge: the finished run in %s has these options: loaded", run_dir)
            self._load(run_dir)
            return
        if not self.config.own_data and not self.config.also:
            raise ConfigError("bridge: own_data = false (zero-shot) needs at least one dataset in `also`")
        if self.domain in self.config.also:
            raise ConfigError(f"bridge: `also` names {self.domain!r}, the dataset being trained on")
        domains = self._training_domains(train, valid)
        self.network, self.report = train_bridge(domains, self.config, select_on)
        if run_dir is not None:
            self._save(run_dir)

    def _training_domains(self, train: Split, valid: Split | None) -> list[DomainData]:
        from convrec.data.load import load_dataset  # the other domains' data, read only to train

        load = self.datasets or load_dataset
        domains = []
        if self.config.own_data:
            domains.append(self._domain_data(self.domain, self.catalog, {"train": train, "valid": valid}))
        for name in self.config.also:
            try:
                dataset = load(name)
            except (OSError, ConvrecError) as err:
                raise ConfigError(f"bridge: dataset {name!r} in `also` cannot be loaded: {err}") from None
            domains.append(self._domain_data(name, dataset.catalog, {"train": dataset.split("train"),
                                                                     "valid": dataset.split("valid")}))
        return domains

    def _domain_data(self, name: str, catalog: Catalog, splits: dict[str, Split | None]) -> DomainData:
        items = self.reader.item_vectors(catalog)
        contexts, targets = {}, {}
        for split_name, split in splits.items():
            if split is None:
                continue
            samples = split.samples if split_name == "train" else split.selection_samples
            samples = [s for s in samples if s.target in catalog.index_of]
            contexts[split_name] = self.reader.read([s.view() for s in samples], catalog, items)
            targets[split_name] = np.asarray(catalog.indices(s.target for s in samples), dtype=np.int64)
        return DomainData(name, catalog, items, contexts, targets)

    # -- scoring -------------------------------------------------------------------------------------------------
    def score(self, samples: Sequence[ContextView]) -> np.ndarray:
        if self.network is None:
            raise RuntimeError("bridge: fit() or a checkpoint first")
        if self._items is None:  # read from the cache once, not on every turn of a conversation
            self._items = self.reader.item_vectors(self.catalog)
        items = self._items
        contexts = self.reader.read(samples, self.catalog, items)
        return predict(self.network, contexts, items, self.domain)

    @property
    def summary(self) -> dict[str, Any]:
        """What `convrec train` prints: the training report without its per-epoch rows."""
        return {k: v for k, v in self.report.items() if k != "epochs"}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "domain": self.domain, "training": self.report}

    # -- run dirs ------------------------------------------------------------------------------------------------
    def _options(self) -> dict[str, Any]:
        return self.config.model_dump(mode="json", exclude={"run_dir", "checkpoint"})

    def _finished_here(self, run_dir: Path, select_on: list[str]) -> bool:
        config = run_dir / "config.json"
        if not (run_dir / WEIGHTS_FILE).is_file() or not config.is_file():
            return False
        saved = json.loads(config.read_text())
        return (saved.get("options") == self._options() and saved.get("domain") == self.domain
                and saved.get("training", {}).get("selected_on") == select_on)

    def _save(self, run_dir: Path) -> None:
        assert self.network is not None
        run_dir.mkdir(parents=True, exist_ok=True)
        network = self.network
        with atomic_write(run_dir / WEIGHTS_FILE, "wb", encoding=None) as handle:
            torch.save({"state": network.state_dict(), "domains": network.domains,
                        "item_counts": [len(b) for b in network.item_bias],
                        "dims": [network.context[0].in_features, network.item[0].in_features]}, handle)
        write_json(run_dir / "config.json", {"format": RUN_FORMAT, "recommender": self.name, "domain": self.domain,
                                             "catalog": self.catalog.content_hash(), "options": self._options(),
                                             "training": self.report})

    def _load(self, run_dir: Path) -> None:
        weights, config = run_dir / WEIGHTS_FILE, run_dir / "config.json"
        if not weights.is_file() or not config.is_file():
            raise ConfigError(f"bridge: {run_dir} holds no finished run ({WEIGHTS_FILE}, config.json)")
        saved_config = json.loads(config.read_text())
        if saved_config.get("recommender") != self.name:
            raise ConfigError(f"bridge: {run_dir} is a {saved_config.get('recommender')!r} run, not a bridge run")
        saved = torch.load(weights, map_location="cpu", weights_only=True)
        options = BridgeOptions(**saved_config["options"])
        network = BridgeNetwork(*saved["dims"], options.hidden, saved["domains"], saved["item_counts"],
                                options.dropout, options.gates)
        network.load_state_dict(saved["state"])
        if self.domain in network.domains:
            index = network.domains.index(self.domain)
            if len(network.item_bias[index]) != len(self.catalog):
                raise ConfigError(f"bridge: {run_dir} was trained on another {self.domain!r} catalogue "
                                  f"({len(network.item_bias[index])} items, this one has {len(self.catalog)})")
        network.eval()
        self.network, self.report = network, saved_config.get("training", {})


def predict(network: BridgeNetwork, contexts: np.ndarray, items: np.ndarray, domain: str,
            batch: int = 1024) -> np.ndarray:
    network.eval()
    rows = []
    with torch.no_grad():
        item_tensor = torch.as_tensor(items)
        for start in range(0, len(contexts), batch):
            logits, _ = network.scores(torch.as_tensor(contexts[start : start + batch]), item_tensor, domain)
            rows.append(logits.numpy())
    return np.concatenate(rows).astype(np.float32) if rows else np.zeros((0, len(items)), np.float32)


def validation_recall(network: BridgeNetwork, domains: Sequence[DomainData], names: Sequence[str]) -> float:
    recalls = []
    for data in domains:
        if data.name in names and len(data.targets.get("valid", ())):
            scores = predict(network, data.contexts["valid"], data.items, data.name)
            recalls.append(float(recall_and_ndcg_at(scores, data.targets["valid"])[0].mean()))
    return float(np.mean(recalls)) if recalls else float("nan")


def train_bridge(domains: Sequence[DomainData], options: BridgeOptions,
                 select_on: Sequence[str]) -> tuple[BridgeNetwork, dict[str, Any]]:
    """Trains on every domain's train split; keeps the epoch with the best validation Recall@10 over
    ``select_on`` (empty, or no validation samples there: the last epoch). Returns the network and a report (per-epoch loss, validation recall, discriminator accuracy)."""
    torch.manual_seed(options.seed)
    rng = np.random.default_rng(options.seed)
    dims = domains[0].contexts["train"].shape[1], domains[0].items.shape[1]
    network = BridgeNetwork(*dims, options.hidden, [d.name for d in domains], [len(d.items) for d in domains],
                            options.dropout, options.gates)
    optimiser = torch.optim.AdamW(network.parameters(), lr=options.learning_rate,
                                  weight_decay=options.weight_decay)
    adversarial = options.adversarial if len(domains) > 1 else 0.0
    items = [torch.as_tensor(d.items) for d in domains]
    contexts = [torch.as_tensor(d.contexts["train"]) for d in domains]
    targets = [torch.as_tensor(d.targets["train"]) for d in domains]
    best, best_state, best_epoch, waited = -1.0, None, 0, 0
    epochs: list[dict[str, Any]] = []
    started = time.perf_counter()
    for epoch in range(1, options.epochs + 1):
        network.train()
        per_domain = [[order[s : s + options.batch_size] for s in range(0, len(order), options.batch_size)]
                      for order in (rng.permutation(len(t)) for t in targets)]
        if options.mixing == "equal":  # the first batches of each domain's fresh order, as many as the smallest has
            keep = min(len(found) for found in per_domain)
            per_domain = [found[:keep] for found in per_domain]
        batches = [(d, rows) for d, found in enumerate(per_domain) for rows in found]
        rng.shuffle(batches)
        seen_per_domain = {domains[d].name: 0 for d in range(len(domains))}
        for d, rows in batches:
            seen_per_domain[domains[d].name] += len(rows)
        loss_sum = correct = seen = 0.0
        for d, rows in batches:
            rows = torch.as_tensor(rows)
            logits, shared = network.scores(contexts[d][rows], items[d], domains[d].name)
            loss = nn.functional.cross_entropy(logits, targets[d][rows])
            if adversarial > 0:
                guess = network.discriminator(GradientReversal.apply(shared, 1.0))
                truth = torch.full((len(rows),), d, dtype=torch.long)
                loss = loss + adversarial * nn.functional.cross_entropy(guess, truth)
                correct += float((guess.argmax(1) == truth).sum())
                seen += len(rows)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            loss_sum += float(loss.detach()) * len(rows)
        recall = validation_recall(network, domains, select_on) if select_on else float("nan")
        epochs.append({"epoch": epoch, "loss": round(loss_sum / sum(len(rows) for _, rows in batches), 4),
                       "valid_recall@10": round(recall, 4),
                       "discriminator_accuracy": round(correct / seen, 4) if seen else None})
        log.info("bridge epoch %d: %s", epoch, epochs[-1])
        if math.isnan(recall):  # nothing to choose on: every epoch runs, the last is kept
            best_state, best_epoch = None, epoch
        elif recall > best:
            best, best_epoch, waited = recall, epoch, 0
            best_state = {k: v.detach().clone() for k, v in network.state_dict().items()}
        else:
            waited += 1
            if waited >= options.patience:
                break
    if best_state is not None:
        network.load_state_dict(best_state)
    network.eval()
    report = {"domains": {d.name: len(d.targets["train"]) for d in domains}, "mixing": options.mixing,
              "samples_per_epoch": seen_per_domain, "selected_on": list(select_on),
              "best_epoch": best_epoch, "valid_recall@10": round(best, 4) if best >= 0 else None, "epochs": epochs,
              "seconds": round(time.perf_counter() - started, 1)}
    return network, report
