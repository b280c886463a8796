"""Evaluation protocols, as an explicit setting rather than a habit hidden in code (REFERENCE section 4).

- ``standard``: every sample as is, the whole catalogue ranked.
- ``dedup``: samples whose target was already mentioned in the context are removed, and the context's items
  are excluded from ranking. About half of published ReDial accuracy comes from re-mentioning items;
  ``dedup`` measures what is left.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

import numpy as np

from convrec.catalog.items import Catalog
from convrec.data.model import RecSample


class Protocol(StrEnum):
    STANDARD = "standard"
    DEDUP = "dedup"

    @property
    def description(self) -> str:
        if self is Protocol.STANDARD:
            return "full catalogue, all samples, nothing excluded"
        return "full catalogue, samples with target in context removed, context items excluded from ranking"


def select_samples(samples: Sequence[RecSample], protocol: Protocol) -> list[RecSample]:
    if protocol is Protocol.DEDUP:
        return [s for s in samples if not s.target_in_context]
    return list(samples)


def mask_excluded(scores: np.ndarray, samples: Sequence[RecSample], catalog: Catalog, protocol: Protocol) -> None:
    """In place: under ``dedup`` the items already mentioned get -inf so they rank last."""
    if protocol is not Protocol.DEDUP:
        return
    for row, sample in enumerate(samples):
        if sample.context_items:
            scores[row, catalog.indices(set(sample.context_items))] = -np.inf
