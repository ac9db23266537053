"""Sans-I/O telnet protocol for the portal: `TelnetProtocol`, the public face.

Theory of operation
-------------------
Bytes read from the socket go into `receive_data()`. The byte parser (`parser.py`) splits
them into text, option negotiations (WILL/WONT/DO/DONT) and subnegotiations (IAC SB ... IAC
SE). It never raises: hostile telnet bytes become a `ProtocolError` event, bad player input
an `InputError` event, and parsing goes on. Every buffer is bounded: an input line by
`max_line`, a subnegotiation by `max_subneg`.

Work per call is bounded too, because one client must not hold the portal's loop: a call
parses at most `max_bytes` bytes and takes at most `max_steps` steps (a step is a stretch
of text with the line end, telnet command or subnegotiation that ends it; a run of NULs,
of `IAC IAC` or of no-op commands such as `IAC NOP` is one step). What is left over waits
in `backlog`; the glue stops reading the socket and calls `receive_more()` on a later loop
turn. Flag changes are reported once per call, however many toggles it parsed.

Option state follows RFC 1143 (the "Q method", `negotiation.py`, with the one table of
what we offer and accept); what each option does is a module in `options/`.

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

import time
import zlib
from collections.abc import Callable
from typing import Any, Final

from portal.guard import text_encoding
from portal.handover_frames import TelnetState
from portal.oob import encode_gmcp, encode_msdp
from portal.telnet.codes import ECHO, EOR, EOR_MARK, GA, GMCP, IAC, MCCP2, MSDP, SB, SE
from portal.telnet.events import (
    FlagsChanged,
    LineReceived,
    ProtocolError,
    TelnetEvent,
    codec,
    copy_flags,
    default_flags,
)
from portal.telnet.negotiation import Negotiation, Q, Side
from portal.telnet.parser import _DATA, _TEXT_START, Parse, TelnetParser

__all__ = ["TelnetProtocol"]

# Flags the game may set (a player's `encoding` choice) that change how we read and write.
_GAME_FLAGS: Final = ("ENCODING", "NOGOAHEAD", "NOPROMPTGOAHEAD")


class TelnetProtocol(Negotiation, TelnetParser):
    """One telnet connection, without I/O.

    Feed bytes with `receive_data()` / `receive_eof()`, read `events_received()`,
    write whatever `data_to_send()` returns after any call.
    """

    # Every attribute of the three layers, in slots: one connection's state is one block
    # of memory (no dict), which the player path reads on every line.
    __slots__ = (  # noqa: RUF023 (the order is the layout: what each line reads comes first)
        "flags", "_codec_for", "_codec", "_out", "_compressor", "_closed",
        "_compressed_pending", "_plain_max", "_line", "_discarded", "_state", "_after_cr",
        "_flags_touched", "_events", "_eof", "_in", "_in_pos", "_max_bytes", "_max_steps",
        "_max_line", "_line_started", "_line_timeout", "_clock", "_charset_waiting", "_him",
        "_us", "_initiated", "_max_subneg", "_mccp_starts", "_mssp", "_mssp_sent", "_neg_cmd",
        "_pending", "_refused", "_reported", "_sb", "_sb_opt", "_sb_overflow", "_server_name",
        "_ttype_names", "_ttype_waiting", "_want_echo", "settled",
    )

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
        TelnetParser.__init__(self, max_line=max_line, max_subneg=max_subneg,
                              line_timeout=line_timeout, clock=clock)
        Negotiation.__init__(self)
        self.flags: dict[str, Any] = default_flags()
        self.settled = False
        self._max_bytes = max_bytes
        self._max_steps = max_steps
        # the longest line `plain_line` takes whole: within max_line and the read budget
        self._plain_max = min(max_line, max_bytes - 2) if max_steps >= 2 else -1
        self._in = b""  # bytes received and not parsed yet (over the budget)
        self._in_pos = 0
        self._mssp = mssp
        self._server_name = server_name
        self._out = bytearray()
        self._compressor: Any = None  # zlib.Compress; its type is private in typeshed
        self._compressed_pending = False
        self._closed = False
        self._eof = False
        self._initiated = False
        self._reported: dict[str, Any] = {}
        # Flags change only through a command, a request or MCCP2: `_run` compares them
        # with what was reported only after one of those (a plain line costs no compare).
        self._flags_touched = False
        self._codec_for: object = None  # the ENCODING value `_codec` was looked up for
        self._codec = "utf-8"

    # --- public API ----------------------------------------------------------------

    def initiate(self) -> None:
        """Queue our opening offers; then call `data_to_send()`."""
        if self._initiated:
            return
        self._initiated = True
        self._offer_all()
        self._after_command()

    def receive_data(self, data: bytes) -> None:
        """Parse bytes from the client, within the budget; see `backlog`. Never raises."""
        if self._eof or not data:
            return
        if self._in_pos < len(self._in):
            self._in = self._in[self._in_pos :] + bytes(data)
        elif self._one_line(data):
            return
        else:
            self._in = bytes(data)
        self._in_pos = 0
        self._run()

    def _one_line(self, data: bytes) -> bool:
        """The common read (`plain_line`), as an event; False (nothing done) otherwise."""
        text = self.plain_line(data)
        if text is None:
            return False
        self._events.append(LineReceived(text))
        return True

    def plain_line(self, data: bytes) -> str | None:
        """The common read: one whole line of plain text and its CR LF, at a line start,
        no backlog, no event waiting, nothing special inside. Taken in one scan, with what
        `_run` would do (the same line, the same bounds), and returned: no event is made.
        None, and nothing done, for anything else (then call `receive_data`)."""
        end = len(data) - 2
        if (end < 0 or end > self._plain_max or data[end:] != b"\r\n" or self._line
                or self._discarded or self._state is not _DATA or self._after_cr
                or self._flags_touched or self._events or self._eof or self._in
                or _TEXT_START.search(data, 0, end) is not None):
            return None
        # (no line is under way, so there is none to expire or to time: `_line_started`
        # is None already)
        name = self.flags.get("ENCODING", "utf-8")  # `_text_codec`, inline
        try:
            text = data[:end].decode(self._codec if name is self._codec_for
                                     else self._text_codec())
        except UnicodeDecodeError:
            return None  # the parser says so, the usual way
        self._after_cr = False  # the LF of this CR LF was taken with it
        return text

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
        if self._flags_touched and self.settled:
            self._flags_touched = False
            if self.flags != self._reported:
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
        if not self._out and not self._compressed_pending:
            return b""
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

    def send_text(self, text: str, prompt: bool = False, newline: bool = False) -> None:
        """Queue rendered text (`newline`: with a line end after it, as if `text + "\\n"`);
        a prompt ends with IAC EOR or IAC GA as negotiated. (Positional flags are allowed:
        the player path calls `send_text(text, False, True)`, a cheaper call.)"""
        if "\n" in text:
            text = text.replace("\r\n", "\n").replace("\n", "\r\n")
        if newline and text[-1:] == "\r":  # (slice and compare: half an `endswith`)
            text = text[:-1]
        name = self.flags.get("ENCODING", "utf-8")
        data = text.encode(self._codec if name is self._codec_for else self._text_codec(),
                           "replace")
        if 255 in data:  # (an int: a memchr; `b"\xff" in data` is eight times slower)
            data = data.replace(b"\xff", b"\xff\xff")
        if prompt:
            data += self._prompt_mark()
        if self._compressor is None and not self._closed:
            out = self._out  # what `_write` does, without the call
            out += data
            if newline:
                out += b"\r\n"
        else:
            self._write(data + b"\r\n" if newline else data)

    def _text_codec(self) -> str:
        """The codec of the ENCODING flag, looked up again only when the flag changed."""
        name = self.flags.get("ENCODING", "utf-8")
        if name is not self._codec_for:
            self._codec_for, self._codec = name, codec(str(name))
        return self._codec

    def send_oob(self, cmdname: str, args: list[Any], kwargs: dict[str, Any]) -> None:
        """Queue an OOB command over GMCP if agreed, else MSDP if agreed, else drop it."""
        if self._on(GMCP, local=True):
            self._send_sb(GMCP, encode_gmcp(cmdname, args, kwargs))
        elif self._on(MSDP, local=True):
            self._send_sb(MSDP, encode_msdp(cmdname, args, kwargs))

    def set_echo(self, hidden: bool) -> None:
        """hidden=True offers WILL ECHO (client stops echoing, for passwords); False, WONT."""
        self._want_echo = hidden
        self._request(ECHO, local=True, enable=hidden)
        self._flags_touched = True

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

    def snapshot(self) -> TelnetState:
        """The whole state, for a live portal hand-over. Ends MCCP2 first (the stream's
        last bytes are in `data_to_send()`), so the client's decompressor stays valid;
        `restore()` starts it again."""
        mccp = self._compressor is not None
        self._end_mccp()
        return TelnetState(
            flags=copy_flags(self.flags), reported=copy_flags(self._reported),
            settled=self.settled, mccp=mccp, refused=sorted(self._refused),
            us={o: (int(s.state), s.opposite) for o, s in self._us.items()},
            him={o: (int(s.state), s.opposite) for o, s in self._him.items()},
            want_echo=self._want_echo, initiated=self._initiated,
            pending=sorted(self._pending), ttype_names=list(self._ttype_names),
            ttype_waiting=self._ttype_waiting, charset_waiting=self._charset_waiting,
            parse_state=int(self._state), neg_cmd=self._neg_cmd, line=bytes(self._line),
            discarded=self._discarded, after_cr=self._after_cr, sb_opt=self._sb_opt,
            sb=bytes(self._sb), sb_overflow=self._sb_overflow,
            backlog=self._in[self._in_pos:], line_started=self._line_started,
            mssp_sent=self._mssp_sent, mccp_starts=self._mccp_starts)

    def restore(self, state: TelnetState) -> None:
        """Take over a `snapshot()` (of another instance, or of this one when a hand-over
        failed); an MCCP2 stream is started again (`IAC SB MCCP2 IAC SE`, RFC-allowed)."""
        self.flags, self._reported = copy_flags(state.flags), copy_flags(state.reported)
        self.settled, self._refused = state.settled, {(a, b) for a, b in state.refused}
        self._us = {o: Side(Q(q), opp) for o, (q, opp) in state.us.items()}
        self._him = {o: Side(Q(q), opp) for o, (q, opp) in state.him.items()}
        self._want_echo, self._initiated = state.want_echo, state.initiated
        self._pending, self._ttype_names = set(state.pending), list(state.ttype_names)
        self._ttype_waiting, self._charset_waiting = state.ttype_waiting, state.charset_waiting
        self._state, self._neg_cmd = Parse(state.parse_state), state.neg_cmd
        self._line, self._discarded = bytearray(state.line), state.discarded
        self._after_cr, self._sb_opt = state.after_cr, state.sb_opt
        self._sb, self._sb_overflow = bytearray(state.sb), state.sb_overflow
        self._in, self._in_pos = state.backlog, 0
        self._line_started, self._mssp_sent = state.line_started, state.mssp_sent
        self._compressor = None
        if state.mccp:
            self._start_mccp()
        self._mccp_starts = state.mccp_starts  # our own restart is not the client's
        self._flags_touched = True

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
    def _after_command(self) -> None:
        """Settle if every handshake is done. Later flag changes are reported once, at the
        end of the call that parsed them (`_run`), so a flood of toggles costs one report."""
        self._flags_touched = True
        if not self.settled and self._initiated and not self._pending:
            self._mark_settled()

    def _mark_settled(self) -> None:
        self.settled = True
        self._report_flags()

    def _report_flags(self) -> None:
        self._reported = copy_flags(self.flags)
        self._events.append(FlagsChanged(copy_flags(self.flags)))

    def _done(self, key: str) -> None:
        self._pending.discard(key)

    # --- negotiation (RFC 1143) ----------------------------------------------------
    # --- MCCP2 ---------------------------------------------------------------------

    def _start_mccp(self) -> None:
        if self._compressor is not None or self._closed:
            return
        # The start marker itself goes out uncompressed; everything after it is zlib.
        self._out += bytes((IAC, SB, MCCP2, IAC, SE))
        self._compressor = zlib.compressobj()
        self._mccp_starts += 1
        self.flags["MCCP"] = True
        self._flags_touched = True

    def _end_mccp(self) -> None:
        if self._compressor is None:
            return
        self._out += self._compressor.flush(zlib.Z_FINISH)
        self._compressor = None
        self._compressed_pending = False
        self.flags["MCCP"] = False
        self._flags_touched = True

    # --- MSSP ----------------------------------------------------------------------

    def _mssp_table(self) -> dict[str, str]:
        """The MSSP table from the game's callback; NAME is always there."""
        table: dict[str, str] = {"NAME": self._server_name}
        if self._mssp is not None:
            try:
                table = {str(k): str(v) for k, v in self._mssp().items()}
            except Exception as exc:  # the callback is the game's code, not ours
                self._error(f"MSSP table callback failed: {exc!r}")
            table.setdefault("NAME", self._server_name)
        return table

    def _error(self, reason: str) -> None:
        self._events.append(ProtocolError(reason))
