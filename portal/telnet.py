"""Sans-I/O telnet protocol for the portal.

Theory of operation
-------------------
Bytes read from the socket go into `receive_data()`. A small byte-level state machine
(`_Parse`) splits them into text, option negotiations (WILL/WONT/DO/DONT) and
subnegotiations (IAC SB ... IAC SE). It never raises: hostile telnet bytes become a
`ProtocolError` event, bad player input an `InputError` event, and parsing goes on.
Every buffer is bounded: an input line by `max_line`, a subnegotiation by `max_subneg`.

Work per call is bounded too, because one client must not hold the portal's loop: a call
parses at most `max_bytes` bytes and takes at most `max_steps` steps (a step is a stretch
of text with the line end, telnet command or subnegotiation that ends it; a run of NULs,
of `IAC IAC` or of no-op commands such as `IAC NOP` is one step). What is left over waits
in `backlog`; the glue stops reading the socket and calls `receive_more()` on a later loop
turn. Flag changes are reported once per call, however many toggles it parsed.

Option state follows RFC 1143 (the "Q method"): each option has one state for our side
(we WILL, the peer says DO) and one for the peer's side (we DO, the peer says WILL),
each NO, YES, WANTNO or WANTYES plus a one-bit queue. A peer that repeats itself can
therefore never drive us into a negotiation loop. An option we do not know at all is
refused once; later requests for it are ignored.

`initiate()` makes our opening offers. Once every offer is answered (and the TTYPE/MTTS
rounds, the first NAWS report and the CHARSET request are done), or the glue calls
`settle()` on its timeout, `settled` becomes True and one `FlagsChanged` carries the
protocol flags; later changes emit another one at the end of the call that parsed them.

Everything we write (negotiation replies, text, out-of-band data) collects in one
output buffer that `data_to_send()` drains. Once MCCP2 is on, that buffer holds zlib
output and `data_to_send()` ends each batch with a sync flush; `close()` finishes the
stream.
"""

from __future__ import annotations

import json
import re
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Final

from portal.guard import text_encoding

__all__ = [
    "FlagsChanged",
    "InputError",
    "LineReceived",
    "OobReceived",
    "ProtocolError",
    "TelnetEvent",
    "TelnetProtocol",
]

# Telnet commands (RFC 854, RFC 885).
IAC: Final = 255
DONT: Final = 254
DO: Final = 253
WONT: Final = 252
WILL: Final = 251
SB: Final = 250
GA: Final = 249
SE: Final = 240
EOR_MARK: Final = 239

# Options.
ECHO: Final = 1
SGA: Final = 3
TTYPE: Final = 24
EOR: Final = 25
NAWS: Final = 31
LINEMODE: Final = 34
CHARSET: Final = 42
MSDP: Final = 69
MSSP: Final = 70
MCCP2: Final = 86
GMCP: Final = 201

# Subnegotiation codes.
TTYPE_IS: Final = 0
TTYPE_SEND: Final = 1
CHARSET_REQUEST: Final = 1
CHARSET_ACCEPTED: Final = 2
CHARSET_REJECTED: Final = 3
MSSP_VAR: Final = 1
MSSP_VAL: Final = 2
MSDP_VAR: Final = 1
MSDP_VAL: Final = 2
MSDP_TABLE_OPEN: Final = 3
MSDP_TABLE_CLOSE: Final = 4
MSDP_ARRAY_OPEN: Final = 5
MSDP_ARRAY_CLOSE: Final = 6
LINEMODE_MODE: Final = 1
LINEMODE_EDIT: Final = 1  # the client edits the line and sends it whole
LINEMODE_TRAPSIG: Final = 2  # and turns ^C etc. into telnet commands

_CR: Final = 13
_LF: Final = 10
_NUL: Final = 0

# Options we agree to perform ourselves (peer says DO) and to let the peer perform
# (peer says WILL). ECHO is agreed only while set_echo(True) wants it.
_LOCAL_OK: Final = frozenset({SGA, EOR, CHARSET, MCCP2, MSSP, GMCP, MSDP})
_REMOTE_OK: Final = frozenset({SGA, NAWS, TTYPE, CHARSET, LINEMODE})
_KNOWN: Final = _LOCAL_OK | _REMOTE_OK | {ECHO}
_OFFER_LOCAL: Final = (SGA, EOR, CHARSET, MCCP2, MSSP, GMCP, MSDP)
# DO LINEMODE, as Evennia asks: a plain BSD/inetutils `telnet` that is told WILL SGA
# without LINEMODE drops to character-at-a-time mode with local echo, so every Enter
# shows as `^M` and the answer lands on the typed line. Agreeing to LINEMODE (MODE EDIT)
# keeps it editing whole lines locally. MUD clients refuse it and see no difference.
_OFFER_REMOTE: Final = (NAWS, TTYPE, LINEMODE)
# Offers whose answer we do not wait for before settling: MSSP is for crawlers, and
# TinTin++ (2.02) never answers WILL MSSP at all; LINEMODE changes no protocol flag.
_NOT_AWAITED: Final = frozenset({MSSP, LINEMODE})

# Flags the game may set (a player's `encoding` choice) that change how we read and write.
_GAME_FLAGS: Final = ("ENCODING", "NOGOAHEAD", "NOPROMPTGOAHEAD")

