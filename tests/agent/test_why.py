"""What a seeker's "why?" asks about (:func:`convrec.agent.why.asked_why`), on real ReDial titles: the items of
the last slate it points at by title, ordinal or (in a short question) pronoun; wishes phrased with "why not"
and statements that merely contain "why" ask nothing."""

from __future__ import annotations

import pytest

from convrec.agent.why import asked_why

NOTTING_HILL, LOVE_ACTUALLY, ABOUT_A_BOY = "191932", "142573", "194784"


@pytest.fixture(scope="module")
def slate(redial) -> tuple[str, ...]:
    ids = (NOTTING_HILL, LOVE_ACTUALLY, ABOUT_A_BOY)
    assert [redial.catalog.get(i).title for i in ids] == ["Notting Hill", "Love Actually", "About a Boy"]
    return ids


@pytest.mark.parametrize("message, expected", [
    ("why the second one?", (1,)),
    ("What makes Love Actually so good?", (1,)),
    ("why notting hill and about a boy?", (0, 2)),
    ("tell me more about #3", (2,)),
    ("why number 1", (0,)),
    ("how come the last one is there", (2,)),
    ("why?", (0,)),
    ("why that one?", (0,)),
    ("why these?", (0, 1, 2)),
    ("Why not something older?", ()),
    ("why don't you suggest a horror movie", ()),
    ("I don't know why but I love comedies from the nineties, any more of those?", ()),
    ("something with Hugh Grant", ()),
])
def test_what_a_why_question_asks_about(redial, slate, message, expected):
    assert asked_why(message, slate, redial.catalog) == tuple(slate[k] for k in expected)


def test_nothing_is_asked_about_without_a_slate(redial):
    assert asked_why("why the second one?", (), redial.catalog) == ()
    assert asked_why("why number 7?", (NOTTING_HILL,), redial.catalog) == ()  # no 7th item
