"""``lrurec`` and ``lrurec-text`` as convrec recommenders: train (or load a run), then score samples.

- ``lrurec``: items only, as in RAR's retriever; item embeddings initialised from the items' text.
- ``lrurec-text``: also conditions on the dialogue text so far (see ``network.py`` for the fusion).
"""

from __future__ import annotations

import logging
import os
import re
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field

from convrec.catalog.items import Catalog, Item
from convrec.data.dataset import Split
from convrec.data.model import ContextView, Dialogue, RecSample, render_turns
from convrec.devices import cpu_threads
from convrec.errors import CheckpointError, ConfigError
from convrec.io import atomic_write, write_json
from convrec.resources import Resources
from convrec.retrieval.ann import IndexOptions, VectorIndex, build_index
from convrec.retrieval.base import Candidates, Recommender, RecommenderConfig, register, top_indices
from convrec.retrieval.lrurec.model import LRURecConfig
from convrec.retrieval.lrurec.network import ConversationalLRURec
from convrec.retrieval.lrurec.sequences import (
    SequenceExample,
    TokenMap,
    dialogue_examples,
    left_pad,
    sample_tokens,
)
from convrec.retrieval.lrurec.training import (
    Trainer,
    TrainOptions,
    evaluate_samples,
    read_run_config,
    read_weights,
    seed_everything,
)
from convrec.text.encoder import EncoderConfig, context_cache_file, item_cache_file

log = logging.getLogger(__name__)

TRAINABLE = ("lrurec", "lrurec-text")
"""The recommenders whose runs are checkpoints (the names a run's config.json may hold)."""

DIRECT_ENCODE_MAX = 8
"""Up to this many dialogue texts are encoded directly, without the on-disk context cache."""


class LRURecOptions(RecommenderConfig):
    hidden: int = Field(64, ge=8)
    n_blocks: int = Field(2, ge=1)
    dropout: float = Field(0.2, ge=0, lt=1, description="embedding, LRU-output and feed-forward dropout")
    text_init: bool = Field(True, description="item embeddings = projection of item-text embeddings + residual")
    dialogue_text: bool = Field(False, description="condition on the dialogue text (lrurec-text)")
    bow_dim: int = Field(0, ge=0, description="hashed bag-of-words features of the dialogue text added to the "
                         "sentence embedding (0: off); words such as actor names survive that MiniLM blurs")
    text_match: bool = Field(False, description="add a learned multiple of cos(dialogue text, item text) to "
                             "the scores (lrurec-text with text_init)")
    copy_bonus: bool = Field(False, description="add a learned score to items already mentioned in the dialogue "
                             "(no effect under the dedup protocol, which excludes them)")
    fusion: Literal["linear", "mlp"] = Field("linear", description="how the dialogue-text embedding is "
                                             "mapped into the hidden state (lrurec-text)")
    pretrain_datasets: list[str] = Field([], description="datasets whose item sequences, "
                                         "linked to this catalogue by IMDb id, pre-train the model for "
                                         "train.pretrain_epochs epochs (e.g. ['movielens'], or 'redial' for "
                                         "INSPIRED); loaded from the data dir / mirror like any dataset")
    train: TrainOptions = TrainOptions()
    run_dir: str | None = Field(None, description="where training writes checkpoints (resumable); None: memory")
    checkpoint: str | None = Field(None, description="a finished run dir to load instead of training")
    encoder: EncoderConfig = EncoderConfig()
    context_chars: int = Field(600, ge=50, description="most recent characters of the dialogue text used")
    cache_dir: str | None = Field(None, description="embedding cache (default $CONVREC_CACHE_DIR or "
                                  "~/.cache/convrec)")
    index: IndexOptions = Field(IndexOptions(), description="how retrieve() finds the top items: every item "
                                "scored below index.exact_below items, an approximate (FAISS) index above")


