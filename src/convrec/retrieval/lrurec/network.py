"""LRURec for conversations: the sequence model plus, for ``lrurec-text``, the dialogue text.

Fusion (our design; the RAR paper conditions its retriever on items only): the hidden state at each position
gets ``query_proj(t)`` added, where ``t`` is the MiniLM embedding of the dialogue text available before the
target was mentioned. Added after the LRU blocks, the text shifts *which* items score high without entering
the recurrence, so the item-only path and its O(H^2) recurrent step stay exactly LRURec's. Positions with no
text get ``t = 0`` (only the projection's bias). A learned gate is unnecessary: the projection's scale is learned.

Copy bonus (``copy_bonus``, both variants): a learned score added to every item already mentioned in the
dialogue. Recommenders often come back to a movie named a few turns earlier (about 10% of ReDial test samples);
the tied output layer can only express that through the hidden state, which then has less room for what is
*new*. Under the dedup protocol mentioned items are excluded from ranking, so the bonus changes nothing there.
On ReDial it is learned negative (about -0.7 to -1): tied embeddings already favour the items just read, more than
the recommenders return to them; it is off by default (docs/results/retrievers.md, "What else was tried").
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from convrec.retrieval.lrurec.model import LRURec, LRURecConfig
from convrec.retrieval.lrurec.sequences import TokenMap


class ConversationalLRURec(nn.Module):
    def __init__(self, config: LRURecConfig, token_map: TokenMap, item_text: Tensor | None = None,
                 query_dim: int | None = None, fusion: str = "linear", text_match: bool = False,
                 copy_bonus: bool = False):
        super().__init__()
        if config.n_items != token_map.model_items:
            raise ValueError(f"config.n_items must be {token_map.model_items} (catalogue + BOS)")
        self.token_map = token_map
        self.lru = LRURec(config, item_text)
        self.query_proj: nn.Module | None = None
        if query_dim and fusion == "linear":
            self.query_proj = nn.Linear(query_dim, config.hidden)
        elif query_dim and fusion == "mlp":
            self.query_proj = nn.Sequential(nn.Linear(query_dim, 4 * config.hidden), nn.GELU(),
                                            nn.Dropout(config.ffn_dropout), nn.Linear(4 * config.hidden, config.hidden))
        elif query_dim:
            raise ValueError(f"fusion must be 'linear' or 'mlp', got {fusion!r}")
        for layer in self.query_proj.modules() if self.query_proj is not None else ():
            if isinstance(layer, nn.Linear):
                nn.init.trunc_normal_(layer.weight, std=0.02, a=-0.04, b=0.04)
                nn.init.zeros_(layer.bias)

        # text_match: add scale * cos(dialogue, item text) to every item's score. The projection above reaches the
        # items through an H-dimensional bottleneck; this term keeps the full sentence-space similarity.
        self.match_scale: nn.Parameter | None = None
        if text_match:
            if not query_dim or item_text is None:
                raise ValueError("text_match needs the dialogue text (query_dim) and text-initialised items")
            self.match_scale = nn.Parameter(torch.tensor(1.0))
        self.copy_scale: nn.Parameter | None = nn.Parameter(torch.tensor(0.0)) if copy_bonus else None

    def match_parameters(self) -> list[nn.Parameter]:
        return [] if self.match_scale is None else [self.match_scale]

    def _copy(self, scores: Tensor, mentioned: Tensor | None) -> Tensor:
        if self.copy_scale is None or mentioned is None:
            return scores
        return scores + self.copy_scale * mentioned

    def _text_match(self, scores: Tensor, queries: Tensor | None) -> Tensor:
        if self.match_scale is None or queries is None:
            return scores
        item_text = self.lru.text_embeddings
        return scores + self.match_scale * (queries[..., : item_text.shape[1]] @ item_text.t())

    @property
    def uses_text(self) -> bool:
        return self.query_proj is not None

    def hidden(self, tokens: Tensor, queries: Tensor | None = None) -> Tensor:
        """(B, L) tokens [+ (B, L, Dq) text queries] -> (B, L, H)."""
        hidden = self.lru(tokens)
        if self.query_proj is not None and queries is not None:
            hidden = hidden + self.query_proj(queries)
        return hidden

    def logits(self, hidden: Tensor, queries: Tensor | None = None, mentioned: Tensor | None = None) -> Tensor:
        """(..., H) -> (..., n_items + 2) model-token scores; padding and BOS can never be predicted.
        ``mentioned`` (..., n_items + 2) is 1 for tokens already in the context (see :func:`mentioned_so_far`)."""
        scores = self._copy(self._text_match(self.lru.scores(hidden), queries), mentioned)
        return scores.index_fill(-1, torch.tensor([self.token_map.bos], device=scores.device), float("-inf"))

    def last_hidden(self, tokens: Tensor, queries: Tensor | None = None) -> Tensor:
        """Hidden state after the last token of each (left-padded) row: (B, L) [+ (B, Dq)] -> (B, H)."""
        hidden = self.lru(tokens)[:, -1]
        if self.query_proj is not None and queries is not None:
            hidden = hidden + self.query_proj(queries)
        return hidden

    def item_vectors(self) -> Tensor:
        """(n_catalogue, D) item vectors ``[E_i, bias_i, text_i]`` (text only with ``text_match``): the item
        side of :meth:`inner_product_form`."""
        n = self.token_map.n_items
        items = [self.lru.item_embeddings()[1 : n + 1], self.lru.output_bias[1 : n + 1, None]]
        if self.match_scale is not None:
            items.append(self.lru.text_embeddings[1 : n + 1])
        return torch.cat(items, dim=1)

    def inner_product_form(self, tokens: Tensor, queries: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The score as one inner product: (B, D) query vectors and (n_catalogue, D) item vectors with
        ``queries @ items.T`` equal to :meth:`catalogue_scores` but for the copy bonus (added by the caller to
        the few mentioned items). Items are ``[E_i, bias_i, text_i]``, queries ``[h, 1, match_scale * q]``:
        the output layer, its bias and the text-match cosine in one product, so an inner-product index over
        the items finds exactly the items this model ranks first."""
        return self.query_vectors(tokens, queries), self.item_vectors()

    def query_vectors(self, tokens: Tensor, queries: Tensor | None = None) -> Tensor:
        """(B, D) query side of :meth:`inner_product_form`: ``[h, 1, match_scale * q]``."""
        hidden = self.last_hidden(tokens, queries)
        query = [hidden, hidden.new_ones(len(hidden), 1)]
        if self.match_scale is not None:
            text_dim = self.lru.text_embeddings.shape[1]
            query.append(hidden.new_zeros(len(hidden), text_dim) if queries is None
                         else self.match_scale * queries[..., :text_dim])
        return torch.cat(query, dim=1)

    def catalogue_scores(self, tokens: Tensor, queries: Tensor | None = None) -> Tensor:
        """(B, n_catalogue) scores for the next item, padding and BOS columns removed."""
        scores = self._text_match(self.lru.scores(self.last_hidden(tokens, queries)), queries)
        if self.copy_scale is not None:
            mentioned = scores.new_zeros(scores.shape).scatter_(1, tokens, 1.0)
            scores = self._copy(scores, mentioned)
        return self.token_map.catalogue_scores(scores)


def mentioned_so_far(inputs: Tensor, positions: Tensor, n_tokens: int) -> Tensor:
    """(B, L, n_tokens) float: 1 where a token occurs in ``inputs[b, : positions[b, c] + 1]``.

    ``inputs`` (B, L) are the (left-padded) input tokens, ``positions`` (B, L) the input position whose state
    predicts column c (``arange(L)`` for next-item training, the turn sources for turn-aligned training)."""
    batch, length = inputs.shape
    within = torch.arange(length, device=inputs.device)[None, None, :] <= positions[:, :, None]  # (B, L, L)
    index = inputs[:, None, :].expand(batch, length, length)
    out = torch.zeros(batch, length, n_tokens, device=inputs.device)
    return out.scatter_reduce_(2, index, within.to(out.dtype), reduce="amax")
