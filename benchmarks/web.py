"""Web sessions beside telnet in the same run: idle memory and closed-loop round trips/s.

1. RSS per idle session of the portal and the server, for `--sessions` (1,000) telnet,
   websocket and ajax sessions, each kind in a fresh game (freed memory is not always
   given back to the OS, so kinds measured one after the other in one portal would hide
   each other). Telnet is the baseline: the figures are printed as ratios to it.
2. Closed loop at `--clients` (100): each client sends `ping <tag>-<n>`, waits for the
   answer and sends the next; round trips/s over websocket as a ratio to telnet, both
   measured in the same game one after the other, like against like (neither door has a
   command rate or an input CPU share there), with the portal's CPU µs per round trip.

The clients are lean asyncio protocols: telnet's `PingClient`, a websocket client on the
`websockets` library's sans-I/O `ClientProtocol`, and an ajax client that holds one long
poll each on a raw socket. Exits non-zero when a session was refused or dropped or a
round trip was lost, and (unless `--targets report`) when a target is missed: web
sessions at most 16 KB each, websocket round trips/s at least half of telnet's.

    python -m benchmarks.web [--sessions 1000] [--clients 100] [--duration 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
import urllib.parse
from pathlib import Path
from typing import Any

import uvloop
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.uri import parse_uri

from benchmarks.client import (
    GameRunner,
    PongCounter,
    closed_loop,
    open_clients,
    raise_fd_limit,
    rss_of,
)
from benchmarks.report import Checks, add_targets_option, table, temp_dir, write_json


class WsPingClient(PongCounter, asyncio.Protocol):
    """A websocket client speaking Evennia's JSON arrays; counts pongs as `PongCounter`."""

    def __init__(self, port: int, tag: str) -> None:
        PongCounter.__init__(self)
        self.tag = tag
        self.ws = ClientProtocol(parse_uri(f"ws://127.0.0.1:{port}/ws?{tag}&{tag}&bench"),
                                 subprotocols=["v1.evennia.com"])  # type: ignore[list-item]
        self.transport: asyncio.Transport | None = None
        self.greeted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed = False
        self._pong = re.compile(rf"pong {re.escape(tag)}-(\d+)")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.ws.send_request(self.ws.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        self.ws.receive_data(data)
        for event in self.ws.events_received():
            if isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                self._message(bytes(event.data).decode())
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.greeted.done():
            self.greeted.set_exception(ConnectionError(f"{self.tag}: closed"))

    def _message(self, text: str) -> None:
        if not self.greeted.done():
            self.greeted.set_result(None)
        for match in self._pong.finditer(text):
            self._got_pong(int(match[1]), time.monotonic())

    def send_ping(self) -> None:
        self._sent_at = time.monotonic()
        line = f"ping {self.tag}-{self.sent}"
        self.ws.send_text(json.dumps(["text", [line], {}]).encode())
        self.sent += 1
        self._flush()

    def _flush(self) -> None:
        data = b"".join(self.ws.data_to_send())
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class AjaxIdleClient(asyncio.Protocol):
    """An ajax page at rest: init, take the connection screen, then hold one long poll."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.transport: asyncio.Transport | None = None
        self.answers: asyncio.Queue[bytes] = asyncio.Queue()
        self.buffer = b""
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, _, rest = self.buffer.partition(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            if len(rest) < length:
                return
            self.answers.put_nowait(rest[:length])
            self.buffer = rest[length:]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True

    def post(self, **fields: str) -> None:
        body = urllib.parse.urlencode({"csessid": self.tag, "cuid": self.tag, **fields})
        assert self.transport is not None
        self.transport.write(
            b"POST /webclientdata HTTP/1.1\r\nHost: bench\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body.encode()))

    async def settle(self, timeout: float) -> None:
        self.post(mode="init", browserstr="bench")
        await asyncio.wait_for(self.answers.get(), timeout)
        self.post(mode="receive", batch="1")  # the connection screen
        await asyncio.wait_for(self.answers.get(), timeout)
        self.post(mode="receive", batch="1")  # held until there is output

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def web_game(prefix: str) -> GameRunner:
    # like against like: no command rate and no input CPU share for either door (a closed
    # loop is far faster than a player types, and would measure the limits themselves)
    game = GameRunner(Path(temp_dir(prefix)), {"portal": {"web_port": 0,
                                                          "commands_per_second": 0,
                                                          "read_cpu_share": 0}})
    game.start()
    return game


async def open_many(make: Any, count: int, concurrency: int, timeout: float) -> list[Any]:
    gate = asyncio.Semaphore(concurrency)

    async def one(index: int) -> Any:
        async with gate:
            return await make(index)

    return list(await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(count))),
                                       timeout))


async def idle_memory(kind: str, n: int, args: argparse.Namespace) -> dict[str, Any]:
    """Portal and server RSS per idle session of one kind, in a fresh game."""
    game = web_game(f"hearth-web-{kind}-")
    clients: list[Any] = []
    loop = asyncio.get_running_loop()
    try:
        status = game.status()
        pids = {role: int(status[role]["pid"]) for role in ("portal", "server")}
        telnet, web = int(status["ports"]["telnet"]), int(status["ports"]["web"])
        await asyncio.sleep(0.3)
        before = {role: rss_of(pid) for role, pid in pids.items()}

        async def ws(index: int) -> WsPingClient:
            client = WsPingClient(web, f"{kind}{index}")
            await loop.create_connection(lambda: client, "127.0.0.1", web)
            await asyncio.wait_for(client.greeted, 60)
            return client

        async def ajax(index: int) -> AjaxIdleClient:
            client = AjaxIdleClient(f"{kind}{index}")
            await loop.create_connection(lambda: client, "127.0.0.1", web)
            await client.settle(60)
            return client

        start = time.monotonic()
        if kind == "telnet":
            clients = await open_clients(telnet, n, prefix="t", concurrency=args.concurrency)
            await asyncio.gather(*(c.expect("connect <username>", 120) for c in clients))
        else:
            clients = await open_many(ws if kind == "websocket" else ajax, n,
                                      args.concurrency, 180)
        opened = time.monotonic() - start
        await asyncio.sleep(1.0)
        after = {role: rss_of(pid) for role, pid in pids.items()}
        sessions = int(game.status()["sessions"])
        dropped = sum(1 for c in clients if getattr(c, "closed", False)
                      or getattr(c, "closed_at", None) is not None)
        return {"sessions": n, "portal_sessions": sessions, "dropped": dropped,
                "open_s": opened, "rss_before": before, "rss_after": after,
                "per_session": {r: (after[r] - before[r]) / n for r in before}}
    finally:
        for client in clients:
            client.close()
        game.cleanup()


async def round_trips(args: argparse.Namespace) -> dict[str, Any]:
    game = web_game("hearth-web-loop-")
    loop = asyncio.get_running_loop()
    try:
        status = game.status()
        ports = status["ports"]
        pids = {role: int(status[role]["pid"]) for role in ("portal", "server")}
        telnet_clients = await open_clients(int(ports["telnet"]), args.clients, prefix="l")
        await asyncio.gather(*(c.expect("connect <username>", 60) for c in telnet_clients))
        telnet = await closed_loop(telnet_clients, args.duration, args.warmup, pids)
        for client in telnet_clients:
            client.close()

        async def ws(index: int) -> WsPingClient:
            client = WsPingClient(int(ports["web"]), f"w{index}")
            await loop.create_connection(lambda: client, "127.0.0.1", int(ports["web"]))
            await asyncio.wait_for(client.greeted, 60)
            return client

        ws_clients = await open_many(ws, args.clients, args.concurrency, 120)
        websocket = await closed_loop(ws_clients, args.duration, args.warmup, pids)
        for client in ws_clients:
            client.close()
        return {"clients": args.clients, "telnet": telnet, "websocket": websocket}
    finally:
        game.cleanup()


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    limit = raise_fd_limit()
    n = min(args.sessions, limit - 200)
    memory = {kind: await idle_memory(kind, n, args)
              for kind in ("telnet", "websocket", "ajax")}
    loops = await round_trips(args)
    return {"fd_limit": limit, "memory": memory, "round_trips": loops, "settings": vars(args)}


def _ratio(value: float, baseline: float) -> float | str:
    return value / baseline if baseline else "n/a"


def report(data: dict[str, Any]) -> None:
    mem = data["memory"]
    base = mem["telnet"]["per_session"]
    rows = []
    for kind, figures in mem.items():
        per = figures["per_session"]
        rows.append([f"{kind}: RSS/session portal (bytes)", per["portal"], base["portal"],
                     _ratio(per["portal"], base["portal"]), f"open {figures['open_s']:.1f} s"])
        rows.append([f"{kind}: RSS/session server (bytes)", per["server"], base["server"],
                     _ratio(per["server"], base["server"]), ""])
    n = mem["telnet"]["sessions"]
    print(table(f"web: memory of {n:,} idle sessions (baseline: telnet sessions)",
                ["figure", "value", "telnet", "ratio", "note"], rows))
    loops = data["round_trips"]
    t, w = loops["telnet"], loops["websocket"]
    print(table(f"web: closed loop, {loops['clients']} clients (baseline: telnet, same game)",
                ["figure", "websocket", "telnet", "ratio"],
                [["round trips/s", w["per_s"], t["per_s"], _ratio(w["per_s"], t["per_s"])],
                 ["p50 (µs)", w["p50_us"], t["p50_us"], _ratio(w["p50_us"], t["p50_us"])],
                 ["p99 (µs)", w["p99_us"], t["p99_us"], _ratio(w["p99_us"], t["p99_us"])],
                 *[[f"{role} CPU µs/round trip", w["cpu_us_per_rt"][role],
                    t["cpu_us_per_rt"][role],
                    _ratio(w["cpu_us_per_rt"][role], t["cpu_us_per_rt"][role])]
                   for role in ("portal", "server")],
                 ["lost", w["lost"], t["lost"], ""],
                 ["duplicated", w["duplicated"], t["duplicated"], ""]]))


def checks(data: dict[str, Any]) -> Checks:
    out = Checks()
    for kind, figures in data["memory"].items():
        whole = figures["portal_sessions"] == figures["sessions"] and not figures["dropped"]
        out.correct(f"{kind}: every idle session open", whole,
                    f"{figures['portal_sessions']}/{figures['sessions']}, "
                    f"{figures['dropped']} dropped")
        if kind != "telnet":
            per = figures["per_session"]["portal"] + figures["per_session"]["server"]
            out.target(f"{kind}: RSS/session, portal + server <= 16 KB", per <= 16 * 1024,
                       f"{per:,.0f}")
    loops = data["round_trips"]
    for kind in ("telnet", "websocket"):
        figures = loops[kind]
        out.correct(f"closed loop over {kind}: answered, none lost or duplicated",
                    figures["round_trips"] > 0 and not figures["lost"]
                    and not figures["duplicated"] and not figures["wrong_number"],
                    f"{figures['round_trips']} round trips, {figures['lost']} lost, "
                    f"{figures['duplicated']} duplicated, {figures['wrong_number']} wrong")
    ratio = loops["websocket"]["per_s"] / max(loops["telnet"]["per_s"], 1e-9)
    out.target("websocket round trips/s >= 0.5 x telnet", ratio >= 0.5, f"{ratio:.2f}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--concurrency", type=int, default=64)
    add_targets_option(parser)
    args = parser.parse_args()
    data = uvloop.run(amain(args))
    report(data)
    path = write_json("web", data)
    print(f"\nJSON: {path}")
    checks(data).finish(args.targets)


if __name__ == "__main__":
    main()