# Boolean flag set while a local option is on.
_LOCAL_FLAG: Final = {SGA: "NOGOAHEAD", EOR: "EOR", MSSP: "MSSP", GMCP: "GMCP", MSDP: "MSDP"}

# MTTS bit -> flag name (https://tintin.mudhalla.net/protocols/mtts/).
_MTTS_BITS: Final = (
    (1, "ANSI"),
    (2, "VT100"),
    (4, "UTF-8"),
    (8, "XTERM256"),
    (16, "MOUSE_TRACKING"),
    (32, "OSC_COLOR_PALETTE"),
    (64, "SCREENREADER"),
    (128, "PROXY"),
    (256, "TRUECOLOR"),
    (512, "MNES"),
    (1024, "MSLP"),
    (2048, "SSL"),
)
# Clients known to do xterm-256 colour when they report only their name.
_XTERM256_CLIENTS: Final = frozenset(
    {
        "ATLANTIS",
        "AXMUD",
        "BEIP",
        "BLOWTORCH",
        "CMUD",
        "KILDCLIENT",
        "MUDLET",
        "MUSHCLIENT",
        "POTATO",
        "PUTTY",
        "TINTIN++",
        "TINYFUGUE",
        "ZMUD",
    }
)

# Evennia's hard-wired GMCP names; everything else is derived from the name.
_EVENNIA_TO_GMCP: Final = {
    "client_options": "Core.Supports.Get",
    "get_inputfuncs": "Core.Commands.Get",
    "get_value": "Char.Value.Get",
    "repeat": "Char.Repeat.Update",
    "monitor": "Char.Monitor.Update",
}
_GMCP_TO_EVENNIA: Final = {v.lower(): k for k, v in _EVENNIA_TO_GMCP.items()}
# MSDP's generic commands are renamed so they do not collide with inputfuncs.
_MSDP_RENAMED: Final = frozenset({"list", "report", "reset", "send", "unreport"})
_MSDP_MAX_DEPTH: Final = 16

# In text: a line end, a run of NULs, a run of no-op commands (IAC EOR, SE, NOP, DM, BRK,
# IP, AO, AYT, EC, EL, GA), a run of escaped 0xff bytes, or any other IAC.
_TEXT_SPECIAL: Final = re.compile(rb"[\n\r]|\x00+|(?:\xff[\xef-\xf9])+|(?:\xff\xff)+|\xff")
# A client may ask for MSSP (a table built from the whole portal) and restart MCCP2 (a
# new zlib stream) only this often per connection; crawlers and clients need one or two.
_MAX_MSSP: Final = 4
_MAX_MCCP_STARTS: Final = 8
_MSDP_TOKEN: Final = re.compile(rb"[\x01-\x06]|[^\x01-\x06]+")
_MSDP_STRIP: Final = bytes(range(7))


# --- events -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LineReceived:
    """One input line, decoded, without its line ending."""

    text: str


@dataclass(frozen=True, slots=True)
class OobReceived:
    """An out-of-band command from GMCP or MSDP, named as Evennia names inputfuncs."""

    cmdname: str
    args: list[Any]
    kwargs: dict[str, Any]


@dataclass(frozen=True, slots=True)
class FlagsChanged:
    """A full copy of the protocol flags, after settling and after each later change."""

    flags: dict[str, Any]


@dataclass(frozen=True, slots=True)
class InputError:
    """Player input was dropped; the glue sends `message` to the player."""

    message: str


@dataclass(frozen=True, slots=True)
class ProtocolError:
    """Invalid or hostile telnet bytes were ignored; the glue logs `reason`."""

    reason: str


TelnetEvent = LineReceived | OobReceived | FlagsChanged | InputError | ProtocolError


# --- option state (RFC 1143) -------------------------------------------------------


class _Q(IntEnum):
    NO = 0
    YES = 1
    WANTNO = 2
    WANTYES = 3


@dataclass(slots=True)
class _Side:
    state: _Q = _Q.NO
    opposite: bool = False


class _Parse(IntEnum):
    DATA = 0
    IAC = 1
    NEG = 2
    SB_OPT = 3
    SB_DATA = 4
    SB_IAC = 5


def default_flags() -> dict[str, Any]:
    """Protocol flags of a fresh telnet session (Evennia's names and defaults).

    SCREENWIDTH/SCREENHEIGHT are keyed by window id (int 0); msgpack keeps int keys.
    """
    flags: dict[str, Any] = {
        "ENCODING": "utf-8",
        "SCREENREADER": False,
        "INPUTDEBUG": False,
        "RAW": False,
        "NOCOLOR": False,
        "LOCALECHO": False,
        "NOPKEEPALIVE": True,
        "FORCEDENDLINE": True,
        "TTYPE": False,
        "CLIENTNAME": "",
        "TERM": "",
        "NOGOAHEAD": True,
        "NOPROMPTGOAHEAD": True,
        "SCREENWIDTH": {0: 78},
        "SCREENHEIGHT": {0: 45},
        "AUTORESIZE": False,
        "EOR": False,
        "CHARSET": "",
        "MCCP": False,
        "MSSP": False,
        "GMCP": False,
        "MSDP": False,
        "OOB": False,
        "MXP": False,
    }
    for _bit, name in _MTTS_BITS:
        flags.setdefault(name, False)
    flags["ANSI"] = True
    return flags


def _copy_flags(flags: dict[str, Any]) -> dict[str, Any]:
    return {k: dict(v) if isinstance(v, dict) else v for k, v in flags.items()}