class LRURecTextOptions(LRURecOptions):
    """lrurec-text's defaults, chosen on ReDial validation Recall@10 (test never looked at for the choice; see
    the closing note of the LRURec issue for the sweep). A class of its own, so that `convrec recommenders`
    lists the defaults it really runs with."""

    dialogue_text: bool = Field(True, description="condition on the dialogue text")
    hidden: int = Field(128, ge=8)
    dropout: float = Field(0.3, ge=0, lt=1, description="embedding, LRU-output and feed-forward dropout")
    text_match: bool = Field(True, description="add a learned multiple of cos(dialogue text, item text) to "
                             "the scores (needs text_init)")
    fusion: Literal["linear", "mlp"] = Field("mlp", description="how the dialogue-text embedding is mapped "
                                             "into the hidden state")


_WORD = re.compile(r"[a-z][a-z']+")


def hashed_bag_of_words(texts: Sequence[str], dim: int) -> np.ndarray:
    """(len(texts), dim) float32: log term counts hashed into ``dim`` buckets (crc32, stable across runs),
    L2-normalised. No vocabulary to store, and a new word needs no refit."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in _WORD.findall(text.lower()):
            out[row, zlib.crc32(word.encode()) % dim] += 1.0
    np.log1p(out, out=out)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(norms, 1e-12)


def run_options(run_dir: str | os.PathLike) -> tuple[str, dict[str, Any]]:
    """(recommender name, options) that rebuild the network a `convrec train` run was trained with, set to load
    that run as its ``checkpoint`` (where it trained, ``run_dir``, is dropped). A path that is not such a run is
    a CheckpointError that says why."""
    run_config = read_run_config(Path(run_dir))
    trained_as = _trained_as(Path(run_dir), run_config)
    options = {k: v for k, v in run_config["options"].items() if k not in ("run_dir", "checkpoint")}
    return trained_as, {**options, "checkpoint": str(run_dir)}


# The options that decide the network's parameters (names and shapes); the others (dropout, training, where
# caches live) may differ between training and loading.
NETWORK_OPTIONS = ("hidden", "n_blocks", "text_init", "dialogue_text", "bow_dim", "text_match", "copy_bonus",
                   "fusion", "encoder.model")


def _option(options: dict[str, Any], dotted: str) -> Any:
    value: Any = options
    for key in dotted.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _trained_as(run_dir: Path, run_config: dict[str, Any]) -> str:
    name = run_config["recommender"]
    if name not in TRAINABLE:
        raise CheckpointError(f"{run_dir / 'config.json'}: recommender {name!r} is not one convrec trains "
                              f"({', '.join(TRAINABLE)})")
    return name


def link_by_imdb(source: Catalog, target: Catalog) -> dict[str, str]:
    """source item id -> target item id, for items whose metadata share an IMDb id (e.g. MovieLens -> ReDial)."""
    by_imdb = {item.metadata.get("imdb_id"): item.item_id for item in target if item.metadata.get("imdb_id")}
    return {item.item_id: by_imdb[item.metadata["imdb_id"]] for item in source
            if item.metadata.get("imdb_id") in by_imdb}


def relabel_dialogues(dialogues: Sequence[Dialogue], mapping: dict[str, str]) -> list[Dialogue]:
    """Dialogues over another catalogue, keeping only the items ``mapping`` links (pre-training data)."""
    out = []
    for dialogue in dialogues:
        turns = [type(t)(t.role, "", tuple(mapping[i] for i in t.items if i in mapping)) for t in dialogue.turns]
        turns = [t for t in turns if t.items]
        if len(turns) >= 2:
            out.append(Dialogue(dialogue.dialogue_id, "train", turns))
    return out


@register
class LRURecRecommender(Recommender):
    """LRURec over the items mentioned so far (RAR stage 1), item embeddings initialised from item text."""

    name = "lrurec"
    config_class = LRURecOptions
    config: LRURecOptions
    uses_resources = True

    def __init__(self, catalog: Catalog, config: LRURecOptions | None = None, *,
                 resources: Resources | None = None):
        """``resources`` (None: :meth:`Resources.from_env`) give the text encoder, shared with every other
        component built from them, the embedding cache unless ``cache_dir`` is set, and the data dir that
        ``pretrain_datasets`` load from."""
        super().__init__(catalog, config)
        self.resources = resources or Resources.from_env()
        self.token_map = TokenMap(len(catalog))
        self.encoder = self.resources.encoder(self.config.encoder)
        self.cache_dir = Path(self.config.cache_dir) if self.config.cache_dir else self.resources.cache_dir
        self.pretrain_dialogues: list[Dialogue] = []
        self.summary: dict[str, Any] = {}
        self.network: ConversationalLRURec | None = None
        # A checkpoint is checked here, before any work: it must be a run of this recommender on this catalogue.
        self.checkpoint_config = (self._check_checkpoint(Path(self.config.checkpoint))
                                  if self.config.checkpoint else None)
        if self.config.text_match and not (self.config.dialogue_text and self.config.text_init):
            # Checked here, with the variant's defaults applied, not when the network is built after the data.
            raise ConfigError(f"recommender '{self.name}', option 'text_match': needs the dialogue text "
                              "(dialogue_text, lrurec-text) and text-initialised items (text_init=true); set "
                              "text_match=false or text_init=true")

    # -- text ------------------------------------------------------------------------------------------------

    def _item_text(self) -> torch.Tensor:
        vectors = self.encoder.encode_cached(self.catalog.texts(), item_cache_file(self.cache_dir, self.encoder,
                                                                                    self.catalog))
        text = np.zeros((self.token_map.model_items + 1, vectors.shape[1]), dtype=np.float32)
        text[1 : len(self.catalog) + 1] = vectors
        return torch.from_numpy(text)

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        if len(texts) <= DIRECT_ENCODE_MAX:
            # Serving (a chat turn): encoding a few texts (~20 ms each) beats reading and rewriting the
            # context cache file (35 MB for ReDial) on every call.
            vectors = self.encoder.encode(texts)
        else:
            vectors = self.encoder.encode_cached(texts, context_cache_file(self.cache_dir, self.encoder,
                                                                           self.catalog), progress=len(texts) > 500)
        if self.config.bow_dim:
            vectors = np.concatenate([vectors, hashed_bag_of_words(texts, self.config.bow_dim)], axis=1)
        return vectors

    @property
    def query_dim(self) -> int | None:
        return self.encoder.dim + self.config.bow_dim if self.config.dialogue_text else None

    def _sample_queries(self, samples: Sequence[RecSample | ContextView]) -> torch.Tensor | None:
        if not self.config.dialogue_text:
            return None
        return torch.from_numpy(self._encode_texts([s.context_text(max_chars=self.config.context_chars)
                                                    for s in samples]))

    def _example_queries(self, examples: list[SequenceExample]) -> dict[int, np.ndarray]:
        keys = [(e.dialogue.dialogue_id, int(t)) for e in examples for t in e.target_turns]
        texts: dict[tuple[str, int], str] = {}
        for example in examples:
            for turn in example.target_turns:
                key = (example.dialogue.dialogue_id, int(turn))
                if key not in texts:
                    texts[key] = render_turns(example.dialogue.turns[:turn], self.config.context_chars)
        ordered = list(texts)
        vectors = self._encode_texts([texts[k] for k in ordered])
        row_of = {k: i for i, k in enumerate(ordered)}
        out, start = {}, 0
        for example in examples:
            n = len(example.target_turns)
            out[id(example)] = vectors[[row_of[k] for k in keys[start : start + n]]]
            start += n
        return out

    # -- model -----------------------------------------------------------------------------------------------

    def _build_network(self) -> ConversationalLRURec:
        item_text = self._item_text() if self.config.text_init else None
        model_config = LRURecConfig(
            n_items=self.token_map.model_items, hidden=self.config.hidden, n_blocks=self.config.n_blocks,
            dropout=self.config.dropout, attn_dropout=self.config.dropout, ffn_dropout=self.config.dropout,
            max_len=self.config.train.max_len, text_dim=None if item_text is None else item_text.shape[1],
        )
        return ConversationalLRURec(model_config, self.token_map, item_text, self.query_dim, self.config.fusion,
                                    self.config.text_match, self.config.copy_bonus)

    def _run_config(self) -> dict[str, Any]:
        return {"recommender": self.name, "options": self.config.model_dump(mode="json"),
                "catalog": self.catalog.name, "catalog_hash": self.catalog.content_hash(),
                "n_items": len(self.catalog)}

    def _tokens(self, sample: RecSample | ContextView) -> list[int]:
        return sample_tokens(sample, self.catalog, self.token_map, self.config.train.max_len)

    def fit(self, train: Split, valid: Split | None = None) -> None:
        torch.set_num_threads(cpu_threads(self.config.train.threads))
        seed_everything(self.config.train.seed)  # before the weights are drawn: a run is reproducible
        self.network = self._build_network()
        # The columns of the items training mentions: a new item's bias is drawn from theirs (new_item_bias).
        self.seen_columns = sorted({self.catalog.index_of[i] for d in train.dialogues for t in d.turns
                                    for i in t.items if i in self.catalog.index_of})
        if self.config.checkpoint:
            self._load(Path(self.config.checkpoint))
            return
        started = time.perf_counter()
        options = self.config.train
        examples = dialogue_examples(train.dialogues, self.catalog, self.token_map, options.max_len)
        pretrain = dialogue_examples(self.pretrain_dialogues or self._load_pretraining(), self.catalog,
                                     self.token_map, options.max_len) or None
        queries = self._example_queries(examples) if self.config.dialogue_text else {}
        valid_samples = valid.selection_samples if valid is not None else []
        valid_queries = self._sample_queries(valid_samples)

        def validate() -> tuple[float, float]:
            return evaluate_samples(self.network, valid_samples, self._tokens, valid_queries, self.catalog)

        run_dir = Path(self.config.run_dir) if self.config.run_dir else None
        if run_dir is not None:
            run_dir.mkdir(parents=True, exist_ok=True)
        trainer = Trainer(self.network, options, run_dir, self._run_config())
        history = trainer.fit(examples, validate, (lambda e: queries[id(e)]) if queries else None,
                              self.query_dim, pretrain)
        self.summary = {"epochs_run": len(history), "best_epoch": trainer.best_epoch,
                        "best_valid_recall@10": round(trainer.best, 5), "train_examples": len(examples),
                        "pretrain_examples": len(pretrain or []),
                        "train_seconds_this_process": round(time.perf_counter() - started, 1)}

    def _load_pretraining(self) -> list[Dialogue]:
        from convrec.data.load import load_dataset

        dialogues: list[Dialogue] = []
        for name in self.config.pretrain_datasets:
            source = load_dataset(name, self.resources.data_dir)
            mapping = link_by_imdb(source.catalog, self.catalog)
            if not mapping:
                raise ConfigError(f"pretrain dataset {name!r} shares no IMDb id with {self.catalog.name}: its "
                                  "sequences cannot be linked to this catalogue (option pretrain_datasets)")
            linked = relabel_dialogues(source.split("train").dialogues, mapping)
            log.info("pre-training on %d %s sequences (%d of %d items linked by IMDb id)", len(linked), name,
                     len(mapping), len(source.catalog))
            dialogues += linked
        return dialogues

    def _check_checkpoint(self, run_dir: Path) -> dict[str, Any]:
        config = read_run_config(run_dir)
        trained_as = _trained_as(run_dir, config)
        if trained_as != self.name:
            raise CheckpointError(f"{run_dir} was trained as {trained_as!r} (its config.json), so it loads as "
                                  f"{trained_as!r}, not as {self.name!r}",
                                  hint=f"load it as {trained_as} (convrec eval --recommender {trained_as}; rar: "
                                  f"--set retriever={trained_as})")
        if config["catalog_hash"] != self.catalog.content_hash():
            raise CheckpointError(f"{run_dir} was trained on another catalogue ({config['catalog']}, "
                                  f"{config.get('n_items', '?')} items, hash {config['catalog_hash']}), not on "
                                  f"{self.catalog.name} ({len(self.catalog)} items, hash "
                                  f"{self.catalog.content_hash()})",
                                  hint="load a run trained on this dataset (convrec train --dataset NAME --out "
                                  "RUN_DIR)")
        return config

    def _load(self, run_dir: Path) -> None:
        assert self.network is not None and self.checkpoint_config is not None
        weights = read_weights(run_dir)
        try:
            self.network.load_state_dict(weights)
        except RuntimeError:  # torch's way of saying missing or unexpected parameters, or other shapes
            raise CheckpointError(f"{run_dir}: its weights do not fit the {self.name} network built from these "
                                  f"options ({self._weight_differences(weights)}); "
                                  f"{self._network_differences()}",
                                  hint="load it with the network options it was trained with") from None
        self.summary = {"checkpoint": str(run_dir), "best_epoch": self.checkpoint_config.get("best_epoch"),
                        "best_valid_recall@10": self.checkpoint_config.get("best_valid_recall@10")}

    def _weight_differences(self, weights: dict[str, torch.Tensor]) -> str:
        assert self.network is not None
        expected = {name: tuple(tensor.shape) for name, tensor in self.network.state_dict().items()}
        found = {name: tuple(tensor.shape) for name, tensor in weights.items()}
        parts = []
        for label, names in (("missing from the checkpoint", sorted(expected.keys() - found.keys())),
                             ("not in this network", sorted(found.keys() - expected.keys()))):
            if names:
                parts.append(f"{len(names)} {label} ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})")
        reshaped = sorted(name for name in expected.keys() & found.keys() if expected[name] != found[name])
        if reshaped:
            first = reshaped[0]
            parts.append(f"{len(reshaped)} of another shape (e.g. {first}: {list(found[first])} in the "
                         f"checkpoint, {list(expected[first])} here)")
        return ", ".join(parts) or "parameters that do not load"

    def _network_differences(self) -> str:
        assert self.checkpoint_config is not None
        trained, here = self.checkpoint_config["options"], self.config.model_dump(mode="json")
        differences = [f"{name}={_option(trained, name)!r} in its config.json, {_option(here, name)!r} here"
                       for name in NETWORK_OPTIONS if _option(trained, name) != _option(here, name)]
        if not differences:
            return "its config.json has the same network options"
        return "options that differ: " + "; ".join(differences)

    def inputs(self, samples: Sequence[RecSample | ContextView]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """What :meth:`catalogue_logits` reads: left-padded item tokens (B, L) and the dialogue-text queries
        (B, Dq), None for ``lrurec``."""
        return left_pad([self._tokens(s) for s in samples]), self._sample_queries(samples)

    def catalogue_logits(self, tokens: torch.Tensor, queries: torch.Tensor | None) -> torch.Tensor:
        """(B, n_catalogue) scores with their autograd graph (alignment trains through them); :meth:`score`
        is this in eval mode without gradients."""
        if self.network is None:
            raise RuntimeError("call fit() (train or load a checkpoint) before scoring")
        return self.network.catalogue_scores(tokens, queries)

    def score(self, samples: Sequence[ContextView]) -> np.ndarray:
        if self.network is None:
            raise RuntimeError("call fit() (train or load a checkpoint) before score()")
        self.network.eval()
        with torch.no_grad():
            scores = self.catalogue_logits(*self.inputs(samples))
        return scores.numpy().astype(np.float32)

    # -- new items without retraining ---------------------------------------------------------------------------

    def new_item_bias(self, rule: str = "seen-median") -> float:
        """The output bias a new item starts with. ``seen-median``: the median over the items training saw as
        targets (an unseen item's learned bias is pushed down by every softmax it lost, which says nothing of
        a new item); ``zero``: the initial value. Chosen on validation by ``python -m convrec.evaluate.novel_items``."""
        if self.network is None:
            raise RuntimeError("call fit() (train or load a checkpoint) before adding items")
        bias = self.network.lru.output_bias.detach()[1 : len(self.catalog) + 1]
        if rule == "zero":
            return 0.0
        if rule != "seen-median":
            raise ConfigError(f"new item bias: unknown rule {rule!r}; expected seen-median or zero")
        seen = getattr(self, "seen_columns", None)
        return float((bias[torch.as_tensor(seen)] if seen else bias).median())

    def add_items(self, items: Sequence[Item], bias: float | None = None) -> None:
        """Add items to the catalogue by their text alone, no retraining: each gets ``text_proj(its text)`` as
        its vector and ``bias`` (default :meth:`new_item_bias`); an index already built grows in place."""
        if self.network is None:
            raise RuntimeError("call fit() (train or load a checkpoint) before adding items")
        if not self.config.text_init:
            raise ConfigError(f"recommender '{self.name}': items can be added by their text only with text_init")
        bias = self.new_item_bias() if bias is None else bias
        catalog = Catalog([*self.catalog, *items], name=self.catalog.name)  # refuses an id already there
        vectors = self.encoder.encode([item.text() for item in items])
        self.network.lru.insert_items(torch.from_numpy(np.asarray(vectors, dtype=np.float32)), bias)
        self.catalog = catalog
        self.token_map = TokenMap(len(catalog))
        self.network.token_map = self.token_map
        index = getattr(self, "_index", None)
        if index is not None:
            self.network.eval()
            with torch.no_grad():
                vectors = self.network.item_vectors().numpy().astype(np.float32)
            vectors = np.ascontiguousarray(vectors[:, : self._indexed_columns(vectors.shape[1])])
            index.add(vectors[len(index):])
            self._index_key = (vectors.shape, zlib.crc32(np.ascontiguousarray(vectors).tobytes()))

    # -- retrieval through a vector index ----------------------------------------------------------------------

    def retrieve(self, samples: Sequence[ContextView], k: int, exclude=None, prefer=None) -> list[Candidates]:
        """Below ``index.exact_below`` items (or with ``index.kind = "exact"``): every item scored, as
        :meth:`Recommender.retrieve`. Above: the top items of an inner-product index over
        :meth:`ConversationalLRURec.inner_product_form`'s item vectors, each candidate re-scored exactly; the
        copy bonus, the preferred and the excluded items are handled exactly, from their own vectors."""
        if self.config.index.resolved_kind(len(self.catalog)) == "exact":
            return super().retrieve(samples, k, exclude, prefer)
        if self.network is None:
            raise RuntimeError("call fit() (train or load a checkpoint) before retrieve()")
        self.network.eval()
        with torch.no_grad():
            tokens, text = self.inputs(samples)
            queries = self.network.query_vectors(tokens, text).numpy().astype(np.float32)
        full, index = self._indexed_items()
        part = self._indexed_columns(full.shape[1])
        excluded = [set(self.catalog.indices(set(exclude[r]))) if exclude is not None else set()
                    for r in range(len(samples))]
        preferred = [self.catalog.indices(set(prefer[r])) if prefer is not None else [] for r in range(len(samples))]
        copy = float(self.network.copy_scale.detach()) if self.network.copy_scale is not None else 0.0
        mentioned = [{int(t) - 1 for t in row if 0 < int(t) <= len(self.catalog)} if copy else set()
                     for row in tokens.numpy()]
        fetch = k + max((len(e) for e in excluded), default=0) + max((len(m) for m in mentioned), default=0)
        # rescore: the index searches the item part [E_i, b_i] alone and its best `rescore` come back, to be
        # scored exactly with the text term; otherwise the index searches the whole score.
        found = index.candidates(np.ascontiguousarray(queries[:, :part]), max(fetch, self.config.index.rescore))
        valid = found >= 0
        found_scores = np.einsum("bkd,bd->bk", full[np.where(valid, found, 0)], queries)
        out = []
        for row in range(len(samples)):
            scores = {int(i): float(v) for i, v, ok in zip(found[row], found_scores[row], valid[row], strict=True)
                      if ok}
            exact = mentioned[row] | set(preferred[row])
            for i in exact:  # exact scores for the items the index may misplace: mentioned (copy) and preferred
                scores[i] = float(full[i] @ queries[row]) + (copy if i in mentioned[row] else 0.0)
            columns = np.array([i for i in scores if i not in excluded[row]], dtype=np.int64)
            values = np.array([scores[i] for i in columns], dtype=np.float64)
            if len(columns) < min(k, len(self.catalog) - len(excluded[row])):  # too few left: score every item
                values = full @ queries[row] + copy * np.isin(np.arange(len(full)), list(mentioned[row]))
                columns = np.arange(len(full))
                keep = ~np.isin(columns, list(excluded[row]))
                columns, values = columns[keep], values[keep]
            position = {int(c): p for p, c in enumerate(columns)}
            top = top_indices(values, k, (), [position[i] for i in preferred[row] if i in position])
            out.append(Candidates([self.catalog.id_at(int(columns[t])) for t in top], values[top].astype(np.float64)))
        return out

    def _indexed_columns(self, dim: int) -> int:
        """How many leading columns of the item vectors the index holds: all, or with ``index.rescore`` the
        item part ``[E_i, b_i]`` (the text term is added when the candidates are re-scored)."""
        return self.config.hidden + 1 if self.config.index.rescore else dim

    def _indexed_items(self) -> tuple[np.ndarray, VectorIndex]:
        """The item vectors of :meth:`ConversationalLRURec.inner_product_form` and the index over their indexed
        columns, computed once per weights: recomputing (and hashing) millions of item vectors on every call
        cost more than the search itself. The weights count as changed when any parameter or buffer is
        replaced or written in place (torch counts in-place writes per tensor: an optimiser step, a load,
        :meth:`add_items`)."""
        tensors = [*self.network.parameters(), *self.network.buffers()]
        cached = getattr(self, "_item_cache", None)
        if cached is not None and len(cached[0]) == len(tensors) and all(
                t is old and t._version == version for t, (old, version) in zip(tensors, cached[0], strict=True)):
            return cached[1], cached[2]
        with torch.no_grad():
            full = np.ascontiguousarray(self.network.item_vectors().numpy().astype(np.float32))
        index = self.vector_index(full[:, : self._indexed_columns(full.shape[1])])
        self._item_cache = ([(t, t._version) for t in tensors], full, index)
        return full, index

    def vector_index(self, items: torch.Tensor | np.ndarray) -> VectorIndex:
        """The index over the current item vectors, built (or loaded from the cache) once per weights."""
        vectors = np.ascontiguousarray(np.asarray(items, dtype=np.float32))
        key = (vectors.shape, zlib.crc32(vectors.tobytes()))
        if getattr(self, "_index_key", None) != key:
            self._index = build_index(vectors, self.config.index, self.cache_dir)
            self._index_key = key
        return self._index

    def save_checkpoint(self, run_dir: Path, extra: dict[str, Any] | None = None) -> None:
        """Write the current weights as a run dir that ``checkpoint=`` loads (model.safetensors, then
        config.json, each atomically; ``extra`` goes into config.json, e.g. how the weights were aligned)."""
        from safetensors.torch import save

        if self.network is None:
            raise RuntimeError("nothing to save: call fit() first")
        tensors = {k: v.detach().contiguous() for k, v in self.network.state_dict().items()}
        with atomic_write(Path(run_dir) / "model.safetensors", "wb") as handle:
            handle.write(save(tensors))
        write_json(Path(run_dir) / "config.json", {**self._run_config(), **(extra or {})})

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "training": self.summary}


@register
class LRURecTextRecommender(LRURecRecommender):
    """LRURec that also reads the dialogue text so far (MiniLM embedding added to the hidden state)."""

    name = "lrurec-text"
    config_class = LRURecTextOptions
