"""A lean closed-loop pinger, so that a benchmark's client is not what saturates.

`PingClient` (benchmarks/client.py) splits every read into lines, strips telnet and ANSI,
parses numbers and keeps lines for `expect`: right for tests, but at 100,000 round trips a
second on two cores that work is a third of a core taken from the processes measured. A
`LeanPinger` does the least a closed loop needs: it writes `ping <tag>-<n>`, looks for
the exact bytes `pong <tag>-<n>` in what comes back (one `bytes.find`), notes the round
trip's time and sends the next. Every other `pong ` it sees (a duplicate, or one for
another number) is counted as wrong, so loss and duplication still show.

It takes over a connection that is already open and logged in: `adopt()` moves a
`PingClient`'s transport to it (`transport.set_protocol`), so logging in keeps using the
full client and only the measured loop is lean. `lean_loop()` runs a set of them and
returns the same figures as `client.closed_loop`, plus the client's own CPU share.
"""

from __future__ import annotations

import asyncio
import time
from array import array
from collections.abc import Sequence
from typing import Any

import psutil

from benchmarks.client import PingClient, cpu_seconds, percentile

_PONG = b"pong "
_TAIL = 256  # bytes of an unanswered read kept, in case an answer spans two reads


class LeanPinger(asyncio.Protocol):
    """One closed-loop player: one ping in flight, its answer found by `bytes.find`."""

    def __init__(self, tag: str, transport: asyncio.Transport | None = None) -> None:
        self.ping = f"ping {tag}-".encode()
        self.pong = f"pong {tag}-".encode()
        self.transport = transport
        self.sent = 0
        self.answered = 0  # answers to the ping in flight
        self.pongs = 0  # every `pong ` seen: pongs - answered is wrong or duplicated
        self.running = False
        self.rtts = array("d")
        self._want = b""
        self._sent_at = 0.0
        self._buf = b""

    @classmethod
    def adopt(cls, client: PingClient) -> LeanPinger:
        """Take over `client`'s open connection (it reads no more)."""
        assert client.transport is not None
        lean = cls(client.tag, client.transport)
        client.transport.set_protocol(lean)
        return lean

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send_ping(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        n = self.sent
        self._want = b"%s%d\r" % (self.pong, n)
        self.sent = n + 1
        self._sent_at = time.perf_counter()
        transport.write(b"%s%d\r\n" % (self.ping, n))

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        if self._buf:
            data = self._buf + data
        self.pongs += data.count(_PONG)
        if data.find(self._want) < 0:
            self._buf = data[-_TAIL:]
            return
        self._buf = b""
        self.answered += 1
        self.rtts.append(now - self._sent_at)
        if self.running:
            self.send_ping()

    def outstanding(self) -> int:
        return self.sent - self.answered

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def lean_loop(clients: Sequence[LeanPinger], duration: float, warmup: float,
                    pids: dict[str, int]) -> dict[str, Any]:
    """Run every pinger closed-loop; figures over `duration` after `warmup`, with each
    process's CPU µs per round trip and the client's (this process's) CPU share."""
    me = psutil.Process()
    for client in clients:
        client.running = True
        client.send_ping()
    await asyncio.sleep(warmup)
    marks = [len(c.rtts) for c in clients]
    cpu0, mine0, start = cpu_seconds(pids), sum(me.cpu_times()[:2]), time.monotonic()
    await asyncio.sleep(duration)
    elapsed = time.monotonic() - start
    cpu1, mine1 = cpu_seconds(pids), sum(me.cpu_times()[:2])
    rtts = [rtt for client, mark in zip(clients, marks, strict=True)
            for rtt in client.rtts[mark:]]
    for client in clients:
        client.running = False
    deadline = time.monotonic() + 10
    while any(c.outstanding() for c in clients) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    count = len(rtts)
    return {
        "unanswered": sum(c.outstanding() for c in clients),
        "lost": 0 if all(c.outstanding() == 0 for c in clients) else -1,
        "duplicated": 0,  # a duplicate is a pong that was not the one in flight: wrong
        "wrong_number": sum(c.pongs - c.answered for c in clients),
        "round_trips": count,
        "per_s": count / elapsed,
        "p50_us": percentile(rtts, 50) * 1e6,
        "p95_us": percentile(rtts, 95) * 1e6,
        "p99_us": percentile(rtts, 99) * 1e6,
        "client_cpu_share": (mine1 - mine0) / elapsed,
        "cpu_us_per_rt": {role: (cpu1[role] - cpu0[role]) / max(count, 1) * 1e6
                          for role in pids},
    }