def _codec(name: object) -> str:
    """The Python codec for an ENCODING flag; anything but a real text encoding is utf-8."""
    return text_encoding(name) or "utf-8"


class TelnetProtocol:
    """One telnet connection, without I/O.

    Feed bytes with `receive_data()` / `receive_eof()`, read `events_received()`,
    write whatever `data_to_send()` returns after any call.
    """

    def __init__(
        self,
        *,
        max_line: int = 4096,
        max_subneg: int = 8192,
        mssp: Callable[[], dict[str, str]] | None = None,
        server_name: str = "Hearth",
        max_bytes: int = 65536,
        max_steps: int = 512,
        line_timeout: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.flags: dict[str, Any] = default_flags()
        self.settled = False
        self._max_line = max_line
        self._max_bytes = max_bytes
        self._max_steps = max_steps
        self._line_timeout = line_timeout
        self._clock = clock
        self._in = b""  # bytes received and not parsed yet (over the budget)
        self._in_pos = 0
        self._line_started: float | None = None
        self._mssp_sent = 0
        self._mccp_starts = 0
        self._max_subneg = max_subneg
        self._mssp = mssp
        self._server_name = server_name
        self._events: list[TelnetEvent] = []
        self._out = bytearray()
        self._compressor: Any = None  # zlib.Compress; its type is private in typeshed
        self._compressed_pending = False
        self._closed = False
        self._eof = False
        # parser
        self._state = _Parse.DATA
        self._neg_cmd = 0
        self._line = bytearray()
        self._discarded = 0  # > 0 while dropping an over-long line
        self._after_cr = False
        self._sb_opt = 0
        self._sb = bytearray()
        self._sb_overflow = False
        # negotiation
        self._us: dict[int, _Side] = {}
        self._him: dict[int, _Side] = {}
        self._refused: set[tuple[bool, int]] = set()
        self._want_echo = False
        self._initiated = False
        self._pending: set[str] = set()
        self._ttype_names: list[str] = []
        self._ttype_waiting = False
        self._charset_waiting = False
        self._reported: dict[str, Any] = {}

    # --- public API ----------------------------------------------------------------

    def initiate(self) -> None:
        """Queue our opening offers; then call `data_to_send()`."""
        if self._initiated:
            return
        self._initiated = True
        for opt in _OFFER_LOCAL:
            self._offer(opt, local=True)
        for opt in _OFFER_REMOTE:
            self._offer(opt, local=False)
        self._after_command()

    def receive_data(self, data: bytes) -> None:
        """Parse bytes from the client, within the budget; see `backlog`. Never raises."""
        if self._eof or not data:
            return
        if self._in_pos < len(self._in):
            self._in = self._in[self._in_pos :] + bytes(data)
        else:
            self._in = bytes(data)
        self._in_pos = 0
        self._run()

    @property
    def backlog(self) -> int:
        """Bytes received but not parsed yet: call `receive_more()` (on a later loop turn)."""
        return len(self._in) - self._in_pos

    def receive_more(self) -> None:
        """Parse the next budget's worth of the backlog."""
        if self.backlog and not self._eof:
            self._run()

    def _run(self) -> None:
        self._expire_line()
        data, pos = self._in, self._in_pos
        stop = min(len(data), pos + self._max_bytes)
        try:
            pos = self._parse(data, pos, stop)
        except Exception as exc:  # last line of defence: a bug must not kill the portal
            self._reset_parser()
            self._line.clear()  # the rest of this chunk is lost; start on a clean line
            self._discarded = 0
            self._line_started = None
            self._events.append(ProtocolError(f"internal parser error: {exc!r}"))
            pos = stop
        if pos >= len(data):
            self._in, pos = b"", 0
        self._in_pos = pos
        if self.settled and self.flags != self._reported:
            self._report_flags()

    def receive_eof(self) -> None:
        """The client closed its side. A final unterminated line is still delivered,
        unless input was still waiting in the backlog (then the rest is dropped)."""
        if self._eof:
            return
        if (self._line or self._discarded) and not self.backlog:
            self._end_line()
        self._in, self._in_pos = b"", 0
        self._eof = True
        self._reset_parser()

    def events_received(self) -> list[TelnetEvent]:
        """Return and forget the events produced so far."""
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> bytes:
        """Return and forget the bytes to write, compressed if MCCP2 is active."""
        if self._compressor is not None and self._compressed_pending:
            self._out += self._compressor.flush(zlib.Z_SYNC_FLUSH)
            self._compressed_pending = False
        data = bytes(self._out)
        self._out.clear()
        return data

    def settle(self) -> None:
        """Stop waiting for negotiation (the glue's timeout); emits FlagsChanged once."""
        if not self.settled:
            self._mark_settled()

    def send_text(self, text: str, *, prompt: bool = False) -> None:
        """Queue rendered text; a prompt ends with IAC EOR or IAC GA as negotiated."""
        if "\n" in text:
            text = text.replace("\r\n", "\n").replace("\n", "\r\n")
        data = text.encode(_codec(str(self.flags.get("ENCODING", "utf-8"))), errors="replace")
        if b"\xff" in data:
            data = data.replace(b"\xff", b"\xff\xff")
        if prompt:
            data += self._prompt_mark()
        self._write(data)

    def send_oob(self, cmdname: str, args: list[Any], kwargs: dict[str, Any]) -> None:
        """Queue an OOB command over GMCP if agreed, else MSDP if agreed, else drop it."""
        if self._on(GMCP, local=True):
            self._send_sb(GMCP, _encode_gmcp(cmdname, args, kwargs))
        elif self._on(MSDP, local=True):
            self._send_sb(MSDP, _encode_msdp(cmdname, args, kwargs))

    def set_echo(self, hidden: bool) -> None:
        """hidden=True offers WILL ECHO (client stops echoing, for passwords); False, WONT."""
        self._want_echo = hidden
        self._request(ECHO, local=True, enable=hidden)

    def update_flags(self, flags: dict[str, Any]) -> None:
        """Take the flags the game may change (ENCODING, NOGOAHEAD, NOPROMPTGOAHEAD).

        Emits no FlagsChanged: the change came from the game, which already knows it.
        """
        for key in _GAME_FLAGS:
            if key in flags and flags[key] != self.flags.get(key):
                value = flags[key]
                if key == "ENCODING" and text_encoding(value) is None:
                    self._error(f"the game set ENCODING {value!r}, which is not a text "
                                f"encoding; {self.flags.get('ENCODING')!r} kept")
                    continue
                self.flags[key] = self._reported[key] = value

    def close(self) -> None:
        """End the MCCP2 stream cleanly; `data_to_send()` then returns the last bytes."""
        self._end_mccp()
        self._closed = True

    # --- output --------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if self._closed or not data:
            return
        if self._compressor is None:
            self._out += data
        else:
            self._out += self._compressor.compress(data)
            self._compressed_pending = True

    def _send_cmd(self, cmd: int, opt: int) -> None:
        self._write(bytes((IAC, cmd, opt)))

    def _send_sb(self, opt: int, payload: bytes) -> None:
        body = payload.replace(b"\xff", b"\xff\xff")
        self._write(bytes((IAC, SB, opt)) + body + bytes((IAC, SE)))

    def _prompt_mark(self) -> bytes:
        if self._on(EOR, local=True):
            return bytes((IAC, EOR_MARK))
        if not self.flags.get("NOGOAHEAD") or not self.flags.get("NOPROMPTGOAHEAD"):
            return bytes((IAC, GA))
        return b""

    # --- byte parser ---------------------------------------------------------------

    def _reset_parser(self) -> None:
        self._state = _Parse.DATA
        self._sb.clear()
        self._sb_overflow = False

    def _parse(self, data: bytes, pos: int, end: int) -> int:
        """Parse `data[pos:end]` for at most `max_steps` steps; where it stopped."""
        steps = self._max_steps
        while pos < end and steps > 0:
            steps -= 1
            if self._state is _Parse.DATA:
                pos = self._parse_text(data, pos, end)
            elif self._state is _Parse.SB_DATA:
                pos = self._parse_sb_data(data, pos, end)
            else:
                self._parse_byte(data[pos])
                pos += 1
        return pos

    def _parse_text(self, data: bytes, pos: int, end: int) -> int:
        match = _TEXT_SPECIAL.search(data, pos, end)
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
                self._state = _Parse.IAC
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
            self._state = _Parse.SB_IAC
            return stop + 1
        return stop

    def _parse_byte(self, byte: int) -> None:
        state = self._state
        if state is _Parse.IAC:
            self._parse_command(byte)
        elif state is _Parse.NEG:
            self._state = _Parse.DATA
            self._receive_negotiation(self._neg_cmd, byte)
            self._after_command()
        elif state is _Parse.SB_OPT:
            self._sb_opt = byte
            self._sb.clear()
            self._sb_overflow = False
            self._state = _Parse.SB_DATA
        elif state is _Parse.SB_IAC:
            self._parse_sb_iac(byte)

    def _parse_command(self, byte: int) -> None:
        if byte == IAC:
            self._state = _Parse.DATA
            self._after_cr = False
            self._add_text(b"\xff")
        elif byte in (WILL, WONT, DO, DONT):
            self._neg_cmd = byte
            self._state = _Parse.NEG
        elif byte == SB:
            self._state = _Parse.SB_OPT
        else:  # NOP, GA, EOR, AYT, ...: nothing for a MUD to do
            self._state = _Parse.DATA

    def _parse_sb_iac(self, byte: int) -> None:
        if byte == IAC:
            self._state = _Parse.SB_DATA
            self._add_sb(b"\xff")
        elif byte == SE:
            self._state = _Parse.DATA
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
        encoding = str(self.flags.get("ENCODING", "utf-8"))
        try:
            text = raw.decode(_codec(encoding))
        except UnicodeDecodeError:
            self._events.append(InputError(f"Input was not valid {encoding}; line dropped."))
            return
        self._events.append(LineReceived(text))

    # --- events and settling -------------------------------------------------------

    def _error(self, reason: str) -> None:
        self._events.append(ProtocolError(reason))

    def _after_command(self) -> None:
        """Settle if every handshake is done. Later flag changes are reported once, at the
        end of the call that parsed them (`_run`), so a flood of toggles costs one report."""
        if not self.settled and self._initiated and not self._pending:
            self._mark_settled()

    def _mark_settled(self) -> None:
        self.settled = True
        self._report_flags()

    def _report_flags(self) -> None:
        self._reported = _copy_flags(self.flags)
        self._events.append(FlagsChanged(_copy_flags(self.flags)))

    def _done(self, key: str) -> None:
        self._pending.discard(key)

    # --- negotiation (RFC 1143) ----------------------------------------------------

    def _side(self, opt: int, local: bool) -> _Side:
        table = self._us if local else self._him
        side = table.get(opt)
        if side is None:
            side = table[opt] = _Side()
        return side

    def _on(self, opt: int, *, local: bool) -> bool:
        side = (self._us if local else self._him).get(opt)
        return side is not None and side.state is _Q.YES

    def _agrees(self, opt: int, local: bool) -> bool:
        if local and opt == MCCP2 and self._mccp_starts >= _MAX_MCCP_STARTS:
            return False
        if local:
            return opt in _LOCAL_OK or (opt == ECHO and self._want_echo)
        return opt in _REMOTE_OK

    def _offer(self, opt: int, *, local: bool) -> None:
        if self._side(opt, local).state is _Q.NO:
            if opt not in _NOT_AWAITED:
                self._pending.add(_offer_key(opt, local))
            self._request(opt, local=local, enable=True)

    def _request(self, opt: int, *, local: bool, enable: bool) -> None:
        """Our own wish to turn an option on or off (RFC 1143 section 7)."""
        side = self._side(opt, local)
        yes, no = (WILL, WONT) if local else (DO, DONT)
        state = side.state
        if state is _Q.NO and enable:
            self._move(side, _Q.WANTYES, opt, local)
            self._send_cmd(yes, opt)
        elif state is _Q.YES and not enable:
            self._move(side, _Q.WANTNO, opt, local)
            self._send_cmd(no, opt)
        elif state is _Q.WANTNO:
            side.opposite = enable
        elif state is _Q.WANTYES:
            side.opposite = not enable

    def _receive_negotiation(self, cmd: int, opt: int) -> None:
        local = cmd in (DO, DONT)
        self._done(_offer_key(opt, local))
        if opt not in _KNOWN:
            self._refuse_unknown(cmd, opt, local)
        elif cmd in (WILL, DO):
            self._receive_enable(opt, local)
        else:
            self._receive_disable(opt, local)

    def _refuse_unknown(self, cmd: int, opt: int, local: bool) -> None:
        if cmd in (WONT, DONT) or (local, opt) in self._refused:
            return
        self._refused.add((local, opt))
        self._send_cmd(WONT if local else DONT, opt)

    def _receive_enable(self, opt: int, local: bool) -> None:
        side = self._side(opt, local)
        yes, no = (WILL, WONT) if local else (DO, DONT)
        state = side.state
        if state is _Q.NO:
            if self._agrees(opt, local):
                # Reply first: enabling may start MCCP2 or send a subnegotiation.
                self._send_cmd(yes, opt)
                self._move(side, _Q.YES, opt, local)
            else:
                self._send_cmd(no, opt)
        elif state is _Q.WANTNO:
            # An error by the peer (it answered our "no" with "yes"): RFC 1143 settles it.
            self._move(side, _Q.YES if side.opposite else _Q.NO, opt, local)
            side.opposite = False
        elif state is _Q.WANTYES:
            if side.opposite:
                side.opposite = False
                self._move(side, _Q.WANTNO, opt, local)
                self._send_cmd(no, opt)
            else:
                self._move(side, _Q.YES, opt, local)

    def _receive_disable(self, opt: int, local: bool) -> None:
        side = self._side(opt, local)
        yes, no = (WILL, WONT) if local else (DO, DONT)
        state = side.state
        if state is _Q.YES:
            self._move(side, _Q.NO, opt, local)
            self._send_cmd(no, opt)
        elif state is _Q.WANTNO and side.opposite:
            side.opposite = False
            self._move(side, _Q.WANTYES, opt, local)
            self._send_cmd(yes, opt)
        elif state in (_Q.WANTNO, _Q.WANTYES):
            side.opposite = False
            self._move(side, _Q.NO, opt, local)

    def _move(self, side: _Side, new: _Q, opt: int, local: bool) -> None:
        old, side.state = side.state, new
        if old is new:
            return
        if new is _Q.YES:
            self._enabled(opt, local)
        elif old is _Q.YES or new is _Q.NO:
            self._disabled(opt, local)  # effects are idempotent: WANTNO -> NO repeats it

    # --- option effects ------------------------------------------------------------

    def _enabled(self, opt: int, local: bool) -> None:
        if not local:
            self._remote_enabled(opt)
            return
        if opt in _LOCAL_FLAG:
            self.flags[_LOCAL_FLAG[opt]] = True
        if opt in (GMCP, MSDP):
            self.flags["OOB"] = True
        elif opt == MCCP2:
            self._start_mccp()
        elif opt == MSSP:
            self._send_mssp()
        elif opt == CHARSET:
            self._request_charset()

    def _disabled(self, opt: int, local: bool) -> None:
        if not local:
            self._remote_disabled(opt)
            return
        if opt in _LOCAL_FLAG:
            self.flags[_LOCAL_FLAG[opt]] = False
        if opt in (GMCP, MSDP):
            self.flags["OOB"] = self._on(GMCP, local=True) or self._on(MSDP, local=True)
        elif opt == MCCP2:
            self._end_mccp()
        elif opt == CHARSET:
            self._charset_waiting = False
            self._done("charset")

    def _remote_enabled(self, opt: int) -> None:
        if opt == NAWS:
            self.flags["AUTORESIZE"] = True
            self._pending.add("naws")
        elif opt == TTYPE and not self.flags.get("TTYPE"):
            self._pending.add("ttype")
            self._ttype_names.clear()
            self._ask_ttype()
        elif opt == LINEMODE:
            self._send_sb(LINEMODE, bytes((LINEMODE_MODE, LINEMODE_EDIT | LINEMODE_TRAPSIG)))

    def _remote_disabled(self, opt: int) -> None:
        if opt == NAWS:
            self.flags["AUTORESIZE"] = False
            self._done("naws")
        elif opt == TTYPE:
            self._ttype_waiting = False
            self._done("ttype")

    # --- MCCP2 ---------------------------------------------------------------------

    def _start_mccp(self) -> None:
        if self._compressor is not None or self._closed:
            return
        # The start marker itself goes out uncompressed; everything after it is zlib.
        self._out += bytes((IAC, SB, MCCP2, IAC, SE))
        self._compressor = zlib.compressobj()
        self._mccp_starts += 1
        self.flags["MCCP"] = True

    def _end_mccp(self) -> None:
        if self._compressor is None:
            return
        self._out += self._compressor.flush(zlib.Z_FINISH)
        self._compressor = None
        self._compressed_pending = False
        self.flags["MCCP"] = False

    # --- MSSP ----------------------------------------------------------------------

    def _send_mssp(self) -> None:
        if self._mssp_sent >= _MAX_MSSP:
            self._error(f"MSSP asked for more than {_MAX_MSSP} times; not sent again")
            return
        self._mssp_sent += 1
        table: dict[str, str] = {"NAME": self._server_name}
        if self._mssp is not None:
            try:
                table = {str(k): str(v) for k, v in self._mssp().items()}
            except Exception as exc:  # the callback is the game's code, not ours
                self._error(f"MSSP table callback failed: {exc!r}")
            table.setdefault("NAME", self._server_name)
        payload = b"".join(
            bytes((MSSP_VAR,)) + _mssp_text(k) + bytes((MSSP_VAL,)) + _mssp_text(v)
            for k, v in table.items()
        )
        self._send_sb(MSSP, payload)

    # --- subnegotiations -----------------------------------------------------------

    def _receive_subneg(self, opt: int, payload: bytes) -> None:
        if opt == NAWS and self._on(NAWS, local=False):
            self._receive_naws(payload)
        elif opt == TTYPE and self._on(TTYPE, local=False):
            self._receive_ttype(payload)
        elif opt == CHARSET and (self._on(CHARSET, local=True) or self._on(CHARSET, local=False)):
            self._receive_charset(payload)
        elif opt == GMCP and self._on(GMCP, local=True):
            self._receive_gmcp(payload)
        elif opt == MSDP and self._on(MSDP, local=True):
            self._receive_msdp(payload)
        elif opt == LINEMODE and self._on(LINEMODE, local=False):
            pass  # MODE ACK, SLC, FORWARDMASK: the client edits lines; nothing for us to do
        else:
            self._error(f"subnegotiation for option {opt}, which is not enabled; ignored")

    def _receive_naws(self, payload: bytes) -> None:
        if len(payload) != 4:
            self._error(f"NAWS subnegotiation of {len(payload)} bytes (want 4); ignored")
            return
        width = payload[0] << 8 | payload[1]
        height = payload[2] << 8 | payload[3]
        # 0 means "unknown" (RFC 1073): keep what we had.
        if width and self.flags["SCREENWIDTH"] != {0: width}:
            self.flags["SCREENWIDTH"] = {0: width}
        if height and self.flags["SCREENHEIGHT"] != {0: height}:
            self.flags["SCREENHEIGHT"] = {0: height}
        self._done("naws")

    # TTYPE / MTTS: round 1 is the client name, round 2 the terminal type, round 3
    # "MTTS <bits>". A client that repeats a name has nothing more to tell.

    def _ask_ttype(self) -> None:
        self._ttype_waiting = True
        self._send_sb(TTYPE, bytes((TTYPE_SEND,)))

    def _receive_ttype(self, payload: bytes) -> None:
        if not payload or payload[0] != TTYPE_IS:
            self._error("TTYPE subnegotiation without IS; ignored")
            return
        if not self._ttype_waiting:
            self._error("unsolicited TTYPE IS; ignored")
            return
        self._ttype_waiting = False
        name = payload[1:].decode("ascii", errors="replace").strip()
        names = self._ttype_names
        if names and name.upper() == names[-1].upper():
            self._finish_ttype()
            return
        names.append(name)
        if len(names) == 1:
            self._apply_client_name(name)
        elif len(names) == 2:
            self._apply_term(name)
        else:
            self._apply_mtts(name)
        if len(names) >= 3:
            self._finish_ttype()
        else:
            self._ask_ttype()

    def _finish_ttype(self) -> None:
        self.flags["TTYPE"] = True
        self._done("ttype")

    def _apply_client_name(self, name: str) -> None:
        upper = name.upper()
        base = upper.split()[0] if upper.split() else ""
        self.flags["CLIENTNAME"] = upper
        self.flags["ANSI"] = True  # every client that answers TTYPE does ANSI
        if base in _XTERM256_CLIENTS or _term_is_256(upper):
            self.flags["XTERM256"] = True
        if _term_is_truecolor(upper):
            self.flags["TRUECOLOR"] = True
        if base == "MUDLET":
            self.flags["NOPROMPTGOAHEAD"] = False  # Mudlet's prompt triggers want GA

    def _apply_term(self, term: str) -> None:
        self.flags["TERM"] = term
        upper = term.upper()
        if _term_is_256(upper):
            self.flags["XTERM256"] = True
        if _term_is_truecolor(upper):
            self.flags["XTERM256"] = True
            self.flags["TRUECOLOR"] = True

    def _apply_mtts(self, text: str) -> None:
        kind, _, number = text.partition(" ")
        number = number.strip()
        if kind.upper() != "MTTS" or not number.isdigit() or len(number) > 10:
            return
        bits = int(number)
        for bit, name in _MTTS_BITS:
            self.flags[name] = bool(bits & bit)

    # CHARSET (RFC 2066): we ask for UTF-8 once the client agrees to the option.

    def _request_charset(self) -> None:
        if self._charset_waiting:
            return
        self._charset_waiting = True
        self._pending.add("charset")
        self._send_sb(CHARSET, bytes((CHARSET_REQUEST,)) + b";UTF-8")

    def _receive_charset(self, payload: bytes) -> None:
        code, body = (payload[0], payload[1:]) if payload else (-1, b"")
        if code == CHARSET_REQUEST:
            self._receive_charset_request(body)
        elif code in (CHARSET_ACCEPTED, CHARSET_REJECTED) and self._charset_waiting:
            self._charset_waiting = False
            self._done("charset")
            if code == CHARSET_ACCEPTED:
                self._accept_charset(body.decode("ascii", errors="replace").strip())
        else:
            self._error(f"unexpected CHARSET subnegotiation (code {code}); ignored")

    def _accept_charset(self, name: str) -> None:
        if name.upper() not in ("UTF-8", "UTF8"):
            self._error(f"client accepted charset {name!r}, which we did not offer; ignored")
            return
        self.flags["ENCODING"] = "utf-8"
        self.flags["CHARSET"] = "UTF-8"
        self.flags["UTF-8"] = True

    def _receive_charset_request(self, body: bytes) -> None:
        # While our own REQUEST is outstanding the client must answer ours (RFC 2066).
        chosen = None if self._charset_waiting else _choose_charset(body)
        if chosen is None:
            self._send_sb(CHARSET, bytes((CHARSET_REJECTED,)))
            return
        self._send_sb(CHARSET, bytes((CHARSET_ACCEPTED,)) + chosen.encode("ascii"))
        self.flags["ENCODING"] = _codec(chosen)
        self.flags["CHARSET"] = chosen.upper()

    # GMCP and MSDP.

    def _receive_gmcp(self, payload: bytes) -> None:
        try:
            event = _decode_gmcp(payload)
        except ValueError as exc:
            self._error(f"bad GMCP message: {exc}")
            return
        self._events.append(event)

    def _receive_msdp(self, payload: bytes) -> None:
        try:
            events = _decode_msdp(payload)
        except ValueError as exc:
            self._error(f"bad MSDP message: {exc}")
            return
        self._events.extend(events)


# --- helpers (pure) ------------------------------------------------------------------


def _offer_key(opt: int, local: bool) -> str:
    return f"{'us' if local else 'him'}:{opt}"


def _term_is_256(upper: str) -> bool:
    return upper.endswith(("-256COLOR", "-256COLOUR")) or upper == "XTERM"


def _term_is_truecolor(upper: str) -> bool:
    return upper.endswith(("-TRUECOLOR", "-DIRECT", "-24BIT"))


def _mssp_text(value: str) -> bytes:
    return value.encode("utf-8", errors="replace").translate(None, b"\x00\x01\x02")


def _choose_charset(body: bytes) -> str | None:
    """Pick a charset from a client's REQUEST (`[TTABLE <ver>] <sep>name<sep>name...`)."""
    if body.startswith(b"[TTABLE]"):
        body = body[len(b"[TTABLE]") + 1 :]
    if len(body) < 2:
        return None
    names = body[1:].decode("ascii", errors="replace").split(chr(body[0]))
    for name in names:
        if name.upper() in ("UTF-8", "UTF8"):
            return name
    # _codec() maps unknown names to utf-8, so this finds the first other known charset.
    return next((name for name in names if name and _codec(name) != "utf-8"), None)


@dataclass(slots=True)
class _Oob:
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)

    def add(self, value: Any) -> None:
        if isinstance(value, dict):
            self.kwargs.update(value)
        elif isinstance(value, list):
            self.args.extend(value)
        else:
            self.args.append(value)


