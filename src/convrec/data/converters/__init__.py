"""Converters from each raw dataset into the generic model; ``CONVERTERS`` maps a dataset name to one."""

from __future__ import annotations

from convrec.data.converters.inspired import INSPIRED
from convrec.data.converters.movielens import MOVIELENS
from convrec.data.converters.opendialkg import OPENDIALKG_BOOKS
from convrec.data.converters.redial import REDIAL
from convrec.data.converters.redial_joined import REDIAL_JOINED
from convrec.data.dataset import Converter

CONVERTERS: dict[str, Converter] = {c.name: c for c in (REDIAL, INSPIRED, MOVIELENS, OPENDIALKG_BOOKS, REDIAL_JOINED)}
