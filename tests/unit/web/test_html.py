"""Colour markup to HTML: colours as Evennia's classes, and nothing else ever markup."""

from __future__ import annotations

import html.parser

from hypothesis import given
from hypothesis import strategies as st

from portal.web.html import escape_text, to_html


def test_colours_become_evennia_classes() -> None:
    assert to_html("|rred|n plain") == '<span class="color-009">red</span> plain'
    assert to_html("|Rdark") == '<span class="color-001">dark</span>'
    assert to_html("|[Bbg") == '<span class="bgcolor-004">bg</span>'
    assert to_html("|500x") == '<span class="color-196">x</span>'
    assert to_html("|=ax") == '<span class="color-016">x</span>'
    assert to_html("|#Ff8000x") == '<span style="color:#ff8000">x</span>'
    assert to_html("|h|Rbold") == '<span class="color-009">bold</span>'
    assert to_html("|uline|U") == '<span class="underline">line</span>'


def test_layout_codes_and_literal_pipe() -> None:
    assert to_html("a|/b||c|_d|-e") == "a<br>b|c d    e"
    assert to_html("one\ntwo") == "one<br>two"


def test_player_text_is_escaped() -> None:
    out = to_html('|r<script>alert("x")</script>|n<img src=x onerror=y>&amp;')
    assert "<script" not in out and "<img" not in out
    assert "&lt;script&gt;" in out and "&amp;amp;" in out


def test_control_characters_are_dropped() -> None:
    assert escape_text("a\x1b[31mb\x00c\x7f") == "a[31mbc"


class _Tags(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))
        if tag == "span":
            self.depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "span":
            self.depth -= 1
            assert self.depth >= 0, "a span closed that was never opened"


@given(st.text(alphabet=st.sampled_from(list("|<>&\"'=/[#rRhn0123459abfxX *^_-\n\x00 ")),
               max_size=80))
def test_any_input_gives_only_our_tags(text: str) -> None:
    parser = _Tags()
    parser.feed(to_html(text))
    parser.close()
    assert parser.depth == 0, "every span is closed"
    for tag, attrs in parser.tags:
        assert tag in ("span", "br"), tag
        for name, value in attrs:
            assert name in ("class", "style"), name
            assert value is not None and "<" not in value and '"' not in value


@given(st.text(max_size=200))
def test_arbitrary_text_never_raises(text: str) -> None:
    to_html(text)
