"""The sans-I/O parts of an SSH session: input lines and terminal flags.

asyncssh does the wire protocol (and, with a pty, the line editing). What is left for us
is plain: keep the unfinished line within telnet's bounds (`LineGate`, in front of the line
editor or the splitter), split a channel's text into lines with a size limit and control
characters removed, and turn what the client said about its terminal (TERM, COLORTERM,
the window size, clamped to `portal.window.MAX_WINDOW`) into Hearth's protocol flags.
Nothing here does I/O or raises on odd input.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from portal.window import clamp_window

# C0 controls but tab, DEL, and C1 controls: never passed to the game.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
_TRUECOLOR = ("truecolor", "24bit")


@dataclass(frozen=True, slots=True)
class Line:
    text: str


@dataclass(frozen=True, slots=True)
class LineTooLong:
    limit: int


@dataclass(frozen=True, slots=True)
class LineCut:
    """What was passed on of the unfinished line must be forgotten (the editor's input
    cleared): it is being dropped."""


@dataclass(frozen=True, slots=True)
class LineExpired:
    """The unfinished line was dropped: its first key came over `seconds` ago."""

    seconds: float


InputEvent = Line | LineTooLong | LineCut | LineExpired


def _size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "replace"))


def _first_end(text: str) -> int:
    ends = [i for i in (text.find("\r"), text.find("\n")) if i >= 0]
    return min(ends, default=-1)


class LineGate:
    """Keys in, keys out: what of a channel's input may go on to the line editor (or the
    `LineSplitter`), with the unfinished line bounded as telnet bounds it. An unfinished
    line over `max_line` bytes is cut (`LineCut`) and the rest of it up to its end is
    dropped here, unread (reported as `LineTooLong` when it ends); one whose first key came
    over `line_timeout` seconds ago is cut when the next key comes (`LineExpired`).
    Complete lines pass whole: the editor and splitter bound those. Work per call is two
    scans of its text, whatever the line's length so far.

    Feed text with `receive_data(text, now)`, pass on what it returns, then take
    `events_received()`.
    """

    def __init__(self, max_line: int, line_timeout: float = 0.0) -> None:
        self.max_line = max_line
        self.line_timeout = line_timeout
        self._size = 0  # bytes of the unfinished line passed on so far
        self._started: float | None = None  # when its first key came
        self._dropping = False
        self._events: list[InputEvent] = []

    def receive_data(self, text: str, now: float) -> str:
        self._expire(now)
        if self._dropping:
            text = self._drop_to_end(text)
        last = max(text.rfind("\r"), text.rfind("\n"))
        if last >= 0:  # the unfinished line ended; the tail starts the next one
            self._size, self._started = 0, None
        tail = len(text) - last - 1
        if not tail:
            return text
        if self._started is None:
            self._started = now
        self._size += _size(text[last + 1:])
        if self._size <= self.max_line:
            return text
        self._dropping = True
        if last < 0:  # the editor holds the start of this line: forget it
            self._events.append(LineCut())
        self._size = 0
        return text[:last + 1]

    def events_received(self) -> list[InputEvent]:
        events, self._events = self._events, []
        return events

    def _drop_to_end(self, text: str) -> str:
        end = _first_end(text)
        if end < 0:
            return ""
        self._dropping, self._size, self._started = False, 0, None
        self._events.append(LineTooLong(self.max_line))
        end += 2 if text.startswith("\r\n", end) else 1
        return text[end:]

    def _expire(self, now: float) -> None:
        started = self._started
        if self.line_timeout and started is not None and now - started > self.line_timeout:
            if not self._dropping:
                self._events.append(LineCut())
            self._events.append(LineExpired(self.line_timeout))
            self._size, self._started, self._dropping = 0, None, False


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

    def clear(self) -> None:
        """Forget the unfinished line (`LineCut`)."""
        self._partial, self._size, self._discarding = [], 0, False

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
    width, height = clamp_window(width), clamp_window(height)
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
