"""Unit tests for colour markup rendering (portal/colour.py)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portal.colour import RESET, render, strip

ANSI = {"ANSI": True}
XTERM = {"ANSI": True, "XTERM256": True}
TRUE = {"ANSI": True, "XTERM256": True, "TRUECOLOR": True}
ESC = re.compile(r"\x1b\[[0-9;]*m")


@pytest.mark.parametrize(
    ("markup", "expected"),
    [
        ("|rred", "\x1b[1;31mred"),
        ("|Rred", "\x1b[22;31mred"),
        ("|xgrey", "\x1b[1;30mgrey"),
        ("|Wwhite", "\x1b[22;37mwhite"),
        ("|[Bbg", "\x1b[44mbg"),
        ("|[bbg", "\x1b[44mbg"),  # bright background falls back to normal in ANSI-16
        ("|500x", "\x1b[1;31mx"),
        ("|300x", "\x1b[22;31mx"),
        ("|[500x", "\x1b[41mx"),
        ("|=zx", "\x1b[1;37mx"),
        ("|=ax", "\x1b[22;30mx"),
        ("|#00ff00x", "\x1b[1;32mx"),
        ("|[#0000c0x", "\x1b[44mx"),
        ("|hbold|H", "\x1b[1mbold\x1b[22m"),
        ("|uline|U", "\x1b[4mline\x1b[24m"),
    ],
)
def test_ansi16(markup: str, expected: str) -> None:
    assert render(markup, ANSI) == expected + RESET


@pytest.mark.parametrize(
    ("markup", "expected"),
    [
        ("|rx", "\x1b[1;31mx"),
        ("|[rx", "\x1b[48;5;196mx"),
        ("|[Rx", "\x1b[41mx"),
        ("|135x", "\x1b[38;5;75mx"),
        ("|[135x", "\x1b[48;5;75mx"),
        ("|=bx", "\x1b[38;5;232mx"),
        ("|=yx", "\x1b[38;5;255mx"),
        ("|[=mx", "\x1b[48;5;243mx"),
        ("|#ff0000x", "\x1b[38;5;196mx"),
        ("|#808080x", "\x1b[38;5;244mx"),
    ],
)
def test_xterm256(markup: str, expected: str) -> None:
    assert render(markup, XTERM) == expected + RESET


def test_truecolor() -> None:
    assert render("|#FF8000o|[#010203b", TRUE) == ("\x1b[38;2;255;128;0mo\x1b[48;2;1;2;3mb" + RESET)
    assert render("|135x", TRUE) == "\x1b[38;5;75mx" + RESET


@pytest.mark.parametrize(
    "flags",
    [
        {"ANSI": True, "NOCOLOR": True, "TRUECOLOR": True},
        {"ANSI": True, "SCREENREADER": True},
        {"ANSI": False, "XTERM256": True},
        {},
    ],
)
def test_no_colour(flags: dict[str, Any]) -> None:
    assert render("|rRed|n |[#123456bg|n || |/x", flags) == "Red bg | \nx"


def test_literal_pipe_and_unknown_codes() -> None:
    assert render("a||b", ANSI) == "a|b"
    assert render("|||r", ANSI) == "|\x1b[1;31m" + RESET
    assert render("|z |[q |#12 |9 end|", ANSI) == "|z |[q |#12 |9 end|"
    assert render("no markup at all", TRUE) == "no markup at all"


def test_reset_appended_once() -> None:
    assert render("|rx|n", ANSI) == "\x1b[1;31mx" + RESET
    assert render("|rx", ANSI).count(RESET) == 1


def test_layout_codes() -> None:
    assert render("a|/b|-c|_d|>e", ANSI) == "a\nb\tc d    e"


def test_strip() -> None:
    assert strip("|rRed|n |[500on |#abcdefx|=a|| done|/") == "Red on x| done\n"
    assert strip("plain") == "plain"


def test_cache_handles_many_truecolor_codes() -> None:
    for value in range(0, 20000, 7):
        code = f"{value:06x}"
        assert render(f"|#{code}x", TRUE).startswith("\x1b[38;2;")


@given(st.text(alphabet=st.sampled_from("|[#=rRgGx05aAfz9nhu/ ab"), max_size=60))
def test_render_never_raises_and_strip_leaves_no_escapes(text: str) -> None:
    for flags in (ANSI, XTERM, TRUE):
        out = render(text, flags)
        assert ESC.sub("", out).count("|") <= text.count("|")
    assert "\x1b" not in strip(text)
    assert "\x1b" not in render(text, {})
