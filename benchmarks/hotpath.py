"""Python bytecodes per round trip on the player path: a count, not a clock.

A shared 2-core machine moves round trips/s by 20% between two runs of the same build, and
CPU µs per round trip by 10%; the number of bytecodes the interpreter runs for one round
trip does not move at all. This benchmark counts them (`sys.settrace` opcode events), per
function, for the four processes of `benchmarks.latency`, each driven in this process by
the same closed-loop load of N players that send `ping <tag>-<n>`:

- portal: a real `PortalProcess` with N telnet sessions on in-memory transports and an
  in-memory server connection. One round trip: one read of a line, the DataIn batch out,
  then the DataOut and Ack frames of the batch in (decoded by msgspec, as from the socket),
  one write to the player.
- server: the server's own command path (`server.testkit.TestGame`: the bundled game's
  `ping`, world savepoints, the commit, the output and ack frames encoded) with N
  logged-in players, fed the decoded DataIn batches.
- relay and echo: the raw chain's two processes (`benchmarks.baseline`) on the same load.

What runs in C (msgspec, the event loop, system calls) is not in the count, and neither
is the link's socket framing (`ipc/connection.py`, once per batch on each side); what the
live benchmark measures in time, this one says in work, exactly, and by function.
The run fails when the portal or the server runs more bytecodes per round trip than its
ceiling below (a test runs it so): a change that adds work to the player path must raise
the ceiling, in the open, with its reason. The ceilings hold for CPython 3.11 at 100
players (another version compiles to other bytecodes: there they are reported, not
enforced, as with `--targets report`).

    python -m benchmarks.hotpath [--players 100] [--rounds 10] [--targets report]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import msgspec

from benchmarks.baseline import REPO, Player, Relay, echo_link
from benchmarks.report import (
    Checks,
    add_targets_option,
    machine,
    table,
    temp_dir,
    write_json,
)
from ipc.child import ChildEnv
from ipc.frames import Ack, DataIn, DataOut, Frame, Hello, InputItem, SyncDone
from ipc.marker import FileMarker
from ipc.settings import PortalSettings, Settings
from portal.main import PortalProcess

if TYPE_CHECKING:
    from server.testkit import TestGame

# Bytecodes per round trip at 100 players on CPython 3.11, with room for a line or two
# of a real fix: raise one only with the reason in the commit that does.
CEILINGS = {"portal": 620, "server": 315}
ENFORCED_ON = (3, 11)
NEGOTIATION = 0.01  # (seconds) the clients answer no telnet option: the portal moves on
HERE = str(Path(__file__).resolve())
ROOT = str(REPO) + "/"
GENERATED = "<string>"  # methods made by `dataclasses` (a dataclass's `__init__`): counted

Counts = Counter[tuple[str, str]]
CALLS = ("", "(calls)")  # the key of a side's count of Python function calls


class Tally:
    """Bytecodes run by the repository's code (not this file's drivers), by side."""

    def __init__(self) -> None:
        self.counts: dict[str, Counts] = {}
        self.side: Counts | None = None

    def on(self, side: str) -> None:
        self.side = self.counts.setdefault(side, Counter())

    def off(self) -> None:
        self.side = None

    def trace(self, frame: FrameType, event: str, arg: Any) -> Callable[..., Any] | None:
        code = frame.f_code
        name = code.co_filename
        if not (name.startswith(ROOT) or name == GENERATED) or name == HERE:
            return None  # the drivers and the standard library are not counted
        frame.f_trace_opcodes = True
        if self.side is not None:
            if event == "opcode":
                self.side[(name.removeprefix(ROOT), code.co_qualname)] += 1
            elif event == "call":
                self.side[CALLS] += 1
        return self.trace


class Wire:
    """An in-memory transport: what is written is kept (as bytes) for the driver."""

    def __init__(self, address: str = "127.0.0.1") -> None:
        self.address = address
        self.written: list[bytes] = []
        self.closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return (self.address, 4000) if name == "peername" else default

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))

    def close(self) -> None:
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self.written)
        self.written.clear()
        return data


class ServerEnd:
    """The portal's connection to the server, in memory: frames are encoded as the link
    would and kept for the driver."""

    def __init__(self) -> None:
        self.state: dict[str, Any] = {}
        self.trusted = False
        self.frames: list[Frame] = []

    def send(self, frame: Frame, urgent: bool = False) -> None:
        self.frames.append(frame)

    def flush(self) -> None:
        pass

    def send_now(self, *frames: Frame) -> None:
        self.frames.extend(frames)


ENCODER = msgspec.msgpack.Encoder()
TO_SERVER = msgspec.msgpack.Decoder(DataIn)  # (decoding is C: not counted)
TO_PORTAL = msgspec.msgpack.Decoder(DataOut | Ack)


def lines(round_: int) -> bytes:
    return f"ping a-{round_}\r\n".encode()


async def hearth(tally: Tally, kit: TestGame, rounds: int) -> int:
    """Portal and server, one after the other in each round; the answers to check."""
    folder = Path(temp_dir("hearth-hotpath-"))
    players = len(kit.handler.sessions)
    env = ChildEnv(game_dir=folder, secret="s", control_socket=folder / "c.sock",
                   portal_socket=folder / "p.sock", state_dir=folder, parent_pid=1)
    settings = Settings(portal=PortalSettings(unlimited_addresses=["127.0.0.1"],
                                              commands_per_second=0, read_cpu_share=0,
                                              negotiation_timeout=NEGOTIATION))
    portal = PortalProcess(env, settings)
    handler, conn = portal.handler, ServerEnd()
    handler.server_connected(conn, Hello(role="server", pid=1))  # type: ignore[arg-type]
    handler.server_frame(conn, SyncDone())  # type: ignore[arg-type]
    wires = [Wire() for _ in range(players)]
    telnet = [portal.telnet_session("telnet") for _ in wires]
    for session, wire in zip(telnet, wires, strict=True):
        session.connection_made(wire)  # type: ignore[arg-type]
    await asyncio.sleep(NEGOTIATION * 5)  # the client says nothing: negotiation ends

    server = kit.handler
    server._marker = FileMarker(folder / "marker")  # what the live server notes inputs in
    sent: list[Frame] = []
    server._send_now = sent.extend  # (the link's part, encoding, is C: not counted)
    by_portal = dict(zip(sorted(handler.sessions), sorted(kit.handler.sessions), strict=True))
    by_server = {v: k for k, v in by_portal.items()}
    answered = 0
    for round_ in range(-2, rounds):  # two rounds to warm up, not counted
        count = round_ >= 0
        for wire in wires:
            wire.written.clear()
        if count:
            tally.on("portal")
        line = lines(round_)
        for session in telnet:
            session.data_received(line)
        await asyncio.sleep(0)  # the pump: the DataIn batch leaves
        tally.off()
        batch = [f for f in conn.frames if isinstance(f, DataIn)]
        conn.frames.clear()
        items = [InputItem(i.seq, by_portal[i.sessid], i.cmdname, i.args, i.kwargs)
                 for f in batch for i in f.items]
        data = ENCODER.encode(DataIn(items=items))
        if count:
            tally.on("server")
        frame = TO_SERVER.decode(data)
        server.hold_flush()
        server.receive_input(frame.items)
        server.release_flush()
        tally.off()
        for f in sent:  # back to the portal's numbering of sessions
            if isinstance(f, DataOut):
                for o in f.items:
                    o.sessid = by_server[o.sessid]
        replies = [ENCODER.encode(f) for f in sent]
        sent.clear()
        if count:
            tally.on("portal")
        for raw in replies:
            handler.server_frame(conn, TO_PORTAL.decode(raw))  # type: ignore[arg-type]
        await asyncio.sleep(0)
        tally.off()
        answered += sum(f"pong a-{round_}".encode() in w.take() for w in wires) if count else 0
    return answered


async def chain(tally: Tally, players: int, rounds: int) -> int:
    """The raw chain's relay and echo on the same load; the answers to check."""
    relay = Relay()
    to_echo = Wire()
    relay.link.transport = to_echo
    echo = echo_link()
    to_relay = Wire()
    echo.transport = to_relay
    wires = [Wire() for _ in range(players)]
    conns = [Player(relay) for _ in range(players)]
    for conn, wire in zip(conns, wires, strict=True):
        conn.connection_made(wire)
    answered = 0
    for round_ in range(-2, rounds):
        count = round_ >= 0
        if count:
            tally.on("relay")
        line = lines(round_)
        for conn in conns:
            conn.data_received(line)
        await asyncio.sleep(0)  # the relay's flush
        tally.off()
        data = to_echo.take()
        if count:
            tally.on("echo")
        echo.data_received(data)
        await asyncio.sleep(0)  # the echo's flush
        tally.off()
        data = to_relay.take()
        if count:
            tally.on("relay")
        relay.link.data_received(data)
        tally.off()
        answered += sum(f"pong a-{round_}".encode() in w.take() for w in wires) if count else 0
    return answered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--players", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--top", type=int, default=12, help="functions listed per side")
    add_targets_option(parser)
    args = parser.parse_args()
    tally = Tally()
    trips = args.players * args.rounds
    from server.testkit import TestGame  # (imports the bundled game: only when run)
    kit = TestGame(Path(temp_dir("hearth-hotpath-")) / "world.db")
    for n in range(args.players):
        kit.player(f"p{n}", oob=False)
    sys.settrace(tally.trace)
    try:
        got_hearth = asyncio.run(hearth(tally, kit, args.rounds))
        got_chain = asyncio.run(chain(tally, args.players, args.rounds))
    finally:
        sys.settrace(None)
        kit.close()
    calls = {side: c.pop(CALLS, 0) / trips for side, c in tally.counts.items()}
    per = {side: sum(c.values()) / trips for side, c in tally.counts.items()}
    print(table("bytecodes and Python calls per round trip (C work is not counted)",
                ["process", "bytecodes", "calls", "raw chain", "bytecodes ", "calls ", "x"],
                [[mine, per[mine], calls[mine], theirs, per[theirs], calls[theirs],
                  per[mine] / per[theirs]]
                 for mine, theirs in (("portal", "relay"), ("server", "echo"))]))
    for side in ("portal", "server", "relay", "echo"):
        rows = [[f"{name} ({path})", n / trips]
                for (path, name), n in tally.counts[side].most_common(args.top)]
        print(table(f"{side}: where its bytecodes are", ["function", "per round trip"], rows))
    path = write_json("hotpath", {"machine": machine(), "players": args.players,
                                  "rounds": args.rounds, "per_round_trip": per,
                                  "calls_per_round_trip": calls,
                                  "ceilings": CEILINGS})
    print(f"\nJSON: {path}")
    checks = Checks()
    checks.correct("hearth: every ping answered", got_hearth == trips, got_hearth)
    checks.correct("raw chain: every ping answered", got_chain == trips, got_chain)
    comparable = sys.version_info[:2] == ENFORCED_ON and args.players == 100
    for side, ceiling in CEILINGS.items():
        checks.target(f"{side}: bytecodes per round trip <= {ceiling}",
                      per[side] <= ceiling, f"{per[side]:.0f}")
    checks.finish(args.targets if comparable else "report")


if __name__ == "__main__":
    main()