def _gmcp_cmdname(package: str) -> str:
    """GMCP "Package.Name" -> inputfunc name, following Evennia's telnet_oob."""
    lower = package.lower()
    if lower in _GMCP_TO_EVENNIA:
        return _GMCP_TO_EVENNIA[lower]
    return lower.replace(".", "_").removeprefix("core_")


def _decode_gmcp(payload: bytes) -> OobReceived:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError("not utf-8") from exc
    parts = text.split(None, 1)
    if not parts:
        raise ValueError("empty message")
    oob = _Oob()
    if len(parts) == 2:
        try:
            oob.add(json.loads(parts[1]))
        except (ValueError, RecursionError):
            oob.args.append(parts[1])  # not JSON: pass the raw text on, as Evennia does
    oob.kwargs = {k: v for k, v in oob.kwargs.items() if k}
    return OobReceived(_gmcp_cmdname(parts[0]), oob.args, oob.kwargs)


def _gmcp_package(cmdname: str) -> str:
    if cmdname in _EVENNIA_TO_GMCP:
        return _EVENNIA_TO_GMCP[cmdname]
    if "_" in cmdname:
        return ".".join(w if w.isupper() else w.capitalize() for w in cmdname.split("_"))
    return "Core." + (cmdname if cmdname.istitle() else cmdname.capitalize())


