"""Flow control and error handling of `ipc.connection.FrameConnection`, over a real
socket pair in one event loop."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

import pytest

from ipc.connection import CloseCause, FrameConnection
from ipc.frames import Ack, DataOut, GameFrame, OutputItem

LIMIT = 64 * 1024
BIG = DataOut(items=[OutputItem(1, "text", ["x" * 8000], {})])


class Peer:
    """One end: records frames and flow changes; `on_frame` may be replaced."""

    def __init__(self, **kwargs: Any) -> None:
        self.frames: list[Any] = []
        self.flow: list[bool] = []
        self.closed: list[str] = []
        self.changed = asyncio.Event()
        self.kwargs = kwargs
        self.conn: FrameConnection | None = None

    def on_frame(self, conn: FrameConnection, frame: Any) -> None:
        self.frames.append(frame)
        self.changed.set()

    def on_flow(self, conn: FrameConnection, writable: bool) -> None:
        self.flow.append(writable)
        self.changed.set()

    def on_close(self, conn: FrameConnection, reason: str) -> None:
        self.closed.append(reason)
        self.changed.set()

    def factory(self) -> FrameConnection:
        self.conn = FrameConnection(GameFrame, self.on_frame, self.on_close, name="t",
                                    check_uid=False, hello_timeout=0,
                                    on_writable=self.on_flow, write_limit=LIMIT,
                                    **self.kwargs)
        self.conn.trusted = True
        return self.conn

    async def wait(self, check: Any, what: str, timeout: float = 10.0) -> None:
        async def loop() -> None:
            while not check():
                self.changed.clear()
                await self.changed.wait()
        try:
            await asyncio.wait_for(loop(), timeout)
        except TimeoutError:
            raise AssertionError(f"no {what} within {timeout}s") from None


async def pair(a: Peer, b: Peer) -> tuple[FrameConnection, FrameConnection]:
    loop = asyncio.get_running_loop()
    left, right = socket.socketpair(socket.AF_UNIX)
    for sock in (left, right):  # small kernel buffers: the limit is ours, not the kernel's
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * 1024)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    await loop.create_unix_connection(a.factory, sock=left)
    await loop.create_unix_connection(b.factory, sock=right)
    assert a.conn is not None and b.conn is not None
    return a.conn, b.conn


def test_a_peer_that_stops_reading_stops_the_producer_with_memory_bounded() -> None:
    async def scenario() -> None:
        sender, reader = Peer(), Peer()
        out, back = await pair(sender, reader)
        assert back.transport is not None
        back.transport.pause_reading()
        sent = 0
        for _ in range(10_000):  # a producer that pulls work only while writable
            if not out.writable:
                break
            out.send(BIG)
            sent += 1
            await asyncio.sleep(0)
        assert sender.flow == [False], "the producer was never told to stop"
        assert out.buffered() <= LIMIT + 2 * len(b"x" * 8000) + 1024
        back.transport.resume_reading()
        await sender.wait(lambda: sender.flow == [False, True], "resume")
        await reader.wait(lambda: len(reader.frames) == sent, f"{sent} frames")
        assert out.buffered() == 0

    asyncio.run(scenario())


def test_a_responder_whose_answers_cannot_be_written_stops_reading_requests() -> None:
    async def scenario() -> None:
        server = Peer(pause_reading_when_full=True)
        portal = Peer()
        srv, ptl = await pair(server, portal)

        def answer(conn: FrameConnection, frame: Any) -> None:
            server.frames.append(frame)
            server.changed.set()
            conn.send(BIG)  # every request makes a big answer

        server.on_frame = answer  # type: ignore[method-assign]
        srv._on_frame = answer
        assert ptl.transport is not None and srv.transport is not None
        ptl.transport.pause_reading()  # the portal stops reading answers
        requests = 0
        while ptl.writable and requests < 10_000:  # the portal stops at its own limit
            ptl.send(Ack(seqs=list(range(100))))
            requests += 1
            await asyncio.sleep(0)
        await server.wait(lambda: server.flow == [False], "the server's flow stop")
        assert not srv.transport.is_reading()
        answered = len(server.frames)
        assert srv.buffered() <= LIMIT + 2 * len(b"x" * 8000) + 1024
        assert answered < requests or not ptl.writable
        ptl.transport.resume_reading()
        await server.wait(lambda: len(server.frames) == requests, "every request read")
        assert srv.transport.is_reading()

    asyncio.run(scenario())


def test_a_failing_handler_is_logged_with_the_frame_and_the_next_frame_is_taken(
        caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        a, b = Peer(), Peer()
        left, right = await pair(a, b)
        seen: list[Any] = []

        def flaky(conn: FrameConnection, frame: Any) -> None:
            seen.append(frame)
            b.changed.set()
            if len(seen) == 1:
                raise RuntimeError("boom")

        right._on_frame = flaky
        left.send(BIG)
        left.send(Ack(seqs=[7]))
        await b.wait(lambda: len(seen) == 2, "both frames")
        assert seen[1] == Ack(seqs=[7])

        def bad_close(conn: FrameConnection, reason: str) -> None:
            raise RuntimeError("close boom")

        right._on_close = bad_close
        right.close("done")
        assert right.cause is CloseCause.LOCAL

    with caplog.at_level(logging.ERROR, logger="ipc.connection"):
        asyncio.run(scenario())
    messages = [r.getMessage() for r in caplog.records]
    assert any("handler failed on DataOut frame" in m for m in messages), messages
    assert any("close handler failed (closed: done)" in m for m in messages), messages


def test_silence_past_the_heartbeat_timeout_closes_with_a_typed_cause() -> None:
    async def scenario() -> None:
        a, b = Peer(heartbeat=0.05, heartbeat_timeout=0.2), Peer()
        left, right = await pair(a, b)
        assert right.transport is not None
        right.transport.pause_reading()
        await a.wait(lambda: bool(a.closed), "a close")  # b sends nothing
        assert left.cause is CloseCause.SILENT

    asyncio.run(scenario())


def test_send_now_writes_at_once_in_one_write_and_a_read_ends_with_on_read_done() -> None:
    """The player path's frames leave without a loop turn (issue 24): `send_now` writes
    what was queued and its own frames in one write, and schedules nothing; the reader
    hears `on_read_done` once after the frames of that read."""
    async def scenario() -> None:
        done: list[int] = []
        sender = Peer()
        reader = Peer(on_read_done=lambda conn: done.append(len(reader.frames)))
        out, _ = await pair(sender, reader)
        assert out.transport is not None
        writes: list[int] = []
        real_write = out.transport.write
        out.transport.write = lambda data: (writes.append(len(data)), real_write(data))[1]  # type: ignore[method-assign]
        out.send(Ack(seqs=[1]))
        out.send_now(Ack(seqs=[2]), Ack(seqs=[3]))
        assert len(writes) == 1 and not out._flush_scheduled  # nothing left for a turn
        await reader.wait(lambda: len(reader.frames) == 3, "three frames")
        assert [f.seqs for f in reader.frames] == [[1], [2], [3]]
        assert done == [3]  # one read, after its three frames
    asyncio.run(asyncio.wait_for(scenario(), 10))
