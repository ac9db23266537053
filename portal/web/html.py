"""Colour markup (see `portal.colour`) rendered as HTML for web clients.

The output uses the class names of Evennia's web client stylesheet, so Evennia's own page
shows the colours too: `color-NNN` and `bgcolor-NNN` (xterm-256 indices), `underline`,
`blink`, `inverse`, plus `italic`; truecolor becomes an inline `style` whose value is
built only from the six hex digits the markup regex matched. Everything that is not a
markup code is HTML-escaped and control characters are dropped, so nothing a player typed
can become a tag, an attribute or script in another player's page. Newlines become `<br>`
(Evennia's client relies on it); spaces are kept (both pages use `white-space: pre-wrap`).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, replace
from typing import Final

from portal.colour import TOKEN, cube_index, grey_index

__all__ = ["escape_text", "to_html"]

_LETTERS: Final = "xrgybmcw"
# Evennia shows bright backgrounds as these xterm cube colours (as portal.colour does).
_BRIGHT_BG: Final = {"r": "500", "g": "050", "y": "550", "b": "005", "m": "505",
                     "c": "055", "w": "555", "x": "222"}
_LAYOUT: Final = {"|": "|", "/": "<br>", "-": "    ", "_": " ", ">": "    "}
# C0 controls (but tab and newline), DEL and C1 controls: never sent to a page.
_CONTROL: Final = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SPECIAL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f<>&\"']")


@dataclass(frozen=True, slots=True)
class _Style:
    fg: int | str | None = None  # xterm index or "#rrggbb"
    bg: int | str | None = None
    bold: bool = False
    underline: bool = False
    italic: bool = False
    inverse: bool = False
    blink: bool = False

    def span(self) -> str:
        """The opening tag for text in this style ('' for the default style)."""
        fg = self.fg
        if self.bold and isinstance(fg, int) and fg < 8:
            fg += 8  # Evennia shows |h as the bright variant of the colour
        classes: list[str] = []
        styles: list[str] = []
        for prefix, value in (("color", fg), ("bgcolor", self.bg)):
            if isinstance(value, int):
                classes.append(f"{prefix}-{value:03d}")
            elif isinstance(value, str):
                styles.append(f"{'color' if prefix == 'color' else 'background-color'}:{value}")
        classes += [name for name in ("underline", "italic", "inverse", "blink")
                    if getattr(self, name)]
        if self.bold and fg is None:
            classes.append("bold")
        if not classes and not styles:
            return ""
        attrs = f' class="{" ".join(classes)}"' if classes else ""
        if styles:
            attrs += f' style="{";".join(styles)}"'
        return f"<span{attrs}>"


_DEFAULT: Final = _Style()
_FLAGS: Final = {"u": ("underline", True), "U": ("underline", False),
                 "i": ("italic", True), "I": ("italic", False),
                 "h": ("bold", True), "H": ("bold", False),
                 "*": ("inverse", True), "^": ("blink", True)}


def escape_text(text: str) -> str:
    """Plain text as safe HTML: escaped, control characters dropped, newlines as <br>."""
    if not _SPECIAL.search(text):
        return text  # the common case, on the hot output path
    text = _CONTROL.sub("", text).replace("\r", "").replace("\t", "    ")
    return html.escape(text, quote=True).replace("\n", "<br>")


def _colour(body: str) -> int | str:
    """The xterm index (or #rrggbb) of a colour code without its `[`."""
    if body.startswith("#"):
        return body.lower()
    if body.startswith("="):
        return grey_index(body[1])
    if body.isdigit():
        return cube_index(body)
    index = _LETTERS.index(body.lower())
    return index + 8 if body.islower() else index


def _apply(style: _Style, code: str) -> _Style:
    if code == "n":
        return _DEFAULT
    if code in _FLAGS:
        name, value = _FLAGS[code]
        return replace(style, **{name: value})
    if code.startswith("["):
        body = code[1:]
        if body in _BRIGHT_BG:
            return replace(style, bg=cube_index(_BRIGHT_BG[body]))
        if len(body) == 1 and body.isalpha() and body.isupper():
            return replace(style, bg=_LETTERS.index(body.lower()))
        return replace(style, bg=_colour(body))
    return replace(style, fg=_colour(code))


def to_html(text: str) -> str:
    """Render markup as escaped HTML; every span opened is closed at the end."""
    if "|" not in text:
        return escape_text(text)
    text = _CONTROL.sub("", text)  # also frees \x00 to mark layout codes below
    out: list[str] = []
    style = _DEFAULT
    open_span = ""  # the tag of the span currently open ('' when none)
    pos = 0
    for match in TOKEN.finditer(text):
        literal = text[pos:match.start()]
        pos = match.end()
        code = match.group(1)
        if code in _LAYOUT:
            literal += "\x00" + code  # placeholder: layout keeps the current style
        if literal:
            open_span = _emit(out, literal, style, open_span)
        if code not in _LAYOUT:
            style = _apply(style, code)
    if pos < len(text):
        open_span = _emit(out, text[pos:], style, open_span)
    if open_span:
        out.append("</span>")
    return "".join(out)


def _emit(out: list[str], literal: str, style: _Style, open_span: str) -> str:
    """Append `literal` in `style`, switching spans only when the style changed."""
    tag = style.span()
    if tag != open_span:
        if open_span:
            out.append("</span>")
        out.append(tag)
    parts = literal.split("\x00")
    out.append(escape_text(parts[0]))
    for part in parts[1:]:
        # a layout code (first character) followed by more literal text
        out.append(_LAYOUT[part[0]])
        out.append(escape_text(part[1:]))
    return tag