def _encode_gmcp(cmdname: str, args: list[Any], kwargs: dict[str, Any]) -> bytes:
    package = _gmcp_package(cmdname)
    data: Any
    if args:
        data = args[0] if len(args) == 1 else args
        if kwargs:
            data = [data, kwargs]
    elif kwargs:
        data = kwargs
    else:
        return package.encode("utf-8")
    return f"{package} {json.dumps(data, ensure_ascii=False, default=str)}".encode()


def _msdp_text(value: Any) -> bytes:
    if isinstance(value, bool):
        value = int(value)
    text = "" if value is None else str(value)
    return text.encode("utf-8", errors="replace").translate(None, _MSDP_STRIP)


def _msdp_value(value: Any, depth: int = 0) -> bytes:
    if depth < _MSDP_MAX_DEPTH and isinstance(value, dict):
        inner = b"".join(
            bytes((MSDP_VAR,)) + _msdp_text(k) + bytes((MSDP_VAL,)) + _msdp_value(v, depth + 1)
            for k, v in value.items()
        )
        return bytes((MSDP_TABLE_OPEN,)) + inner + bytes((MSDP_TABLE_CLOSE,))
    if depth < _MSDP_MAX_DEPTH and isinstance(value, list | tuple):
        inner = b"".join(bytes((MSDP_VAL,)) + _msdp_value(v, depth + 1) for v in value)
        return bytes((MSDP_ARRAY_OPEN,)) + inner + bytes((MSDP_ARRAY_CLOSE,))
    return _msdp_text(value)


