"""The presenter's whole-word check (what decides whether a reply leaks a withheld name) agrees with the
regular expression it replaced, on names and texts made of word and non-word characters, accents included."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from convrec.serve.http.present import _names_word

PIECES = st.sampled_from(["tom", "hanks", "tom hanks", " ", "-", "_", "é", "1", "a", ".", "'s", "tomtom"])


@settings(max_examples=500, deadline=None)
@given(text=st.lists(PIECES, max_size=12).map("".join), phrase=st.lists(PIECES, min_size=1, max_size=3).map("".join))
def test_whole_word_check_agrees_with_the_regular_expression(text, phrase):
    expected = re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", text) is not None
    assert _names_word(text, phrase) == expected


def test_whole_word_check_examples():
    assert _names_word("starring tom hanks.", "tom hanks")
    assert not _names_word("tom hanksy", "tom hanks")
    assert _names_word("tomtom, tom", "tom")  # the second occurrence counts
    assert not _names_word("atom", "tom")
