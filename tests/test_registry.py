"""The component registry: every built-in listed and loadable by name whatever was imported before, one name
one class, and each variant's own defaults shown by `convrec recommenders`."""

from __future__ import annotations

import subprocess
import sys

import pytest

from convrec.errors import ConfigError
from convrec.registry import BUILTIN_RECOMMENDERS, DuplicateComponentError, Registry
from convrec.retrieval import RECOMMENDERS
from convrec.retrieval.base import CountsRunStats, EvaluatesSubset, Recommender, Trainable


def test_every_builtin_loads_under_its_own_name():
    for name in BUILTIN_RECOMMENDERS:
        cls = RECOMMENDERS[name]
        assert issubclass(cls, Recommender) and cls.name == name


def test_listing_does_not_depend_on_what_was_imported():
    # A fresh interpreter that imported nothing but the registry lists rar (defined above the retrievers)
    # and builds it without importing convrec.rerank first.
    code = ("import sys; from convrec.retrieval import RECOMMENDERS; names = list(RECOMMENDERS); "
            "assert 'convrec.rerank.pipeline' not in sys.modules; print(' '.join(names)); "
            "print(RECOMMENDERS['rar'].__module__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    names, module = done.stdout.splitlines()
    assert names.split() == sorted(BUILTIN_RECOMMENDERS) and module == "convrec.rerank.pipeline"


class _Named:
    def __init__(self, name: str):
        self.cls = type(f"Component_{name}", (), {"name": name})


def test_a_name_registered_twice_by_different_classes_is_an_error():
    registry: Registry = Registry("widget")
    first, second = _Named("w").cls, _Named("w").cls
    registry.register(first)
    registry.register(first)  # the same class again: harmless (a module imported twice)
    with pytest.raises(DuplicateComponentError, match="widget 'w' is already registered"):
        registry.register(second)
    assert registry["w"] is first


def test_a_builtin_name_cannot_be_taken_by_another_class():
    class Impostor(Recommender):
        name = "ease"

        def score(self, samples):
            raise AssertionError("never called")

    registry: Registry = Registry("recommender", BUILTIN_RECOMMENDERS)
    with pytest.raises(DuplicateComponentError, match="'ease' is a built-in"):
        registry.register(Impostor)


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown recommender 'nosuch': choose one of bridge, dense-text, ease"):
        RECOMMENDERS.get_class("nosuch")
    assert "nosuch" not in RECOMMENDERS and len(RECOMMENDERS) == len(BUILTIN_RECOMMENDERS)


def test_capabilities_are_declared_by_the_classes_that_have_them():
    assert issubclass(RECOMMENDERS["lrurec-text"], Trainable) and not issubclass(RECOMMENDERS["ease"], Trainable)
    assert issubclass(RECOMMENDERS["rar"], EvaluatesSubset) and issubclass(RECOMMENDERS["rar"], CountsRunStats)
    assert not issubclass(RECOMMENDERS["popularity"], EvaluatesSubset)


def test_recommenders_lists_each_variant_with_the_defaults_it_runs_with(run_cli):
    out = run_cli("recommenders").out
    text_section = out[out.index("lrurec-text:"):out.index("popularity:")]
    plain_section = out[out.index("lrurec:"):out.index("lrurec-text:")]
    for line in ("hidden = 128", 'fusion = "mlp"', "dialogue_text = true", "text_match = true"):
        assert line in text_section, line
    for line in ("hidden = 64", 'fusion = "linear"', "dialogue_text = false"):
        assert line in plain_section, line