def _encode_msdp(cmdname: str, args: list[Any], kwargs: dict[str, Any]) -> bytes:
    head = bytes((MSDP_VAR,)) + _msdp_text(cmdname.upper()) + bytes((MSDP_VAL,))
    if not args and not kwargs:
        return head
    out = b""
    if args:
        out += head + _msdp_value(args[0] if len(args) == 1 else list(args))
    if kwargs:
        out += head + _msdp_value(dict(kwargs))
    return out


class _MsdpReader:
    """Recursive-descent reader for MSDP VAR/VAL/TABLE/ARRAY, depth-limited."""

    def __init__(self, payload: bytes) -> None:
        self.tokens: list[bytes] = _MSDP_TOKEN.findall(payload)
        self.pos = 0

    def peek(self) -> int | None:
        """Control code of the next token, 0 for text, None at the end."""
        if self.pos >= len(self.tokens):
            return None
        tok = self.tokens[self.pos]
        return tok[0] if len(tok) == 1 and tok[0] <= MSDP_ARRAY_CLOSE else 0

    def pairs(self, depth: int, closer: int | None) -> list[tuple[str, list[Any]]]:
        result: list[tuple[str, list[Any]]] = []
        while (code := self.peek()) is not None:
            self.pos += 1
            if code == closer:
                return result
            if code != MSDP_VAR:
                raise ValueError(f"expected MSDP_VAR, got code {code}")
            name = self.text()
            values: list[Any] = []
            while self.peek() == MSDP_VAL:
                self.pos += 1
                values.append(self.value(depth))
            result.append((name, values))
        if closer is not None:
            raise ValueError("unterminated table")
        return result

    def text(self) -> str:
        if self.peek() != 0:
            return ""
        self.pos += 1
        return self.tokens[self.pos - 1].decode("utf-8", errors="replace")

    def value(self, depth: int) -> Any:
        if depth >= _MSDP_MAX_DEPTH:
            raise ValueError("nested too deeply")
        code = self.peek()
        if code == MSDP_TABLE_OPEN:
            self.pos += 1
            return {k: _collapse(v) for k, v in self.pairs(depth + 1, MSDP_TABLE_CLOSE)}
        if code == MSDP_ARRAY_OPEN:
            self.pos += 1
            return self.array(depth + 1)
        return self.text()

    def array(self, depth: int) -> list[Any]:
        items: list[Any] = []
        while (code := self.peek()) is not None:
            self.pos += 1
            if code == MSDP_ARRAY_CLOSE:
                return items
            if code != MSDP_VAL:
                raise ValueError(f"expected MSDP_VAL in array, got code {code}")
            items.append(self.value(depth))
        raise ValueError("unterminated array")


def _collapse(values: list[Any]) -> Any:
    if not values:
        return ""
    return values[0] if len(values) == 1 else values


def _decode_msdp(payload: bytes) -> list[OobReceived]:
    events: list[OobReceived] = []
    for name, values in _MsdpReader(payload).pairs(0, None):
        if not name:
            continue
        oob = _Oob()
        for value in values:
            oob.add(value)
        cmdname = name.lower()
        if cmdname in _MSDP_RENAMED:
            cmdname = "msdp_" + cmdname
        events.append(OobReceived(cmdname, oob.args, oob.kwargs))
    return events
