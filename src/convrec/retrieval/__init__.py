"""Retrievers and baselines. Every built-in recommender is listed by ``RECOMMENDERS`` (convrec.registry) and
imported when it is first asked for, so nothing here needs importing for its side effects."""

from convrec.retrieval.base import RECOMMENDERS, Candidates, Recommender, build_recommender

__all__ = ["RECOMMENDERS", "Candidates", "Recommender", "build_recommender"]
