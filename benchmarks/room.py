"""Talking and walking: `say` in a room of N players, and N players walking `n`/`s`.

Both parts run closed loop on one game (the bundled default game), with N (100) logged-in
telnet clients in the start room:

- **say**: every client says a line, waits for its own `You say, "...`, and says the next;
  each say reaches the N-1 others (`X says, "...`). Figures: says/s, deliveries/s (every
  `says`/`You say` line any client received), and the CPU µs per say of the server and
  the portal (less noisy than rates on a shared machine).
- **walk**: every client walks `n`, waits until it sees the courtyard, walks `s`, waits
  for the hall, and so on: commands/s with every move's write (the character's new
  location) committed before its answer left the server. Afterwards the game is stopped
  and each character's location is read from the database: it must be the room its
  player last saw (correctness check). Each move is also seen by the others in both
  rooms ("X leaves north.", "X arrives from the south.").

    python -m benchmarks.room [--players 100] [--duration 5]

Run it from another worktree to measure that commit's game (the say part works with any
game whose start room is Hearth Hall and whose `say` reaches it).
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import psutil
import uvloop

from benchmarks.client import BUNDLED_GAME, IAC, GameRunner, raise_fd_limit, strip_telnet
from benchmarks.report import Checks, add_targets_option, table, temp_dir, write_json

HALL, YARD = b"smoke-dark beams", b"Cobbles wet with dew"  # in each room's description
SAID, HEARD = b'You say, "', b' says, "'


class RoomClient(asyncio.Protocol):
    """A lean closed-loop telnet client: counts markers in what arrives (no line split)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.transport: asyncio.Transport | None = None
        self.mode = "idle"  # "say" | "walk" | "idle"
        self.running = False
        self.said = self.heard = 0
        self.moves = 0
        self.room = "hall"  # the last room this client saw itself in
        self.want = b""  # walk: the description that answers the move in flight
        self.seen = bytearray()  # until logged in: what arrived
        self.logged_in: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.idle: asyncio.Event = asyncio.Event()
        self.idle.set()
        self._tail = b""
        self._telnet: dict[str, Any] = {}
        self._n = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if IAC in data or self._telnet.get("mode", "data") != "data":
            data = strip_telnet(data, self._telnet)
            replies = self._telnet.pop("replies", None)
            if replies and self.transport is not None:
                self.transport.write(bytes(replies))
        if not self.logged_in.done():
            self.seen += data
            if b"connect <username>" in self.seen and not self._n:
                self._n = 1
                self.send(f"create {self.name} secret1")
            if b"Hearth Hall" in self.seen[self.seen.find(b"create"):]:
                self.logged_in.set_result(None)
            return
        old = self._tail
        text = old + data
        self._tail = text[-24:]  # a marker split between two reads is still counted once
        self.heard += text.count(HEARD) - old.count(HEARD)
        if self.mode == "say":
            mine = text.count(SAID) - old.count(SAID)
            if mine:
                self.said += mine
                self.next_say()
        elif self.mode == "walk" and self.want and self.want in text:
            self.room = "yard" if self.want == YARD else "hall"
            self.moves += 1
            self.want = b""
            self.next_move()

    def send(self, line: str) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(line.encode() + b"\r\n")

    def next_say(self) -> None:
        if not self.running:
            self.idle.set()
            return
        self._n += 1
        self.send(f"say {self.name} line {self._n}")

    def next_move(self) -> None:
        if not self.running:
            self.idle.set()
            return
        if self.room == "hall":
            self.want = YARD
            self.send("n")
        else:
            self.want = HALL
            self.send("s")

    def start(self, mode: str) -> None:
        self.mode, self.running = mode, True
        self.idle.clear()
        self.next_say() if mode == "say" else self.next_move()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def cpu_of(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


async def run_phase(clients: list[RoomClient], mode: str, duration: float, warmup: float,
                    pids: dict[str, int]) -> dict[str, Any]:
    for client in clients:
        client.start(mode)
    await asyncio.sleep(warmup)
    said0, heard0 = sum(c.said for c in clients), sum(c.heard for c in clients)
    moves0 = sum(c.moves for c in clients)
    cpu0 = {role: cpu_of(pid) for role, pid in pids.items()}
    start = time.monotonic()
    await asyncio.sleep(duration)
    elapsed = time.monotonic() - start
    said = sum(c.said for c in clients) - said0
    heard = sum(c.heard for c in clients) - heard0
    moves = sum(c.moves for c in clients) - moves0
    cpu = {role: cpu_of(pid) - cpu0[role] for role, pid in pids.items()}
    for client in clients:
        client.running = False
    await asyncio.wait_for(asyncio.gather(*(c.idle.wait() for c in clients)), 60)
    for client in clients:
        client.mode = "idle"
    units = said if mode == "say" else moves
    return {
        "seconds": elapsed, "commands": units, "per_s": units / elapsed,
        "deliveries_per_s": (said + heard) / elapsed if mode == "say" else None,
        "cpu_us": {role: (t / units * 1e6 if units else None) for role, t in cpu.items()},
    }


def locations(game: GameRunner) -> dict[str, str]:
    """Each character's room name, read from the stopped game's database."""
    db = sqlite3.connect(game.dir / ".hearth" / "game.db")
    try:
        names = dict(db.execute("SELECT id, key FROM world_objects"))
        rows = db.execute("SELECT key, location FROM world_objects WHERE tags IS NOT NULL "
                          "AND location IS NOT NULL").fetchall()
        out = {}
        for key, location in rows:
            out[key] = str(names.get(location, "?"))
        return out
    finally:
        db.close()


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    raise_fd_limit()
    game = GameRunner(Path(temp_dir("hearth-room-")),
                      {"server": {"scrypt_n": 1024}, "portal": {"commands_per_second": 0}},
                      template=BUNDLED_GAME)
    clients: list[RoomClient] = []
    try:
        game.start()
        status = game.status()
        port = int(status["ports"]["telnet"])
        pids = {"portal": int(status["portal"]["pid"]), "server": int(status["server"]["pid"])}
        loop = asyncio.get_running_loop()
        for i in range(args.players):
            client = RoomClient(f"p{i}")
            await loop.create_connection(lambda c=client: c, "127.0.0.1", port)  # type: ignore[misc]
            clients.append(client)
        started = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*(c.logged_in for c in clients)), 180)
        login_s = time.monotonic() - started
        await asyncio.sleep(0.5)
        say = await run_phase(clients, "say", args.duration, args.warmup, pids)
        walk: dict[str, Any] | None = None
        if not args.say_only:
            walk = await run_phase(clients, "walk", args.duration, args.warmup, pids)
            await asyncio.sleep(0.2)
        last_seen = {c.name: c.room for c in clients}
        for client in clients:
            client.close()
        clients = []
        result = game.cli("stop", timeout=60)
        stopped = result.returncode == 0
        mismatched: list[str] = []
        if walk is not None:
            stored = locations(game)
            want = {"hall": "Hearth Hall", "yard": "Courtyard"}
            mismatched = [name for name, room in last_seen.items()
                          if stored.get(name) != want[room]]
        return {"players": args.players, "login_s": login_s, "say": say, "walk": walk,
                "stopped": stopped, "settings": vars(args), "mismatched": mismatched}
    finally:
        for client in clients:
            client.close()
        game.cleanup()


