"""The sans-I/O parts of an SSH session: input lines and terminal flags.

asyncssh does the wire protocol (and, with a pty, the line editing). What is left for us
is plain: split a channel's text into lines with a size limit and control characters
removed, and turn what the client said about its terminal (TERM, COLORTERM, the window
size) into Hearth's protocol flags. Nothing here does I/O or raises on odd input.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# C0 controls but tab, DEL, and C1 controls: never passed to the game.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
_TRUECOLOR = ("truecolor", "24bit")


@dataclass(frozen=True, slots=True)
class Line:
    text: str


@dataclass(frozen=True, slots=True)
class LineTooLong:
    limit: int


InputEvent = Line | LineTooLong


def clean(text: str) -> str:
    """A line as the game may see it: control characters removed, ends stripped."""
    return _CONTROL.sub("", text).strip()


class LineSplitter:
    """Text in, lines out. A line longer than `max_line` bytes (UTF-8) is dropped whole
    and reported once as `LineTooLong`; work and memory per call are bounded by its input
    plus `max_line`.

    Feed text with `receive_data`, then take `events_received()`.
    """

    def __init__(self, max_line: int) -> None:
        self.max_line = max_line
        self._partial: list[str] = []
        self._size = 0  # bytes in _partial (an upper bound, counted as UTF-8)
        self._discarding = False
        self._events: list[InputEvent] = []

    def receive_data(self, text: str) -> None:
        start = 0
        while True:
            end = text.find("\n", start)
            if end < 0:
                self._add(text[start:])
                return
            self._add(text[start:end])
            self._end_line()
            start = end + 1

    def receive_eof(self) -> None:
        """A final line without a newline is still a line."""
        if self._partial or self._discarding:
            self._end_line()

    def events_received(self) -> list[InputEvent]:
        events, self._events = self._events, []
        return events

    def _add(self, piece: str) -> None:
        if not piece or self._discarding:
            return
        self._size += len(piece.encode("utf-8", "replace"))
        if self._size > self.max_line:
            self._discarding = True
            self._partial, self._size = [], 0
            self._events.append(LineTooLong(self.max_line))
            return
        self._partial.append(piece)

    def _end_line(self) -> None:
        if not self._discarding:
            self._events.append(Line(clean("".join(self._partial))))
        self._partial, self._size, self._discarding = [], 0, False


def size_flags(width: int, height: int) -> dict[str, Any]:
    """Window size flags, keyed by window 0 as telnet's NAWS sets them; 0 means unknown."""
    flags: dict[str, Any] = {}
    if width > 0:
        flags["SCREENWIDTH"] = {0: width}
    if height > 0:
        flags["SCREENHEIGHT"] = {0: height}
    return flags


def terminal_flags(term: str | None, env: Mapping[str, str], width: int, height: int,
                   client_version: str = "") -> dict[str, Any]:
    """Protocol flags of a new SSH session. With a pty (`term` set) the client is a
    terminal: ANSI colour, and xterm-256/truecolor as TERM and COLORTERM say. Without one
    (`ssh host cmd`) output is plain text for a program to read."""
    term = term or ""
    upper = term.upper()
    colorterm = env.get("COLORTERM", "").lower()
    truecolor = bool(term) and (colorterm in _TRUECOLOR
                                or upper.endswith(("-DIRECT", "-TRUECOLOR", "-24BIT")))
    flags: dict[str, Any] = {
        "ENCODING": "utf-8",
        "UTF-8": True,
        "CLIENTNAME": client_name(client_version),
        "TERM": term,
        "TTYPE": bool(term),
        "ANSI": bool(term),
        "XTERM256": truecolor or upper.endswith(("-256COLOR", "-256COLOUR")),
        "TRUECOLOR": truecolor,
        "NOCOLOR": not term,
        "SCREENREADER": False,
        "RAW": False,
        "LOCALECHO": False,
        "NOGOAHEAD": True,
        "NOPROMPTGOAHEAD": True,
        "AUTORESIZE": bool(term),
        "SCREENWIDTH": {0: 78},
        "SCREENHEIGHT": {0: 45},
        "OOB": False,
    }
    flags.update(size_flags(width, height))
    return flags


def client_name(version: str) -> str:
    """'SSH-2.0-OpenSSH_9.2p1 Debian-2' -> 'OPENSSH_9.2P1' (the software, as CLIENTNAME)."""
    parts = version.split("-", 2)
    software = parts[2] if len(parts) == 3 else version
    return software.split(" ", 1)[0][:64].upper()
