"""Evennia-style colour markup rendered to ANSI escapes for one client's abilities.

Markup (a pipe and a code):

- `|r |g |y |b |m |c |w |x`: bright foreground; `|R |G ... |X`: normal foreground.
- `|[r ...`: bright background (xterm-256, falls back to normal); `|[R ...`: normal background.
- `|500`, `|[500`: xterm-256 6x6x6 colour cube, each digit 0-5; `|=a`..`|=z`, `|[=a`: greyscale.
- `|#ff8000`, `|[#ff8000`: truecolor.
- `|n` reset, `|h` bold ("hilite"), `|H` normal intensity, `|u`/`|U` underline on/off,
  `|i`/`|I` italic on/off, `|*` inverse, `|^` blink.
- `|/` newline, `|-` tab, `|_` space, `|>` indent; `||` a literal pipe.

`render()` picks the richest form the flags allow (TRUECOLOR, else XTERM256, else the
16 ANSI colours) and degrades richer codes to the nearest colour; NOCOLOR, SCREENREADER
or a false ANSI flag strip all colour. It is on the hot output path: one precompiled
regex, and each code is translated once per mode and then looked up in a dict.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final

__all__ = ["TOKEN", "cube_index", "grey_index", "render", "strip"]

RESET: Final = "\x1b[0m"

_TOKEN: Final = re.compile(
    r"\|(\||\[?#[0-9a-fA-F]{6}|\[?[0-5]{3}|\[?=[a-z]|\[?[rgybmcwxRGYBMCWX]|[nhHuUiI*^/\-_>])"
)

_STRIP, _ANSI16, _XTERM256, _TRUECOLOR = 0, 1, 2, 3

_LETTER_INDEX: Final = {"x": 0, "r": 1, "g": 2, "y": 3, "b": 4, "m": 5, "c": 6, "w": 7}
# Evennia renders bright backgrounds as these xterm-256 cube colours.
_BRIGHT_BG_CUBE: Final = {
    "r": "500",
    "g": "050",
    "y": "550",
    "b": "005",
    "m": "505",
    "c": "055",
    "w": "555",
    "x": "222",
}
_LAYOUT: Final = {"|": "|", "/": "\n", "-": "\t", "_": " ", ">": "    "}
_STYLE: Final = {
    "n": RESET,
    "h": "\x1b[1m",
    "H": "\x1b[22m",
    "u": "\x1b[4m",
    "U": "\x1b[24m",
    "i": "\x1b[3m",
    "I": "\x1b[23m",
    "*": "\x1b[7m",
    "^": "\x1b[5m",
}
# xterm's default palette for the 16 ANSI colours, to find the nearest one.
_ANSI16_RGB: Final = (
    (0, 0, 0),
    (205, 0, 0),
    (0, 205, 0),
    (205, 205, 0),
    (0, 0, 238),
    (205, 0, 205),
    (0, 205, 205),
    (229, 229, 229),
    (127, 127, 127),
    (255, 0, 0),
    (0, 255, 0),
    (255, 255, 0),
    (92, 92, 255),
    (255, 0, 255),
    (0, 255, 255),
    (255, 255, 255),
)
_CUBE_LEVELS: Final = (0, 95, 135, 175, 215, 255)
_CACHE_LIMIT: Final = 8192  # truecolor codes are unbounded; keep the caches small

RGB = tuple[int, int, int]


def _xterm_rgb(index: int) -> RGB:
    if index < 16:
        return _ANSI16_RGB[index]
    if index >= 232:
        grey = 8 + 10 * (index - 232)
        return (grey, grey, grey)
    index -= 16
    return (_CUBE_LEVELS[index // 36], _CUBE_LEVELS[index // 6 % 6], _CUBE_LEVELS[index % 6])


def _distance(a: RGB, b: RGB) -> int:
    return (a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2 + (a[2] - b[2]) ** 2


def _nearest_ansi(rgb: RGB, *, background: bool) -> int:
    candidates = range(8) if background else range(16)
    return min(candidates, key=lambda i: _distance(rgb, _ANSI16_RGB[i]))


def _nearest_level(value: int) -> int:
    return min(range(6), key=lambda i: abs(_CUBE_LEVELS[i] - value))


def _nearest_xterm(rgb: RGB) -> int:
    cube = [_nearest_level(v) for v in rgb]
    cube_index = 16 + 36 * cube[0] + 6 * cube[1] + cube[2]
    grey_step = min(23, max(0, round((sum(rgb) / 3 - 8) / 10)))
    grey_index = 232 + grey_step
    if _distance(rgb, _xterm_rgb(grey_index)) < _distance(rgb, _xterm_rgb(cube_index)):
        return grey_index
    return cube_index


def _ansi16_code(index: int, *, background: bool) -> str:
    if background:
        return f"\x1b[4{index % 8}m"
    return f"\x1b[1;3{index - 8}m" if index >= 8 else f"\x1b[22;3{index}m"


def _rgb_code(rgb: RGB, mode: int, *, background: bool) -> str:
    if mode == _TRUECOLOR:
        return f"\x1b[{48 if background else 38};2;{rgb[0]};{rgb[1]};{rgb[2]}m"
    if mode == _XTERM256:
        return _xterm_code(_nearest_xterm(rgb), mode, background=background)
    return _ansi16_code(_nearest_ansi(rgb, background=background), background=background)


def _xterm_code(index: int, mode: int, *, background: bool) -> str:
    if mode >= _XTERM256:
        return f"\x1b[{48 if background else 38};5;{index}m"
    rgb = _xterm_rgb(index)
    return _ansi16_code(_nearest_ansi(rgb, background=background), background=background)


def _grey_index(letter: str) -> int:
    if letter == "a":
        return 16  # black
    if letter == "z":
        return 231  # white
    return 232 + ord(letter) - ord("b")


def _cube_index(digits: str) -> int:
    return 16 + 36 * int(digits[0]) + 6 * int(digits[1]) + int(digits[2])


def _translate(code: str, mode: int) -> str:
    """The escape sequence for one markup code (the text after the pipe)."""
    if code in _LAYOUT:
        return _LAYOUT[code]
    if mode == _STRIP:
        return ""
    if code in _STYLE:
        return _STYLE[code]
    background = code.startswith("[")
    body = code[1:] if background else code
    if body.startswith("#"):
        rgb = (int(body[1:3], 16), int(body[3:5], 16), int(body[5:7], 16))
        return _rgb_code(rgb, mode, background=background)
    if body.startswith("="):
        return _xterm_code(_grey_index(body[1]), mode, background=background)
    if body.isdigit():
        return _xterm_code(_cube_index(body), mode, background=background)
    return _letter_code(body, mode, background=background)


def _letter_code(letter: str, mode: int, *, background: bool) -> str:
    index = _LETTER_INDEX[letter.lower()]
    if not background:
        return _ansi16_code(index + 8 if letter.islower() else index, background=False)
    if letter.islower() and mode >= _XTERM256:
        return _xterm_code(_cube_index(_BRIGHT_BG_CUBE[letter]), mode, background=True)
    return _ansi16_code(index, background=True)


def _make_replacer(mode: int) -> Callable[[re.Match[str]], str]:
    cache: dict[str, str] = {}

    def replace(match: re.Match[str]) -> str:
        code = match.group(1)
        escape = cache.get(code)
        if escape is None:
            escape = _translate(code, mode)
            if len(cache) < _CACHE_LIMIT:
                cache[code] = escape
        return escape

    return replace


_REPLACERS: Final = tuple(_make_replacer(mode) for mode in range(4))


def _mode(flags: Mapping[str, Any]) -> int:
    if flags.get("NOCOLOR") or flags.get("SCREENREADER") or not flags.get("ANSI"):
        return _STRIP
    if flags.get("TRUECOLOR"):
        return _TRUECOLOR
    return _XTERM256 if flags.get("XTERM256") else _ANSI16


def render(text: str, flags: Mapping[str, Any]) -> str:
    """Replace colour markup with escapes the client (per its protocol flags) understands.

    Colour output ends with a reset, so colour never bleeds into the next message.
    """
    if "|" not in text:
        return text
    mode = _mode(flags)
    out = _TOKEN.sub(_REPLACERS[mode], text)
    if mode != _STRIP and "\x1b[" in out and not out.endswith(RESET):
        out += RESET
    return out


def strip(text: str) -> str:
    """Remove all colour markup; `||` becomes `|` and layout codes become whitespace."""
    if "|" not in text:
        return text
    return _TOKEN.sub(_REPLACERS[_STRIP], text)


# For other renderers of the same markup (the web client's HTML): the token regex (group 1
# is the code after the pipe) and the xterm-256 index of the cube and greyscale codes.
TOKEN: Final = _TOKEN
cube_index = _cube_index
grey_index = _grey_index
