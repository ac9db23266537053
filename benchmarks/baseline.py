"""The raw two-hop chain: the machine's own limit for a MUD's hot path, with no game logic.

    TCP client -> process A (relay) -> Unix socket, msgspec frames -> process B (echo) -> back

A plays the portal (one TCP connection per player, lines in, text out), B plays the server
(answers `ping X` with `pong X`). Both run on uvloop, frames are length-prefixed msgspec
MessagePack of the same Structs Hearth uses, and each side writes at most once per loop
turn on the Unix socket. Run beside Hearth in the same benchmark, every Hearth figure is
printed as a ratio to this one.

`RawChain` starts both processes (`python -m benchmarks.baseline relay|echo`) and stops them
by pid.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import uvloop

from benchmarks.report import temp_dir
from ipc.child import die_with_parent
from ipc.frames import DataIn, DataOut, InputItem, OutputItem

REPO = Path(__file__).resolve().parent.parent
Frames = DataIn | DataOut


class Framer:
    """Length-prefixed msgspec frames, encoded into one buffer per loop turn."""

    def __init__(self) -> None:
        self.encoder = msgspec.msgpack.Encoder()
        self.decoder = msgspec.msgpack.Decoder(Frames)
        self.inbuf = bytearray()

    def frames(self, data: bytes) -> list[Any]:
        buf = self.inbuf
        buf += data
        out, pos, end = [], 0, len(buf)
        while end - pos >= 4:
            size = int.from_bytes(buf[pos:pos + 4], "big")
            if end - pos - 4 < size:
                break
            out.append(self.decoder.decode(memoryview(buf)[pos + 4:pos + 4 + size]))
            pos += 4 + size
        del buf[:pos]
        return out

    def encode(self, frame: Any, buf: bytearray) -> None:
        start = len(buf)
        self.encoder.encode_into(frame, buf, start + 4)
        buf[start:start + 4] = (len(buf) - start - 4).to_bytes(4, "big")


class Link(asyncio.Protocol):
    """One end of the Unix socket: frames in to `on_frame`, items out once per loop turn."""

    def __init__(self, on_frame: Any, kind: type) -> None:
        self.framer = Framer()
        self.on_frame = on_frame
        self.kind = kind
        self.items: list[Any] = []
        self.transport: Any = None
        self.scheduled = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        for frame in self.framer.frames(data):
            self.on_frame(frame)

    def send(self, item: Any) -> None:
        self.items.append(item)
        if not self.scheduled:
            self.scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self.scheduled = False
        buf = bytearray()
        self.framer.encode(self.kind(items=self.items), buf)
        self.items = []
        self.transport.write(buf)


# ---------------------------------------------------------------- B: the "server"


def echo_link() -> Link:
    """B's end of the Unix socket: every `ping X` answered `pong X`."""
    link = Link(None, DataOut)

    def on_frame(frame: DataIn) -> None:
        for item in frame.items:
            text = item.args[0]
            link.send(OutputItem(item.sessid, "text", ["pong" + text[4:]], {}))
    link.on_frame = on_frame
    return link


async def run_echo(path: str) -> None:
    loop = asyncio.get_running_loop()
    await loop.create_unix_server(echo_link, path)
    print("READY", flush=True)
    await asyncio.Event().wait()


# ---------------------------------------------------------------- A: the "portal"


class Player(asyncio.Protocol):
    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.sessid = 0
        self.partial = b""
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.sessid = self.relay.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.relay.players.pop(self.sessid, None)

    def data_received(self, data: bytes) -> None:
        if self.partial:
            data = self.partial + data
        *lines, self.partial = data.split(b"\n")
        seq = self.relay.seq
        for line in lines:
            seq += 1
            self.relay.link.send(InputItem(seq, self.sessid, "text",
                                           [line.rstrip(b"\r").decode()], {}))
        self.relay.seq = seq


class Relay:
    def __init__(self) -> None:
        self.players: dict[int, Player] = {}
        self.next = 1
        self.seq = 0
        self.link = Link(self.on_frame, DataIn)

    def add(self, player: Player) -> int:
        sessid, self.next = self.next, self.next + 1
        self.players[sessid] = player
        return sessid

    def on_frame(self, frame: DataOut) -> None:
        players = self.players
        for item in frame.items:
            player = players.get(item.sessid)
            if player is not None:
                player.transport.write(item.args[0].encode() + b"\r\n")


async def run_relay(path: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    relay = Relay()
    await loop.create_unix_connection(lambda: relay.link, path)
    server = await loop.create_server(lambda: Player(relay), "127.0.0.1", port, backlog=4096)
    print("PORT", server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()


# ---------------------------------------------------------------- driving it from a benchmark


class RawChain:
    """Start B then A as processes; `port` is A's TCP port; `stop()` kills both by pid."""

    def __init__(self) -> None:
        self.dir = temp_dir("hearth-raw-")
        self.path = os.path.join(self.dir, "b.sock")
        self.procs: list[subprocess.Popen[str]] = []
        self.port = 0

    def start(self) -> RawChain:
        self.procs.append(self._spawn("echo"))
        self._line(self.procs[0])
        self.procs.append(self._spawn("relay"))
        self.port = int(self._line(self.procs[1]).split()[1])
        return self

    @property
    def pids(self) -> dict[str, int]:
        return {"echo": self.procs[0].pid, "relay": self.procs[1].pid}

    def _spawn(self, role: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "benchmarks.baseline", role, "--path", self.path],
            cwd=REPO, stdout=subprocess.PIPE, text=True)

    @staticmethod
    def _line(proc: subprocess.Popen[str]) -> str:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # blocks until the child says it is ready
        if not line:
            raise RuntimeError(f"raw chain process {proc.pid} exited ({proc.wait()})")
        return line

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            if proc.stdout is not None:
                proc.stdout.close()
        self.procs.clear()
        Path(self.path).unlink(missing_ok=True)
        os.rmdir(self.dir)

    def __enter__(self) -> RawChain:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("role", choices=["relay", "echo"])
    parser.add_argument("--path", required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    die_with_parent(os.getppid())  # never outlive the benchmark that started us
    if args.role == "echo":
        uvloop.run(run_echo(args.path))
    else:
        uvloop.run(run_relay(args.path, args.port))


if __name__ == "__main__":
    main()
