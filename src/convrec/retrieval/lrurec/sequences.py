"""Dialogues -> token sequences for LRURec, and the mapping between catalogue items and model tokens.

Tokens: 0 is padding, catalogue item ``i`` (its column in score matrices) is token ``i + 1``, and ``BOS``
(``n_items + 1``) starts every sequence. BOS lets the model predict the *first* item of a dialogue, which is
the target of about 20% of ReDial test samples (no item mentioned yet): from BOS alone for ``lrurec``, from
BOS plus the dialogue text for ``lrurec-text``.

Each training example is one dialogue: input ``[BOS, s_1 .. s_{n-1}]``, targets ``[s_1 .. s_n]`` (every
mention in order, repeats kept), and for each position the turn whose text precedes the target, so
``lrurec-text`` can look up the dialogue text that was available when that item was mentioned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from convrec.catalog.items import Catalog
from convrec.data.model import Dialogue, RecSample

PAD = 0


@dataclass(frozen=True)
class TokenMap:
    n_items: int

    @property
    def bos(self) -> int:
        return self.n_items + 1

    @property
    def model_items(self) -> int:
        """What LRURecConfig.n_items must be: the catalogue plus BOS."""
        return self.n_items + 1

    def catalogue_scores(self, scores: torch.Tensor) -> torch.Tensor:
        """Model scores (..., n_items + 2) -> catalogue scores (..., n_items): drop padding and BOS."""
        return scores[..., 1 : self.n_items + 1]


@dataclass
class SequenceExample:
    tokens: np.ndarray  # (n + 1,) int64: BOS, s_1 .. s_n
    target_turns: np.ndarray  # (n,) the turn index in which each target s_j was mentioned
    dialogue: Dialogue

    @property
    def turn_sources(self) -> np.ndarray:
        """(n,) for each target, the input position whose state it is predicted from when targets are aligned
        to turns: the position just before the first item of its turn.

        At test time every item of a recommender turn is predicted from the dialogue *before* that turn, so the
        second movie of "try A or B" must not see A. Plain next-item training (position ``j - 1`` for target
        ``j``) would let it."""
        turns = self.target_turns
        first = np.ones(len(turns), dtype=bool)
        first[1:] = turns[1:] != turns[:-1]
        return np.maximum.accumulate(np.where(first, np.arange(len(turns)), 0))


def dialogue_examples(dialogues: Sequence[Dialogue], catalog: Catalog, token_map: TokenMap,
                      max_len: int) -> list[SequenceExample]:
    """One example per dialogue with at least one item; long ones keep their last ``max_len`` targets."""
    examples = []
    for dialogue in dialogues:
        tokens, turns = [token_map.bos], []
        for turn_index, turn in enumerate(dialogue.turns):
            for item in turn.items:
                tokens.append(catalog.index_of[item] + 1)
                turns.append(turn_index)
        if len(tokens) < 2:
            continue
        if len(turns) > max_len:  # keep the most recent window; its first input is then a real item
            tokens, turns = tokens[-(max_len + 1) :], turns[-max_len:]
        examples.append(SequenceExample(np.asarray(tokens, np.int64), np.asarray(turns, np.int64), dialogue))
    return examples


def sample_tokens(sample: RecSample, catalog: Catalog, token_map: TokenMap, max_len: int) -> list[int]:
    """The model input for a recommendation sample: BOS then the context items (the last ``max_len``)."""
    items = [catalog.index_of[item] + 1 for item in sample.context_items]
    return [token_map.bos, *items][-max_len:]


def left_pad(rows: Sequence[Sequence[int]]) -> torch.Tensor:
    """Left-pad integer rows with PAD into a (B, L) long tensor (LRURec expects left padding)."""
    width = max(len(r) for r in rows)
    out = torch.full((len(rows), width), PAD, dtype=torch.long)
    for i, row in enumerate(rows):
        if len(row):
            out[i, width - len(row) :] = torch.as_tensor(row, dtype=torch.long)
    return out
