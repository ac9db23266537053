"""Telnet (and telnet over TLS) sessions: the thin asyncio shell around `TelnetProtocol`."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from typing import Any, cast

from ipc.frames import SYNCED_FIELDS, InputItem, load_sync_data_into
from portal.colour import render
from portal.guard import WorkBudget
from portal.handover_frames import SessionMove, TelnetState
from portal.session import PortalSession
from portal.sessions import PortalSessionHandler
from portal.telnet import (
    FlagsChanged,
    InputError,
    LineReceived,
    OobReceived,
    ProtocolError,
    TelnetProtocol,
)

log = logging.getLogger(__name__)


class TelnetSession(asyncio.Protocol, PortalSession):
    """One telnet connection: bytes to `TelnetProtocol`, its events to the handler.

    The game hears of the session (PConn) only once negotiation has settled or timed
    out, so its connection screen already knows the client's name, size and colours.
    Input typed before that waits here, in order, and goes to the game right after.

    Each read is parsed within the protocol's budget (`read_max_bytes`, `read_max_steps`);
    what is left stays in the parser's backlog, reading from the socket stops, and the
    next slice is parsed on the next loop turn, so other players are served in between.
    The time each slice takes is charged to the connection (`read_cpu_share` of the loop
    on average, after `read_cpu_burst` seconds): one that used more rests before its next
    slice, so a flood of any kind costs the portal a bounded share of a core.
    Anything that pauses input (held input full, the command rate, output backed up) also
    stops the backlog from being parsed.
    """

    __slots__ = (  # noqa: RUF023 (the order is the layout: what each line reads comes first)
        "_work", "telnet", "_announced_to_handler", "_handler", "_write_scheduled", "_held",
        "transport", "_more_scheduled", "_on_closed", "_key", "_negotiation_timeout",
        "_timer", "_early_input", "_admitted", "_counted", "moved_in", "_moving", "moved_out",
        "late_output", "_delayed", "_telnet_flags",
    )

    def __init__(
        self,
        handler: PortalSessionHandler,
        protocol_key: str,
        mssp: Callable[[], dict[str, str]],
        negotiation_timeout: float,
        on_closed: Callable[[TelnetSession], None] | None = None,
    ) -> None:
        PortalSession.__init__(self)
        self._on_closed = on_closed  # whoever keeps every open connection forgets this one
        self._handler = handler
        self._key = protocol_key
        self._negotiation_timeout = negotiation_timeout
        settings = handler.settings
        self.telnet = TelnetProtocol(
            max_line=settings.max_line, mssp=mssp, max_bytes=settings.read_max_bytes,
            max_steps=settings.read_max_steps, line_timeout=settings.line_timeout)
        self._more_scheduled = False
        self._work = WorkBudget.full(settings.read_cpu_share, settings.read_cpu_burst,
                                     time.perf_counter())  # the clock `_charge` reads
        self.transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._write_scheduled = False
        self._announced_to_handler = False
        self._early_input: list[tuple[str, list[Any], dict[str, Any]]] = []
        self._admitted = False
        self._counted = True  # admitted and counted by the guard (release once at the end)
        self.moved_in: SessionMove | None = None  # set by `adopt`: moved here from the old portal
        self._moving: TelnetState | None = None  # our own snapshot while handed over
        self.moved_out = False  # the new portal has this connection now
        # while a hand-over is under way nothing is written: output waits in the parser
        self._held = False
        self.late_output = 0  # bytes that came after our snapshot and were not written
        self._delayed: list[tuple[str, list[Any], dict[str, Any]]] = []  # taken from the guard

    # ------------------------------------------------------------ asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.gone = asyncio.get_running_loop().create_future()
        if self.moved_in is not None:  # adopted already (`adopt`); `go_live` starts it
            return  # (TCP_NODELAY is the socket's own: the old portal set it)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = transport.get_extra_info("peername")
        address = peer[0] if isinstance(peer, tuple) else str(peer)
        refusal = self._handler.admit(address)
        if refusal is not None:
            self.transport.write(refusal.encode() + b"\r\n")
            self.transport.close()
            return
        self._admitted = True
        self.init_session(self._key, address, self._handler)
        self.protocol_flags = dict(self.telnet.flags)
        self._telnet_flags = dict(self.telnet.flags)
        self.telnet.initiate()
        self._write()
        self._timer = asyncio.get_running_loop().call_later(
            self._negotiation_timeout, self._settle
        )

    def data_received(self, data: bytes) -> None:
        charged = self._work.share > 0  # (0: no CPU share to account, a load test: no clock)
        start = time.perf_counter() if charged else 0.0
        line = self.telnet.plain_line(data) if self._announced_to_handler else None
        if line is not None:  # the common read: one plain line, straight to the guard
            self._handler.guard.data_in(self, "text", [line], {})
            if charged:
                self._charge(start)
            elif self._paused:  # (a plain line leaves no backlog)
                self._after_read()
            return
        self.telnet.receive_data(data)
        self._handle_events()
        self._write()
        if charged:
            self._charge(start)
        elif self._paused or self.telnet.backlog:
            self._after_read()

    def _charge(self, start: float) -> None:
        """Charge the work since `start` to this connection: one clock pair per read,
        whatever it held (the end time is the budget's `now`)."""
        end = time.perf_counter()
        self._work.spend(end - start, end)
        self._after_read(end)

    def _after_read(self, now: float | None = None) -> None:
        rest = self._work.delay(time.perf_counter() if now is None else now)
        waiting = bool(self.telnet.backlog) or rest > 0
        if waiting or "backlog" in self._paused:  # (nothing to change on a plain read)
            self._set_paused("backlog", waiting)
        if waiting:
            self._schedule_more(rest)

    def _schedule_more(self, delay: float = 0.0) -> None:
        """Parse the next slice of the backlog on the next loop turn (or, when this
        connection used more than its share of the loop, once it has rested), unless
        something else paused input."""
        if self._more_scheduled or self._paused - {"backlog"}:
            return
        if self.transport is None or self.transport.is_closing():
            return
        self._more_scheduled = True
        loop = asyncio.get_running_loop()
        if delay > 0:
            loop.call_later(delay, self._receive_more)
        else:
            loop.call_soon(self._receive_more)

    def _receive_more(self) -> None:
        self._more_scheduled = False
        if self._paused - {"backlog"} or self.transport is None or self.transport.is_closing():
            return
        if self.telnet.backlog and self._work.delay(time.perf_counter()) <= 0:
            start = time.perf_counter()
            self.telnet.receive_more()
            self._handle_events()
            self._write()
            self._charge(start)
        else:
            self._after_read()

    def eof_received(self) -> bool | None:
        self.telnet.receive_eof()
        self._handle_events()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._on_closed is not None:
            self._on_closed(self)
        if not self._admitted or self.moved_out:
            return
        if self._counted:
            self._handler.release(self.address)
        if self.gone is not None and not self.gone.done():
            self.gone.set_result(None)
        if self._timer is not None:
            self._timer.cancel()
        self._handler.disconnect(self, "connection lost")

    # ------------------------------------------------------------ protocol events

    def _settle(self) -> None:
        self._timer = None
        self.telnet.settle()
        self._handle_events()
        self._write()

    def _handle_events(self) -> None:
        for event in self.telnet.events_received():
            if type(event) is LineReceived and self._announced_to_handler:
                # the common case first, without `match`, straight to the guard
                self._handler.guard.data_in(self, "text", [event.text], {})
                continue
            match event:
                case LineReceived(text=text):
                    self._input("text", [text], {})
                case OobReceived(cmdname=cmdname, args=args, kwargs=kwargs):
                    self._input(cmdname, args, kwargs)
                case FlagsChanged(flags=flags):
                    self._negotiated(flags)
                case InputError(message=message):
                    self.send_text(f"|r{message}|n")
                case ProtocolError(reason=reason):
                    self._handler.guard.protocol_error(self, reason)

    def _negotiated(self, flags: dict[str, Any]) -> None:
        """Apply only what negotiation changed, so flags the game set are kept."""
        seen = self._telnet_flags
        changed = {key: value for key, value in flags.items() if seen.get(key) != value}
        self._telnet_flags = dict(flags)
        self.protocol_flags.update(changed)
        if not self._announced_to_handler:
            self._announce()
        elif changed:
            self._handler.flags_changed(self)

    def _announce(self) -> None:
        """Negotiation is over (the first FlagsChanged): register with the handler."""
        self._announced_to_handler = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._handler.connect(self)
        early, self._early_input = self._early_input, []
        for cmdname, args, kwargs in early:
            self.data_in(cmdname, args, kwargs)
        self._set_paused("early", False)

    def _input(self, cmdname: str, args: list[Any], kwargs: dict[str, Any]) -> None:
        if self._announced_to_handler:
            self.data_in(cmdname, args, kwargs)
            return
        self._early_input.append((cmdname, args, kwargs))
        if len(self._early_input) >= self._handler.settings.input_buffer_per_session:
            self._set_paused("early", True)

    def _write(self) -> None:
        """Write what the parser holds. It is `flush_output` too: a write the handler still
        has scheduled finds nothing left, and new output schedules one again."""
        self._write_scheduled = False
        if self._held:  # a hand-over is deciding who writes next: keep it in the parser
            return
        data = self.telnet.data_to_send()
        transport = self.transport
        if data and transport is not None and not transport.is_closing():
            transport.write(data)
            if transport.get_write_buffer_size() > self._handler.settings.max_output_buffer:
                log.warning("session %d (%s): client stopped reading; %d bytes of output "
                            "wait; disconnecting it", self.sessid, self.address,
                            transport.get_write_buffer_size())
                transport.abort()

    # ------------------------------------------------------------ portal hand-over

    def move_out(self, held: dict[int, list[InputItem]]) -> tuple[SessionMove, int] | None:
        """Stop reading, end MCCP2 and write its last bytes; return what the new portal
        needs and the descriptor (None if the socket is gone). `held` is the link's held
        input by sessid. Until `moved()` or `stay()`, nothing is written."""
        transport, sock = self.transport, None
        if transport is not None and not transport.is_closing():
            sock = transport.get_extra_info("socket")
        if sock is None or self._moving is not None:
            return None
        self._set_paused("handover", True)
        state = self.telnet.snapshot()
        self._write()
        self._moving, self._held = state, True
        items = held.get(self.sessid, []) if self._announced_to_handler else []
        self._delayed = self._handler.take_delayed(self)
        move = SessionMove(protocol_key=self._key, session=self.get_sync_data(),
                           telnet=state, input=items, early=list(self._early_input),
                           delayed=self._delayed, announced=self._handler.announced(self))
        return move, sock.fileno()

    def output_pending(self) -> int:
        transport = self.transport
        return 0 if transport is None else transport.get_write_buffer_size()

    def moved(self) -> None:
        """The new portal took this connection: nothing more is done with it here (the
        handler forgets it: `PortalSessionHandler.moved`)."""
        self.moved_out = True
        self.late_output = len(self.telnet.data_to_send())
        if self._timer is not None:
            self._timer.cancel()

    def stay(self) -> None:
        """The hand-over failed: start MCCP2 again and read as before."""
        state, self._moving = self._moving, None
        if state is not None and state.mccp:
            # the state as it is now (the game may have changed it meanwhile), compressed
            # again; output that came meanwhile goes first, uncompressed
            now = self.telnet.snapshot()
            now.mccp = True
            self.telnet.restore(now)
        self.go_live()
        delayed, self._delayed = self._delayed, []
        for item in delayed:  # back through the rate limit
            self.data_in(*item)

    def go_live(self) -> None:
        """Read and write again (old portal: the move failed; new portal: it is done)."""
        self._held = False
        self._set_paused("handover", False)
        self._sync_reading()
        self._write()
        self._after_read()  # parse what waits in the parser's backlog, if anything

    def adopt(self, move: SessionMove) -> None:
        """Take over the state of a connection the old portal moved here (see `move_out`),
        before its transport exists. It neither reads nor writes until `go_live()`: if the
        hand-over fails after all, the old portal goes on with the stream exactly where it
        left it."""
        data = move.session
        self.moved_in = move
        self._held = True
        self._set_paused("handover", True)
        self._admitted = True
        # it was let in already: counted here too, but never refused now
        self._counted = self._handler.admit(data.address) is None
        self.init_session(self._key, data.address, self._handler)
        load_sync_data_into(self, data, SYNCED_FIELDS)
        self.telnet.restore(move.telnet)
        self._telnet_flags = dict(self.telnet.flags)
        self._early_input = list(move.early)
        if data.sessid:
            self._announced_to_handler = True
            self._handler.adopt(self, move.announced, move.input)
        else:
            self._timer = asyncio.get_running_loop().call_later(
                self._negotiation_timeout, self._settle)

    def replay_delayed(self) -> None:
        """New portal, once it numbers input on from the old portal's counter: the input
        the old rate limit held back goes through ours (newer than every moved input)."""
        move = self.moved_in
        if move is not None and self._announced_to_handler:
            for item in move.delayed:
                self.data_in(*item)

    # ------------------------------------------------------------ output

    def send_text(self, text: str, **kwargs: Any) -> None:
        if "|" in text:  # (what `render` checks first, without the call)
            text = render(text, self.protocol_flags)
        self.telnet.send_text(text, False, True)  # newline=True, passed by position
        if not self._write_scheduled:  # `_output_waiting`, inline: this runs per line
            self._write_scheduled = True
            self._handler.write_soon(self)

    def send_prompt(self, text: str, **kwargs: Any) -> None:
        self.telnet.send_text(render(text, self.protocol_flags), prompt=True)
        self._output_waiting()

    def send_default(self, cmdname: str, args: list[Any], kwargs: dict[str, Any]) -> None:
        if cmdname == "echo":  # hide or show what the player types (passwords)
            self.telnet.set_echo(bool(kwargs.get("hidden", args[0] if args else False)))
        else:
            self.telnet.send_oob(cmdname, args, kwargs)
        self._output_waiting()

    def _output_waiting(self) -> None:
        """Output is queued in the parser: write it once, at the end of this loop turn,
        however many lines the server sent this player in that turn."""
        if not self._write_scheduled:
            self._write_scheduled = True
            self._handler.write_soon(self)

    flush_output = _write  # (one call less per write)

    def at_sync(self) -> None:
        """The game may have changed the flags (a player's `encoding`): tell the parser."""
        self.telnet.update_flags(self.protocol_flags)

    def disconnect(self, reason: str = "") -> None:
        if reason:
            self.telnet.send_text(render(reason, self.protocol_flags) + "\n")
        self.telnet.close()
        self._write()
        if self.transport is not None:
            self.transport.close()
        self._handler.disconnect(self, reason)

    def pause_writing(self) -> None:
        """The client reads slower than we write: stop taking its commands meanwhile."""
        self._set_paused("output", True)

    def resume_writing(self) -> None:
        self._set_paused("output", False)

    def _sync_reading(self) -> None:
        """Make the transport read exactly when nothing pauses it (a transport made for an
        adopted socket reads from the start, whatever `_paused` says)."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self._paused:
            transport.pause_reading()
        else:
            transport.resume_reading()

    def _pause_changed(self, paused: bool, flipped: bool) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if not paused and self._paused == {"backlog"}:
            self._schedule_more()  # only the backlog holds reading back: parse on
        if flipped:
            self._sync_reading()
