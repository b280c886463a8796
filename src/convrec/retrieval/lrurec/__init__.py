"""LRURec (Linear Recurrent Units for sequential recommendation): the network; training lives elsewhere."""

from convrec.retrieval.lrurec.model import LRURec, LRURecConfig, parallel_scan

__all__ = ["LRURec", "LRURecConfig", "parallel_scan"]
