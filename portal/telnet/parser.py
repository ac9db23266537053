"""The telnet byte parser: bytes in; text lines, commands and subnegotiations out.

`TelnetParser` is the base of `TelnetProtocol`: it splits bytes into text (assembled into
bounded lines, decoded in the ENCODING flag), option negotiations and subnegotiations, and
hands the last two to the hooks `_receive_negotiation` / `_receive_subneg`, which the
negotiation layer implements. Every buffer is bounded; `_parse` stops after `max_steps`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from enum import IntEnum
from typing import Any, Final

from portal.telnet.codes import DO, DONT, IAC, SB, SE, WILL, WONT
from portal.telnet.events import InputError, LineReceived, TelnetEvent, codec

_CR: Final = 13
_LF: Final = 10
_NUL: Final = 0

# In text: a line end, a run of NULs, a run of no-op commands (IAC EOR, SE, NOP, DM, BRK,
# IP, AO, AYT, EC, EL, GA), a run of escaped 0xff bytes, or any other IAC.
_TEXT_SPECIAL: Final = re.compile(rb"[\n\r]|\x00+|(?:\xff[\xef-\xf9])+|(?:\xff\xff)+|\xff")
# Where the next of them starts: each starts with one of these bytes and each of these
# bytes starts one. A bare character class is searched about eight times faster than the
# alternation, so text is scanned with this and `_TEXT_SPECIAL` only matched where it stops.
_TEXT_START: Final = re.compile(rb"[\n\r\x00\xff]")


class Parse(IntEnum):
    """Where the parser is between two bytes (part of a hand-over snapshot)."""

    DATA = 0
    IAC = 1
    NEG = 2
    SB_OPT = 3
    SB_DATA = 4
    SB_IAC = 5


# An enum member read through its class costs about 100 ns on Python 3.11 (EnumType has a
# __getattr__, which takes every class attribute off the fast path); the parser reads its
# state every step, so it reads these instead.
_DATA, _IAC, _NEG = Parse.DATA, Parse.IAC, Parse.NEG
_SB_OPT, _SB_DATA, _SB_IAC = Parse.SB_OPT, Parse.SB_DATA, Parse.SB_IAC


class TelnetParser:
    """The byte level of one telnet connection (see the module docstring)."""

    flags: dict[str, Any]
    _max_steps: int

    def __init__(self, *, max_line: int, max_subneg: int, line_timeout: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._events: list[TelnetEvent] = []
        self._max_line = max_line
        self._max_subneg = max_subneg
        self._line_timeout = line_timeout
        self._clock = clock
        self._line_started: float | None = None
        self._state = _DATA
        self._neg_cmd = 0
        self._line = bytearray()
        self._discarded = 0  # > 0 while dropping an over-long line
        self._after_cr = False
        self._sb_opt = 0
        self._sb = bytearray()
        self._sb_overflow = False

    # --- hooks (the negotiation layer and the protocol; they come first in its MRO) ---

    def _receive_negotiation(self, cmd: int, opt: int) -> None:
        raise NotImplementedError

    def _receive_subneg(self, opt: int, payload: bytes) -> None:
        raise NotImplementedError

    def _after_command(self) -> None:
        raise NotImplementedError

    def _error(self, reason: str) -> None:
        raise NotImplementedError

    def _text_codec(self) -> str:
        """The Python codec of the ENCODING flag (the protocol caches it)."""
        return codec(str(self.flags.get("ENCODING", "utf-8")))

    # --- bytes ---------------------------------------------------------------------

    def _reset_parser(self) -> None:
        self._state = _DATA
        self._sb.clear()
        self._sb_overflow = False

    def _parse(self, data: bytes, pos: int, end: int) -> int:
        """Parse `data[pos:end]` for at most `max_steps` steps; where it stopped."""
        steps = self._max_steps
        while pos < end and steps > 0:
            steps -= 1
            if self._state is _DATA:
                pos = self._parse_text(data, pos, end)
            elif self._state is _SB_DATA:
                pos = self._parse_sb_data(data, pos, end)
            else:
                self._parse_byte(data[pos])
                pos += 1
        return pos

    def _parse_text(self, data: bytes, pos: int, end: int) -> int:
        found = _TEXT_START.search(data, pos, end)
        match = _TEXT_SPECIAL.match(data, found.start(), end) if found else None
        stop = match.start() if match else end
        if stop > pos:
            self._after_cr = False
            self._add_text(data[pos:stop])
        if match is None:
            return stop
        byte = data[stop]
        size = match.end() - stop
        if byte == IAC:
            if size == 1:
                self._state = _IAC
            elif data[stop + 1] == IAC:
                self._after_cr = False
                self._add_text(b"\xff" * (size // 2))
            # else: a run of no-op commands; nothing for a MUD to do
        elif byte == _CR:
            self._end_line()
            self._after_cr = True
        elif byte == _NUL:
            self._after_cr = False  # the NUL of CR NUL; other NULs are no-ops in the NVT
        elif self._after_cr:
            self._after_cr = False  # the LF of CR LF
        else:
            self._end_line()
        return match.end()

    def _parse_sb_data(self, data: bytes, pos: int, end: int) -> int:
        stop = data.find(b"\xff", pos, end)
        if stop < 0:
            stop = end
        self._add_sb(data[pos:stop])
        if stop < end:
            self._state = _SB_IAC
            return stop + 1
        return stop

    def _parse_byte(self, byte: int) -> None:
        state = self._state
        if state is _IAC:
            self._parse_command(byte)
        elif state is _NEG:
            self._state = _DATA
            self._receive_negotiation(self._neg_cmd, byte)
            self._after_command()
        elif state is _SB_OPT:
            self._sb_opt = byte
            self._sb.clear()
            self._sb_overflow = False
            self._state = _SB_DATA
        elif state is _SB_IAC:
            self._parse_sb_iac(byte)

    def _parse_command(self, byte: int) -> None:
        if byte == IAC:
            self._state = _DATA
            self._after_cr = False
            self._add_text(b"\xff")
        elif byte in (WILL, WONT, DO, DONT):
            self._neg_cmd = byte
            self._state = _NEG
        elif byte == SB:
            self._state = _SB_OPT
        else:  # NOP, GA, EOR, AYT, ...: nothing for a MUD to do
            self._state = _DATA

    def _parse_sb_iac(self, byte: int) -> None:
        if byte == IAC:
            self._state = _SB_DATA
            self._add_sb(b"\xff")
        elif byte == SE:
            self._state = _DATA
            if not self._sb_overflow:
                self._receive_subneg(self._sb_opt, bytes(self._sb))
                self._after_command()
            self._sb.clear()
            self._sb_overflow = False
        else:
            # RFC 855 forbids other commands inside SB: drop the SB, obey the command.
            self._error(f"IAC {byte} inside subnegotiation of option {self._sb_opt}; dropped")
            self._sb.clear()
            self._sb_overflow = False
            self._parse_command(byte)

    def _add_sb(self, chunk: bytes) -> None:
        if self._sb_overflow or not chunk:
            return
        if len(self._sb) + len(chunk) > self._max_subneg:
            self._sb_overflow = True
            self._sb.clear()
            self._error(
                f"subnegotiation of option {self._sb_opt} exceeds {self._max_subneg} bytes; dropped"
            )
        else:
            self._sb += chunk

    # --- lines ---------------------------------------------------------------------

    def _add_text(self, chunk: bytes) -> None:
        if self._line_started is None:
            self._line_started = self._clock() if self._line_timeout else 0.0
        if self._discarded:
            self._discarded += len(chunk)
        elif len(self._line) + len(chunk) > self._max_line:
            self._discarded = len(self._line) + len(chunk)
            self._line.clear()
        else:
            self._line += chunk

    def _expire_line(self) -> None:
        """Drop a partial line that took longer than `line_timeout` (a slowloris)."""
        started = self._line_started
        if (self._line_timeout and started is not None
                and self._clock() - started > self._line_timeout):
            self._line.clear()
            self._discarded = 0
            self._line_started = None
            self._events.append(InputError(
                f"Your unfinished line was dropped: finish a line within "
                f"{self._line_timeout:g} seconds."))

    def _end_line(self) -> None:
        self._line_started = None
        if self._discarded:
            size, self._discarded = self._discarded, 0
            self._events.append(
                InputError(f"Line too long ({size} bytes, limit {self._max_line}); dropped.")
            )
            return
        raw = bytes(self._line)
        self._line.clear()
        try:
            text = raw.decode(self._text_codec())
        except UnicodeDecodeError:
            encoding = str(self.flags.get("ENCODING", "utf-8"))
            self._events.append(InputError(f"Input was not valid {encoding}; line dropped."))
            return
        self._events.append(LineReceived(text))

    # --- events and settling -------------------------------------------------------
