"""The asyncio shell around the codec: batching, priority, back-pressure, heartbeats, auth.

`FrameConnection` is an `asyncio.Protocol`. Frames passed to `send()` are encoded into a
buffer and written once per loop turn, so a burst of frames costs one `write`. Frames sent
with `urgent=True` (control: hand-over, heartbeats) go ahead of the normal ones in the
same turn. When the kernel buffer is full the transport pauses us; `drain()` waits for it,
so a producer that awaits it never grows memory without bound.

The peer's uid is checked with SO_PEERCRED before any byte is read; the Hello handshake
itself (role, version, secret) is checked by the owner through `check_hello`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
from collections.abc import Callable
from typing import Any, cast

from ipc.codec import DEFAULT_MAX_FRAME, FrameDecoder, FrameEncoder
from ipc.frames import PROTOCOL_VERSION, Frame, Heartbeat, Hello, Refused

log = logging.getLogger(__name__)

FrameHandler = Callable[["FrameConnection", Any], None]
CloseHandler = Callable[["FrameConnection", str], None]


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a Unix socket."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid


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
    ) -> None:
        self.name = name
        self._decoder: FrameDecoder[Any] = FrameDecoder(frame_type, max_frame)
        self._encoder = FrameEncoder(max_frame)
        self._on_frame = on_frame
        self._on_close = on_close
        self._check_uid = check_uid
        self._out = bytearray()
        self._urgent = bytearray()
        self._flush_scheduled = False
        self._writable = asyncio.Event()
        self._writable.set()
        self._closed = asyncio.Event()  # closed as far as the owner is concerned
        self._lost = asyncio.Event()  # the transport is gone: everything queued was written
        self._close_reason = ""
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
        self._last_seen = self._loop.time()
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family == socket.AF_UNIX:
            pid, uid, _ = peer_credentials(sock)
            self.peer_pid = pid
            if self._check_uid and uid != os.getuid():
                self.close(f"peer uid {uid} is not ours ({os.getuid()})")
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
                self.close("malformed frame before the handshake")
                return
        for frame in decoder.frames_received():
            if self.is_closing():
                return
            try:
                self._on_frame(self, frame)
            except Exception:
                log.exception("%s: handler failed on %s", self.name, type(frame).__name__)
        if decoder.fatal is not None:
            log.warning("%s (peer pid %d): closing: %s", self.name, self.peer_pid, decoder.fatal)
            self.close(decoder.fatal)

    def eof_received(self) -> bool | None:
        self.close("connection closed by peer")
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost.set()
        if not self._close_reason:
            self._close_reason = f"connection lost: {exc}" if exc else "connection closed by peer"
        self._finish()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    # ------------------------------------------------------------ sending

    def send(self, frame: Frame, *, urgent: bool = False) -> None:
        """Queue a frame; it is written at the end of this loop turn."""
        if self.transport is None or self.transport.is_closing():
            return
        self._encoder.encode_into(frame, self._urgent if urgent else self._out)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self.flush)

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

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait until the peer has read enough that writing may go on."""
        if not self._writable.is_set():
            await asyncio.wait_for(self._writable.wait(), timeout)

    def set_heartbeat_timeout(self, timeout: float) -> None:
        """Close the connection when the peer sends nothing for `timeout` seconds (0: never)."""
        self._heartbeat_timeout = timeout
        self._last_seen = self._loop.time()
        if self._timer is not None and timeout > 0:  # wake in time for the new deadline
            self._timer.cancel()
            self._timer = self._loop.call_at(min(self._next_beat, self._last_seen + timeout),
                                             self._tick)

    # ------------------------------------------------------------ closing

    def is_closing(self) -> bool:
        return bool(self._close_reason) or self.transport is None or self.transport.is_closing()

    def close(self, reason: str) -> None:
        """Write what is queued, then close; `on_close` gets `reason` once."""
        if self._close_reason:
            return
        self._close_reason = reason
        if self.transport is not None:
            self.flush()
            self.transport.close()
        self._finish()

    def refuse(self, reason: str) -> None:
        """Turn the peer away: log why, tell it why (`Refused`), and close."""
        log.warning("%s: refused peer pid %d: %s", self.name, self.peer_pid, reason)
        self.send(Refused(reason=reason))
        self.close(f"refused: {reason}")

    def abort(self, reason: str) -> None:
        """Close at once, dropping whatever is queued."""
        self._out = bytearray()
        self._urgent = bytearray()
        if self.transport is not None:
            self.transport.abort()
        self.close(reason)

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
        with contextlib.suppress(Exception):
            self._on_close(self, self._close_reason)

    # ------------------------------------------------------------ heartbeats

    def _tick(self) -> None:
        """Send a heartbeat when one is due; close when the peer's silence passes the
        timeout. Wakes at whichever comes first, so a hang is seen on time, not a beat late."""
        now = self._loop.time()
        timeout = self._heartbeat_timeout
        if timeout > 0 and now - self._last_seen >= timeout:
            self.close(f"no frame from peer for {now - self._last_seen:.1f}s")
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
    """Dial a Unix socket and return the connection (the caller sends Hello)."""
    loop = asyncio.get_running_loop()

    def factory() -> FrameConnection:
        conn = FrameConnection(frame_type, on_frame, on_close, name=name, hello_timeout=0,
                               **kwargs)
        conn.trusted = True  # we dialled a socket in our private folder
        return conn

    _, protocol = await asyncio.wait_for(loop.create_unix_connection(factory, path), timeout)
    return protocol
