"""A small knowledge graph of one catalogue: items linked through the attribute values they share
(item -- genre "horror" -- item, item -- director "Sam Raimi" -- item), for ``query_knowledge`` and
``reason_over_graph``.

It is an item x value incidence matrix (scipy sparse). A value's weight is its inverse document frequency,
``log(n_items / items_with_value)``: sharing a director says more than sharing "drama". Values held by a
single item link nothing and are left out. Two items' paths are the values they share; an item's
neighbours are the items with the largest summed weight of shared values, through every attribute or one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from convrec.agent.gazetteer import Gazetteer


@dataclass(frozen=True)
class ValueNode:
    attribute: str
    key: str
    weight: float


class KnowledgeGraph:
    """Items and the values of ``attributes`` they hold; value nodes are grouped by attribute, in order."""

    def __init__(self, gazetteer: Gazetteer, attributes: Iterable[str], n_items: int):
        self.n_items = n_items
        self.nodes: list[ValueNode] = []
        self._columns: dict[str, tuple[int, int]] = {}  # attribute -> [first, last) node of its values
        rows: list[np.ndarray] = []
        cols: list[np.ndarray] = []
        for attribute in attributes:
            first = len(self.nodes)
            for key, positions in gazetteer.value_keys(attribute).items():
                if len(positions) < 2:
                    continue
                rows.append(np.asarray(positions, dtype=np.int64))
                cols.append(np.full(len(positions), len(self.nodes), dtype=np.int64))
                self.nodes.append(ValueNode(attribute, key, float(np.log(n_items / len(positions)))))
            self._columns[attribute] = (first, len(self.nodes))
        row = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
        col = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
        self._incidence = sparse.csr_matrix((np.ones(len(row), dtype=np.float32), (row, col)),
                                            shape=(n_items, len(self.nodes)))
        self._by_value = self._incidence.tocsc()
        self._weights = np.asarray([node.weight for node in self.nodes], dtype=np.float32)

    @property
    def attributes(self) -> list[str]:
        return list(self._columns)

    def values_of(self, position: int, via: Iterable[str] | None = None) -> np.ndarray:
        """The value nodes item ``position`` holds (through ``via`` only, when given)."""
        start, end = self._incidence.indptr[position], self._incidence.indptr[position + 1]
        nodes = self._incidence.indices[start:end]
        if via is None:
            return nodes
        keep = np.zeros(len(nodes), dtype=bool)
        for attribute in via:
            first, last = self._columns.get(attribute, (0, 0))
            keep |= (nodes >= first) & (nodes < last)
        return nodes[keep]

    def neighbours(self, position: int, via: Iterable[str] | None = None,
                   k: int = 10) -> list[tuple[int, float, np.ndarray]]:
        """The ``k`` items sharing the most weight of values with item ``position``: (position, score, shared
        value nodes), best first; ties in catalogue order. The item itself is not its own neighbour."""
        via = None if via is None else list(via)
        nodes = self.values_of(position, via)
        if not len(nodes) or k <= 0:
            return []
        scores = np.asarray(self._by_value[:, nodes] @ self._weights[nodes]).ravel()
        scores[position] = 0.0
        candidates = np.flatnonzero(scores > 0)
        if len(candidates) > k:
            # stable: the best k by score, ties broken by catalogue position
            order = np.lexsort((candidates, -scores[candidates]))[:k]
            candidates = candidates[order]
        else:
            candidates = candidates[np.lexsort((candidates, -scores[candidates]))]
        return [(int(c), float(scores[c]), self.shared(position, int(c), via)) for c in candidates]

    def shared(self, a: int, b: int, via: Iterable[str] | None = None) -> np.ndarray:
        """The value nodes items ``a`` and ``b`` both hold, heaviest (rarest) first."""
        via = None if via is None else list(via)
        common = np.intersect1d(self.values_of(a, via), self.values_of(b, via))
        return common[np.argsort(-self._weights[common], kind="stable")]
