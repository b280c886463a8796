"""Retrievers and baselines. Importing this package registers every built-in recommender."""

from convrec.retrieval import baselines, dense  # noqa: F401  (registration side effect)
from convrec.retrieval.base import RECOMMENDERS, Recommender, build_recommender
from convrec.retrieval.lrurec import recommender as _lrurec  # noqa: F401  (registration side effect)

__all__ = ["RECOMMENDERS", "Recommender", "build_recommender"]
