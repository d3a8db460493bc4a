"""`escape` (issue 12, item 6): whatever a member or the model wrote reads as typed and carries no markup."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from cogs.ui.wording import escape
from tests.e2e.test_escaping_e2e import live_links

# Discord drops a backslash before any punctuation character and shows the character.
_SHOWN = re.compile(r"\\([^0-9A-Za-z\s])")
MARKUP = "\\*_~|`>#-[]()<:/ "
text = st.text(alphabet=st.sampled_from(list(MARKUP) + list("ab1\n")), max_size=60)


@given(text)
def test_the_reader_sees_exactly_what_was_typed(typed):
    assert _SHOWN.sub(r"\1", escape(typed)) == typed


@given(text, text, text)
def test_no_masked_link_survives(before, label, after):
    typed = f"{before}[{label}](https://evil.example/{after})"
    assert live_links(escape(typed)) == []


@given(text)
def test_nothing_is_left_that_markdown_reads(typed):
    # Outside escapes, no character Discord's markdown gives a meaning is left.
    bare = re.sub(r"\\[^0-9A-Za-z\s]", "", escape(typed))
    assert not set(bare) & set("*_~|`>#-[]()<\\")
