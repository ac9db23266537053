"""The asyncio shell around the codec: batching, priority, back-pressure, heartbeats, auth.

`FrameConnection` is an `asyncio.Protocol`. Frames passed to `send()` are encoded into a
buffer and written once per loop turn, so a burst of frames costs one `write`. Frames sent
with `urgent=True` (control: hand-over, heartbeats) go ahead of the normal ones in the
same turn. `send_now()` writes at once instead (frames made at the end of a turn, by
their producer's own batching), and `on_read_done` is called after the frames of each
read, so an owner can answer a whole read in one write without waiting for a loop turn.

Flow control: when what the peer has not read passes `write_limit`, the connection is not
`writable` and `on_writable(conn, False)` is called; once it drains below a quarter of
that, `on_writable(conn, True)`. Producers stop pulling work meanwhile (the portal stops
sending input; a connection made with `pause_reading_when_full` stops reading the peer's
requests, so the server runs no command whose output could not be written). `send()`
itself never refuses a frame: memory stays bounded because the producers stop, and what
a producer may send after `False` is bounded by what it already had in hand.

The peer's uid is checked with SO_PEERCRED before any byte is read; the Hello handshake
itself (role, version, secret) is checked by the owner through `check_hello`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct
from collections.abc import Callable
from enum import StrEnum
from typing import Any, cast

from ipc.codec import DEFAULT_MAX_FRAME, FrameDecoder, FrameEncoder
from ipc.frames import PROTOCOL_VERSION, Frame, Heartbeat, Hello, Refused

log = logging.getLogger(__name__)

FrameHandler = Callable[["FrameConnection", Any], None]
CloseHandler = Callable[["FrameConnection", str], None]
FlowHandler = Callable[["FrameConnection", bool], None]

DEFAULT_WRITE_LIMIT = 1 << 20  # bytes the peer has not read before producers stop


class CloseCause(StrEnum):
    """Why a connection closed, for owners that act on it (a string is for people)."""

    LOCAL = "local"  # our owner closed it
    PEER = "peer"  # the peer closed or the connection broke
    SILENT = "silent"  # the peer sent nothing for the heartbeat timeout: it hangs
    REFUSED = "refused"  # we turned the peer away
    MALFORMED = "malformed"  # the peer sent what the codec cannot take
    ABORTED = "aborted"  # closed at once, dropping what was queued


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a Unix socket."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid


class ForeignPeer(PermissionError):
    """The socket we dialled is served by another user's process (SO_PEERCRED)."""


def check_peer(sock: socket.socket, what: str) -> None:
    """ForeignPeer unless the process at the other end of Unix socket `sock` runs as us."""
    _, uid, _ = peer_credentials(sock)
    if uid != os.getuid():
        raise ForeignPeer(f"{what} is not ours: peer uid {uid} is not ours ({os.getuid()})")


def check_hello(hello: Hello, *, secret: str, roles: tuple[str, ...]) -> str | None:
    """The reason to refuse this hello, or None to accept it."""
    if hello.version != PROTOCOL_VERSION:
        return f"protocol version {hello.version} is not {PROTOCOL_VERSION}"
    if hello.role not in roles:
        return f"role {hello.role!r} is not accepted here"
    if secret and hello.secret != secret:
        return "wrong secret"
    return None


