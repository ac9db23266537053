"""`ChargedReads` hands a large read to asyncssh a slice per loop turn, in order."""

from __future__ import annotations

import asyncio
import socket

import uvloop

from portal.ssh.server import READ_SLICE, ChargedReads


class Inner(asyncio.Protocol):
    """Stands for asyncssh's connection: what it was handed, call by call."""

    def __init__(self) -> None:
        self.calls: list[bytes] = []
        self.turns: list[int] = []  # the loop turn of each call
        self.turn = 0
        self.lost = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.calls.append(bytes(data))
        self.turns.append(self.turn)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)


async def feed(total: int) -> tuple[Inner, bytes]:
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    inner = Inner()
    payload = bytes(i % 251 for i in range(total))
    transport, _ = await loop.connect_accepted_socket(lambda: inner, ours)
    transport.set_protocol(ChargedReads(inner, transport, 1.0, 10.0))
    theirs.sendall(payload)  # all of it at once, in the kernel: one large read
    theirs.shutdown(socket.SHUT_WR)

    async def count_turns() -> None:
        while not inner.lost.done():
            inner.turn += 1
            await asyncio.sleep(0)

    ticker = asyncio.ensure_future(count_turns())
    await asyncio.wait_for(asyncio.shield(inner.lost), 10)
    ticker.cancel()
    theirs.close()
    return inner, payload


def test_a_large_read_is_handed_on_a_slice_per_loop_turn_in_order() -> None:
    inner, payload = uvloop.run(feed(READ_SLICE * 6 + 123))
    assert b"".join(inner.calls) == payload
    assert max(len(call) for call in inner.calls) <= READ_SLICE
    assert len(inner.calls) >= 7
    assert len(set(inner.turns)) == len(inner.turns)  # never two slices in one turn


def test_a_small_read_is_handed_on_whole() -> None:
    inner, payload = uvloop.run(feed(100))
    assert inner.calls == [payload]