def report(data: dict[str, Any]) -> None:
    say, walk = data["say"], data["walk"]
    rows = [
        ["say: says/s", say["per_s"], "", ""],
        ["say: deliveries/s", say["deliveries_per_s"], "", ""],
        ["say: server CPU µs per say", say["cpu_us"]["server"], "", ""],
        ["say: portal CPU µs per say", say["cpu_us"]["portal"], "", ""],
    ]
    if walk is not None:
        rows += [
            ["walk: moves/s (committed)", walk["per_s"], "", ""],
            ["walk: server CPU µs per move", walk["cpu_us"]["server"], "", ""],
            ["walk: portal CPU µs per move", walk["cpu_us"]["portal"], "", ""],
            ["walk: characters where their player last saw them",
             data["players"] - len(data["mismatched"]), data["players"], ""],
        ]
    print(table(f"room: {data['players']} players in one room, closed loop "
                f"({data['settings']['duration']} s each)", ["figure", "value", "of", ""],
                rows))


def checks(data: dict[str, Any]) -> Checks:
    out = Checks()
    out.correct("the game stopped cleanly", data["stopped"], data["stopped"])
    if data["walk"] is not None:
        out.correct("every character is where its player last saw it", not data["mismatched"],
                    data["mismatched"][:5])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--players", type=int, default=100)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--say-only", action="store_true",
                        help="only the say part (a game without the starter area)")
    add_targets_option(parser)
    args = parser.parse_args()
    data = uvloop.run(amain(args))
    report(data)
    path = write_json("room", data)
    print(f"\nJSON: {path}")
    checks(data).finish(args.targets)


if __name__ == "__main__":
    main()