class FrameConnection(asyncio.Protocol):
    """One framed connection; see the module docstring."""

    def __init__(
        self,
        frame_type: Any,
        on_frame: FrameHandler,
        on_close: CloseHandler,
        *,
        name: str,
        max_frame: int = DEFAULT_MAX_FRAME,
        heartbeat: float = 0.0,
        heartbeat_timeout: float = 0.0,
        check_uid: bool = True,
        hello_timeout: float = 10.0,
        on_writable: FlowHandler | None = None,
        write_limit: int = DEFAULT_WRITE_LIMIT,
        pause_reading_when_full: bool = False,
        on_read_done: Callable[[FrameConnection], None] | None = None,
    ) -> None:
        self.name = name
        self._on_read_done = on_read_done
        self._decoder: FrameDecoder[Any] = FrameDecoder(frame_type, max_frame)
        self._encoder = FrameEncoder(max_frame)
        self._on_frame = on_frame
        self._on_close = on_close
        self._check_uid = check_uid
        self._out = bytearray()
        self._urgent = bytearray()
        self._flush_scheduled = False
        self.writable = True
        self._on_writable = on_writable
        self._write_limit = write_limit
        self._pause_reading_when_full = pause_reading_when_full
        self._closed = asyncio.Event()  # closed as far as the owner is concerned
        self._lost = asyncio.Event()  # the transport is gone: everything queued was written
        self._close_reason = ""
        self.cause: CloseCause | None = None
        self._heartbeat = heartbeat
        self._heartbeat_timeout = heartbeat_timeout
        self._last_seen = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._next_beat = 0.0
        self.transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self.peer_pid = 0
        # Set by the owner once the peer's Hello was accepted. Before that, a malformed
        # frame closes the connection, and so does silence past `hello_timeout`.
        self.trusted = False
        self._hello_timeout = hello_timeout
        self.state: dict[str, Any] = {}  # owner's per-connection notes (role, pid, ...)

    # ------------------------------------------------------------ asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.transport.set_write_buffer_limits(high=self._write_limit)
        self._last_seen = self._loop.time()
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family == socket.AF_UNIX:
            pid, uid, _ = peer_credentials(sock)
            self.peer_pid = pid
            if self._check_uid and uid != os.getuid():
                self.close(f"peer uid {uid} is not ours ({os.getuid()})", CloseCause.REFUSED)
                return
        if self._heartbeat > 0:
            self._next_beat = self._last_seen + self._heartbeat
            self._timer = self._loop.call_at(self._next_beat, self._tick)
        if self._hello_timeout > 0:
            self._loop.call_later(self._hello_timeout, self._check_hello_in_time)

    def _check_hello_in_time(self) -> None:
        if not self.trusted:
            self.close(f"no accepted hello within {self._hello_timeout:.0f}s")

    def data_received(self, data: bytes) -> None:
        self._last_seen = self._loop.time()
        decoder = self._decoder
        decoder.receive_data(data)
        if decoder.errors:
            for error in decoder.errors:
                log.warning("%s (peer pid %d): %s", self.name, self.peer_pid, error)
            decoder.errors.clear()
            if not self.trusted:
                self.close("malformed frame before the handshake", CloseCause.MALFORMED)
                return
        try:
            for frame in decoder.frames_received():
                if self.is_closing():
                    return
                try:
                    self._on_frame(self, frame)
                except Exception:  # the owner's bug: log it with the frame, take the next
                    log.exception("%s (peer pid %d): handler failed on %s frame",
                                  self.name, self.peer_pid, type(frame).__name__)
        finally:
            if self._on_read_done is not None:
                self._read_done()
        if decoder.fatal is not None:
            log.warning("%s (peer pid %d): closing: %s", self.name, self.peer_pid, decoder.fatal)
            self.close(decoder.fatal, CloseCause.MALFORMED)

    def _read_done(self) -> None:
        assert self._on_read_done is not None
        try:
            self._on_read_done(self)
        except Exception:
            log.exception("%s (peer pid %d): end-of-read handler failed", self.name,
                          self.peer_pid)

    def eof_received(self) -> bool | None:
        self.close("connection closed by peer", CloseCause.PEER)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost.set()
        if not self._close_reason:
            self._close_reason = f"connection lost: {exc}" if exc else "connection closed by peer"
            self.cause = CloseCause.PEER
        self._finish()

    def pause_writing(self) -> None:
        """The transport's buffer passed `write_limit`: tell the producer to stop."""
        self._set_writable(False)

    def resume_writing(self) -> None:
        self._set_writable(True)

    def _set_writable(self, writable: bool) -> None:
        self.writable = writable
        transport = self.transport
        if self._pause_reading_when_full and transport is not None and not transport.is_closing():
            if writable:
                transport.resume_reading()
            else:
                transport.pause_reading()
        if self._on_writable is not None:
            try:
                self._on_writable(self, writable)
            except Exception:
                log.exception("%s: flow handler failed (writable=%s)", self.name, writable)

    def buffered(self) -> int:
        """Bytes queued for the peer and not yet written (ours and the transport's)."""
        transport = self.transport
        queued = transport.get_write_buffer_size() if transport is not None else 0
        return queued + len(self._out) + len(self._urgent)

    # ------------------------------------------------------------ sending

    def send(self, frame: Frame, *, urgent: bool = False) -> None:
        """Queue a frame; it is written at the end of this loop turn."""
        if self.transport is None or self.transport.is_closing():
            return
        self._encoder.encode_into(frame, self._urgent if urgent else self._out)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self.flush)

    def send_now(self, *frames: Frame) -> None:
        """Write `frames` at once, after everything queued, in one write: for a producer
        that batches its own frames (no loop turn is spent on a scheduled flush)."""
        if self.transport is None or self.transport.is_closing():
            return
        for frame in frames:
            self._encoder.encode_into(frame, self._out)
        self.flush()

    def flush(self) -> None:
        """Write everything queued now (urgent frames first)."""
        self._flush_scheduled = False
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        # The transport may keep the buffer it was given (when the socket is full), so
        # hand it over and start a new one instead of clearing it.
        if self._urgent:
            urgent, self._urgent = self._urgent, bytearray()
            transport.write(urgent)
        if self._out:
            out, self._out = self._out, bytearray()
            transport.write(out)

    def set_heartbeat_timeout(self, timeout: float) -> None:
        """Close the connection when the peer sends nothing for `timeout` seconds (0: never)."""
        self._heartbeat_timeout = timeout
        self._last_seen = self._loop.time()
        if self._timer is not None and timeout > 0:  # wake in time for the new deadline
            self._timer.cancel()
            self._timer = self._loop.call_at(min(self._next_beat, self._last_seen + timeout),
                                             self._tick)

    # ------------------------------------------------------------ closing

    @property
    def close_reason(self) -> str:
        """Why it closed ("" while open)."""
        return self._close_reason

    def is_closing(self) -> bool:
        return bool(self._close_reason) or self.transport is None or self.transport.is_closing()

    def close(self, reason: str, cause: CloseCause = CloseCause.LOCAL) -> None:
        """Write what is queued, then close; `on_close` gets `reason` once, and `cause`
        stays readable on `self.cause`."""
        if self._close_reason:
            return
        self._close_reason = reason
        self.cause = cause
        if self.transport is not None:
            self.flush()
            self.transport.close()
        self._finish()

    def refuse(self, reason: str) -> None:
        """Turn the peer away: log why, tell it why (`Refused`), and close."""
        log.warning("%s: refused peer pid %d: %s", self.name, self.peer_pid, reason)
        self.send(Refused(reason=reason))
        self.close(f"refused: {reason}", CloseCause.REFUSED)

    def abort(self, reason: str) -> None:
        """Close at once, dropping whatever is queued."""
        self._out = bytearray()
        self._urgent = bytearray()
        if self.transport is not None:
            self.transport.abort()
        self.close(reason, CloseCause.ABORTED)

    async def wait_closed(self, timeout: float) -> None:
        """Wait until the transport is gone, so what was queued before `close` is written."""
        if self.transport is not None:
            await asyncio.wait_for(self._lost.wait(), timeout)

    def _finish(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        if self._timer is not None:
            self._timer.cancel()
        try:
            self._on_close(self, self._close_reason)
        except Exception:
            log.exception("%s (peer pid %d): close handler failed (closed: %s)",
                          self.name, self.peer_pid, self._close_reason)

    # ------------------------------------------------------------ heartbeats

    def _tick(self) -> None:
        """Send a heartbeat when one is due; close when the peer's silence passes the
        timeout. Wakes at whichever comes first, so a hang is seen on time, not a beat late."""
        now = self._loop.time()
        timeout = self._heartbeat_timeout
        if timeout > 0 and now - self._last_seen >= timeout:
            self.close(f"no frame from peer for {now - self._last_seen:.1f}s", CloseCause.SILENT)
            return
        if now >= self._next_beat:
            self.send(Heartbeat(sent=now), urgent=True)
            self._next_beat = now + self._heartbeat
        wake = self._next_beat
        if timeout > 0:
            wake = min(wake, self._last_seen + timeout)
        self._timer = self._loop.call_at(wake, self._tick)


async def connect_unix(
    path: str,
    frame_type: Any,
    on_frame: FrameHandler,
    on_close: CloseHandler,
    *,
    name: str,
    timeout: float = 10.0,
    **kwargs: Any,
) -> FrameConnection:
    """Dial a Unix socket and return the connection (the caller sends Hello).

    ForeignPeer when the process listening there is not this user's (its uid is checked
    with SO_PEERCRED before a byte is sent): a socket someone planted is never spoken to.
    """
    loop = asyncio.get_running_loop()

    def factory() -> FrameConnection:
        conn = FrameConnection(frame_type, on_frame, on_close, name=name, hello_timeout=0,
                               **kwargs)
        conn.trusted = True  # we dialled a socket in our private folder
        return conn

    _, protocol = await asyncio.wait_for(loop.create_unix_connection(factory, path), timeout)
    if protocol.cause is CloseCause.REFUSED:
        raise ForeignPeer(f"{path} is not ours: {protocol.close_reason}")
    return protocol
