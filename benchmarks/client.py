"""A small telnet MUD client for tests and benchmarks, plus helpers to run a game.

`MudClient` reads lines (telnet commands and ANSI colour stripped) into a list and lets a
caller wait, with a timeout, for a line matching a pattern. It refuses every telnet option
the portal offers (DONT/WONT), as a plain client does, so negotiation settles at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from array import array
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
# The game tests and benchmarks run: their own, not the bundled `game/` a user edits
TEST_GAME = REPO / "tests" / "game"
# The bundled game itself (Hearthstead): only the tests and the benchmark *of* its world use it
BUNDLED_GAME = REPO / "game"
ANSI = re.compile(rb"\x1b\[[0-9;]*[A-Za-z]")
IAC = 255
SE, SB = 240, 250
WILL, WONT, DO, DONT = 251, 252, 253, 254
REFUSALS = {WILL: DONT, DO: WONT}  # what a client that supports no option answers
# Every test and benchmark client comes from 127.0.0.1: the per-address login limits would
# count them all as one stranger. Tests of those limits set their own.
LOOPBACK_LOGINS = {"creations_per_address": 1_000_000, "queue_per_address": 100_000,
                   "queue_total": 100_000}


def strip_telnet(data: bytes, state: dict[str, Any]) -> bytes:
    """Remove telnet commands (stateful across reads); IAC IAC becomes 0xff."""
    mode = state.get("mode", "data")
    if mode == "data" and IAC not in data:
        return data  # the common case: plain text, no byte-by-byte loop
    out = bytearray()
    for byte in data:
        if mode == "data":
            if byte == IAC:
                mode = "iac"
            else:
                out.append(byte)
        elif mode == "iac":
            if byte == IAC:
                out.append(byte)
                mode = "data"
            elif byte == SB:
                mode = "sb"
            elif 251 <= byte <= 254:
                mode = "option"
                state["command"] = byte
            else:
                mode = "data"
        elif mode == "option":
            mode = "data"
            answer = REFUSALS.get(state.get("command", 0))
            if answer is not None:
                state.setdefault("replies", bytearray()).extend((IAC, answer, byte))
        elif mode == "sb":
            if byte == IAC:
                mode = "sb_iac"
        elif mode == "sb_iac":
            mode = "data" if byte == SE else "sb"
    state["mode"] = mode
    return bytes(out)


class MudClient:
    def __init__(self, name: str = "") -> None:
        self.name = name
        self.lines: list[str] = []
        self.cursor = 0
        self.closed = False
        self._changed = asyncio.Event()
        self._partial = b""
        self._telnet: dict[str, Any] = {}
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None

    async def connect(self, port: int, host: str = "127.0.0.1", timeout: float = 10.0,
                      source: str | None = None) -> None:
        """`source`: the local address to connect from (127.0.0.2 is another "address")."""
        local = (source, 0) if source else None
        self._reader, self._writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, local_addr=local), timeout)
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._reader is not None
        try:
            while True:
                data = await self._reader.read(65536)
                if not data:
                    break
                self._feed(data)
        except (ConnectionError, OSError):
            pass
        finally:
            if self._partial:
                self.lines.append(self._partial.decode("utf-8", "replace"))
                self._partial = b""
            self.closed = True
            self._changed.set()

    def _feed(self, data: bytes) -> None:
        text = self._partial + ANSI.sub(b"", strip_telnet(data, self._telnet))
        replies = self._telnet.pop("replies", None)
        if replies and self._writer is not None:
            self._writer.write(bytes(replies))
        *complete, self._partial = text.split(b"\n")
        for raw in complete:
            self.lines.append(raw.rstrip(b"\r").decode("utf-8", "replace"))
        self._changed.set()

    def send(self, line: str) -> None:
        assert self._writer is not None
        self._writer.write(line.encode() + b"\r\n")

    async def expect(self, pattern: str, timeout: float = 15.0) -> str:
        """The next line (after the cursor) that matches `pattern`; moves the cursor past it."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            for index in range(self.cursor, len(self.lines)):
                if regex.search(self.lines[index]):
                    self.cursor = index + 1
                    return self.lines[index]
            if self.closed:
                raise AssertionError(f"{self.name}: connection closed while waiting for "
                                     f"{pattern!r}; last lines: {self.lines[-5:]}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{self.name}: no line matching {pattern!r} within "
                                     f"{timeout}s; last lines: {self.lines[-8:]}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    async def login(self, name: str, password: str = "secret1", create: bool = True,
                    entered: str = r"Hearth Hall|^Exits:") -> None:
        """Log in and wait for the room (`entered`): the start room for a new character,
        where it last was for one that logs in again (the default game's rooms show
        their exits)."""
        await self.expect("connect <username> <password>")
        self.send(f"{'create' if create else 'connect'} {name} {password}")
        await self.expect(entered)

    async def wait_closed(self, timeout: float = 10.0) -> None:
        if self._task is not None:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._task is not None:
            self._task.cancel()


# ---------------------------------------------------------------- running a game


def _exit_on_term(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def stop_games_on_sigterm() -> None:
    """SIGTERM (`timeout`, a CI runner) ends this process through its `finally` blocks, so
    every game it started is stopped; by default it would die and leave them running (a
    started game is a daemon: it does not die with us)."""
    if (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL):
        signal.signal(signal.SIGTERM, _exit_on_term)


class GameRunner:
    """A game directory in a temporary folder (a copy of `template`), driven through `run.py`."""

    def __init__(self, root: Path, settings: dict[str, dict[str, Any]] | None = None,
                 template: Path = TEST_GAME) -> None:
        stop_games_on_sigterm()
        self.dir = root / "game"
        self.pids: set[int] = set()
        self._port: int | None = None
        if self.dir.exists() and any(self.dir.iterdir()):
            raise FileExistsError(f"{self.dir} exists and is not empty")
        shutil.copytree(template, self.dir, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(".hearth", "__pycache__", "*.pyc"))
        self.write_settings(settings or {})

    def write_settings(self, overrides: dict[str, dict[str, Any]]) -> None:
        sections: dict[str, dict[str, Any]] = {
            "portal": {"telnet_port": 0, "negotiation_timeout": 0.3},
            "server": {"logins": LOOPBACK_LOGINS},
            "supervisor": {"start_timeout": 30.0, "hang_timeout": 3.0},
        }
        for section, values in overrides.items():
            sections.setdefault(section, {}).update(values)
        lines: list[str] = []
        for section, values in sections.items():
            _toml_table(lines, section, values)
        (self.dir / "settings.toml").write_text("\n".join(lines) + "\n")

    def cli(self, *args: str, timeout: float = 90.0, check: bool = False,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        if args[:1] != ("status",):
            self._port = None
        return run([sys.executable, "run.py", "--game-dir", str(self.dir), *args],
                   timeout=timeout, check=check, input=input)

    def make_admin(self, name: str, password: str = "secret1") -> None:
        """`run.py admin NAME`: the account (created with `password` if new) is an admin."""
        result = self.cli("admin", name, input=password + "\n", timeout=60)
        assert result.returncode == 0, f"admin {name} failed:\n{result.stdout}{result.stderr}"

    def start(self) -> None:
        result = self.cli("start")
        assert result.returncode == 0, f"start failed:\n{result.stdout}\n{result.stderr}"
        self.remember_pids()

    def status(self) -> dict[str, Any]:
        result = self.cli("status", "--json", timeout=30)
        data: dict[str, Any] = json.loads(result.stdout)
        return data

    def remember_pids(self) -> None:
        status = self.status()
        for role in ("supervisor", "portal", "server"):
            pid = status.get(role, {}).get("pid")
            if pid:
                self.pids.add(int(pid))

    @property
    def port(self) -> int:
        """The telnet port (asked once: the supervisor holds it across restarts of the
        portal; any command but `status` may change it and forgets it here)."""
        if self._port is None:
            self._port = int(self.status()["ports"]["telnet"])
        return self._port

    def pid_of(self, role: str) -> int:
        return int(self.status()[role]["pid"])

    def cleanup(self) -> list[str]:
        """Stop the game; kill by pid whatever it started and is still running."""
        began = time.monotonic()
        try:
            stop = self.cli("stop", timeout=60)
            said = f"stop exited {stop.returncode}: {(stop.stdout + stop.stderr).strip()}"
        except subprocess.TimeoutExpired:
            said = "stop did not answer within 60 s"
        # `stop` returns once the supervisor said so; give its tree a moment to be gone
        _, alive = psutil.wait_procs(list(self._tree()), timeout=10)
        leftovers = []
        for proc in alive:
            with contextlib.suppress(psutil.Error):
                leftovers.append(f"{proc.pid} {' '.join(proc.cmdline())}")
                proc.kill()
        if leftovers:  # say why: what stop printed, how long it took, the supervisor's log
            log = self.dir / ".hearth" / "logs" / "supervisor.log"
            tail = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else []
            leftovers += [f"({said}; after {time.monotonic() - began:.1f} s)", *tail]
        return leftovers

    def _tree(self) -> Iterable[psutil.Process]:
        seen: dict[int, psutil.Process] = {}
        for pid in self.pids:
            try:
                proc = psutil.Process(pid)
                if proc.status() == psutil.STATUS_ZOMBIE:
                    continue
                seen[pid] = proc
                for child in proc.children(recursive=True):
                    seen[child.pid] = child
            except psutil.Error:
                continue
        # children of ours whose parent already died are re-parented: find them by env
        for proc in psutil.process_iter(["pid", "environ"]):
            try:
                env = proc.info.get("environ") or {}
                if str(self.dir) in env.get("HEARTH_CHILD", ""):
                    seen[proc.pid] = proc
            except psutil.Error:
                continue
        return [p for p in seen.values() if p.is_running() and p.status() != "zombie"]


def _toml_table(lines: list[str], name: str, values: dict[str, Any]) -> None:
    """Append `[name]` with its keys; nested dicts become `[name.key]` tables."""
    lines.append(f"[{name}]")
    tables = {key: value for key, value in values.items() if isinstance(value, dict)}
    lines.extend(f"{key} = {json.dumps(value)}" for key, value in values.items()
                 if key not in tables)
    for key, table in tables.items():
        _toml_table(lines, f"{name}.{key}", table)


def run(cmd: list[str], timeout: float, check: bool = False,
        input: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          check=check, env=env, input=input)


def kill9(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


# ---------------------------------------------------------------- load clients (benchmarks)


def raise_fd_limit(want: int = 1 << 20) -> int:
    """Raise this process's soft fd limit towards `want` (capped by the hard limit)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(want, hard) if hard != resource.RLIM_INFINITY else want
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


class PongCounter:
    """What every closed-loop client counts, whatever it speaks (telnet, SSH, websocket):
    pings sent as `ping <tag>-<n>`, answers counted per number (`counts[n]`, saturating at
    255) so lost (0) and duplicated (>1) inputs show after the fact, and round-trip times.
    The client calls `_got_pong(n, now)` for each `pong <tag>-<n>`; `closed_loop()` drives it.
    """

    def __init__(self) -> None:
        self.sent = 0  # numbers 0..sent-1 were sent
        self.answered = 0  # answers received (duplicates included)
        self.counts = bytearray()
        self.wrong = 0  # closed loop: answers whose number is not the ping in flight
        self.closed_loop = False
        self.running = False
        self.rtts: list[float] = []
        self._sent_at = 0.0

    def send_ping(self) -> None:
        raise NotImplementedError

    def _count(self, n: int) -> None:
        counts = self.counts
        if n >= len(counts):
            counts.extend(bytes(n + 1024 - len(counts)))
        if counts[n] < 255:
            counts[n] += 1
        self.answered += 1

    def _round_trip(self, n: int, now: float) -> None:
        """Closed loop: the answer to the ping in flight ends a round trip; send the next."""
        if n != self.sent - 1:  # not the answer to the ping in flight: no round trip
            self.wrong += 1
            return
        self.rtts.append(now - self._sent_at)
        if self.running:
            self.send_ping()

    def _got_pong(self, n: int, now: float) -> None:
        self._count(n)
        if self.closed_loop:
            self._round_trip(n, now)

    def outstanding(self) -> int:
        return self.sent - self.answered

    def lost_and_duplicated(self, first: int, last: int) -> tuple[int, int]:
        """Among inputs `first..last-1`: how many got no answer, how many got more than one."""
        lost = dup = 0
        counts = self.counts
        for n in range(first, last):
            c = counts[n] if n < len(counts) else 0
            if c == 0:
                lost += 1
            elif c > 1:
                dup += 1
        return lost, dup


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    out = {}
    for role, pid in pids.items():
        try:
            times = psutil.Process(pid).cpu_times()
            out[role] = times.user + times.system
        except psutil.Error:
            out[role] = 0.0
    return out


async def closed_loop(clients: Sequence[PongCounter], duration: float, warmup: float,
                      pids: dict[str, int]) -> dict[str, Any]:
    """Run every client closed-loop; figures over `duration` after `warmup`."""
    for client in clients:
        client.closed_loop, client.running = True, True
        client.send_ping()
    await asyncio.sleep(warmup)
    for client in clients:
        client.rtts = []
    cpu0 = cpu_seconds(pids)
    start = time.monotonic()
    await asyncio.sleep(duration)
    elapsed = time.monotonic() - start
    cpu1 = cpu_seconds(pids)
    rtts = [rtt for client in clients for rtt in client.rtts]
    for client in clients:
        client.running = False
    deadline = time.monotonic() + 10
    while any(c.outstanding() for c in clients) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    count = len(rtts)
    lost_dup = [c.lost_and_duplicated(0, c.sent) for c in clients]
    return {
        "unanswered": sum(c.outstanding() for c in clients),
        "lost": sum(lost for lost, _ in lost_dup),
        "duplicated": sum(dup for _, dup in lost_dup),
        "wrong_number": sum(c.wrong for c in clients),
        "round_trips": count,
        "per_s": count / elapsed,
        "p50_us": percentile(rtts, 50) * 1e6,
        "p95_us": percentile(rtts, 95) * 1e6,
        "p99_us": percentile(rtts, 99) * 1e6,
        "cpu_us_per_rt": {role: (cpu1[role] - cpu0[role]) / max(count, 1) * 1e6
                          for role in pids},
    }


class PingClient(PongCounter, asyncio.Protocol):
    """A lean telnet client for load: sends `ping <tag>-<n>` and counts `pong <tag>-<n>`.

    No task per client and no per-line allocation beyond the line itself: everything is done
    in `data_received`. Answers are counted per number (`counts[n]`, saturating at 255), so a
    benchmark can tell lost (0) from duplicated (>1) inputs after the fact. In closed-loop
    mode the next ping goes out as soon as the previous answer arrives.
    """

    gap_threshold = 0.015  # gaps between answers longer than this are recorded in `gaps`

    def __init__(self, tag: str, closed_loop: bool = False) -> None:
        PongCounter.__init__(self)
        self.tag = tag
        self._prefix = f"pong {tag}-".encode()
        self._ping = f"ping {tag}-".encode()
        self.transport: asyncio.Transport | None = None
        self.out_of_order = 0
        self.next_expected = 0
        self.last_answer = 0.0
        self.gaps: list[tuple[float, float]] = []
        # (sent, answered) of every input answered more than `gap_threshold` after it was
        # sent: how long a player waited for that command's answer
        self.waits: list[tuple[float, float]] = []
        self._sent_times = array("d")  # open loop: when each number was sent
        self.other: list[tuple[float, str]] = []  # (time, line) of lines that are not pongs
        self.cursor = 0  # `expect` looks at `other[cursor:]`
        self.closed_at: float | None = None
        self.closed_loop = closed_loop
        self._partial = b""
        self._telnet: dict[str, Any] = {}
        self._watch: list[tuple[bytes, asyncio.Future[str]]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.first_data: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed_at = time.monotonic()
        for _, fut in self._watch:
            if not fut.done():
                fut.set_exception(ConnectionError(f"{self.tag}: connection closed"))
        self._watch.clear()

    def data_received(self, data: bytes) -> None:
        if not self.first_data.done():
            self.first_data.set_result(None)
        if IAC in data or self._telnet.get("mode", "data") != "data":
            data = strip_telnet(data, self._telnet)
            replies = self._telnet.pop("replies", None)
            if replies and self.transport is not None:
                self.transport.write(bytes(replies))
        if self._partial:
            data = self._partial + data
        *complete, self._partial = data.split(b"\n")
        now = time.monotonic()
        prefix = self._prefix
        for raw in complete:
            if 27 in raw:
                raw = ANSI.sub(b"", raw)
            line = raw.rstrip(b"\r")
            if line.startswith(prefix):
                self._pong(int(line[len(prefix):]), now)
            else:
                self._other(line.decode("utf-8", "replace"), now)

    def _pong(self, n: int, now: float) -> None:
        self._count(n)
        if n != self.next_expected:
            self.out_of_order += 1
        self.next_expected = max(self.next_expected, n + 1)
        if self.last_answer and now - self.last_answer > self.gap_threshold:
            self.gaps.append((self.last_answer, now))
        if n < len(self._sent_times) and now - self._sent_times[n] > self.gap_threshold:
            self.waits.append((self._sent_times[n], now))
        self.last_answer = now
        if self.closed_loop:
            self._round_trip(n, now)

    def _other(self, line: str, now: float) -> None:
        if line:
            self.other.append((now, line))
        if self._watch:
            keep = []
            for needle, fut in self._watch:
                if needle.decode() in line and not fut.done():
                    self.cursor = len(self.other)
                    fut.set_result(line)
                elif not fut.done():
                    keep.append((needle, fut))
            self._watch = keep

    # ------------------------------------------------------------ sending

    def send_ping(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self._sent_at = time.monotonic()
        if not self.closed_loop:
            self._sent_times.append(self._sent_at)
        self.transport.write(b"%s%d\r\n" % (self._ping, self.sent))
        self.sent += 1

    def send(self, line: str) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(line.encode() + b"\r\n")

    async def expect(self, needle: str, timeout: float = 30.0) -> str:
        """The next (non-pong) line after the cursor containing `needle`; moves the cursor."""
        for index in range(self.cursor, len(self.other)):
            if needle in self.other[index][1]:
                self.cursor = index + 1
                return self.other[index][1]
        self.cursor = len(self.other)
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._watch.append((needle.encode(), fut))
        return await asyncio.wait_for(fut, timeout)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def flood(port: int, chunk: bytes, seconds: float, greeting: bytes = b"") -> int:
    """One hostile connection: send `greeting`, then write `chunk` over and over for
    `seconds` (bounded waits), reading and discarding whatever comes back; the bytes the
    portal took (written minus what was still buffered here at the end)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(greeting)

    async def discard() -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while await reader.read(65536):
                pass

    reading = asyncio.create_task(discard())
    sent, end = 0, time.monotonic() + seconds
    try:
        while (left := end - time.monotonic()) > 0:
            writer.write(chunk)
            sent += len(chunk)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(writer.drain(), left)
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
        reading.cancel()
    return sent - writer.transport.get_write_buffer_size()


async def open_clients(port: int, count: int, *, prefix: str = "c", closed_loop: bool = False,
                       concurrency: int = 64, timeout: float = 120.0, greeted: bool = True,
                       host: str = "127.0.0.1") -> list[PingClient]:
    """Open `count` PingClients to `port`, at most `concurrency` connects in flight.

    With `greeted`, a connect counts as done only once the server sent its first bytes
    (the portal's telnet negotiation): the kernel completes a handshake before the server
    accepts it, so only this bounds the server's accept queue. Without it a fast client
    overflows a small listen backlog, and the kernel silently drops the connections.
    """
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(concurrency)

    async def one(index: int) -> PingClient:
        async with gate:
            client = PingClient(f"{prefix}{index}", closed_loop=closed_loop)
            await loop.create_connection(lambda: client, host, port)
            if greeted:
                await client.first_data
            return client

    return list(await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(count))),
                                       timeout))


async def login_clients(clients: list[PingClient], *, concurrency: int = 32,
                        timeout: float = 120.0, create: bool = True,
                        password: str = "secret1") -> float:
    """Create (or connect) an account per client, `concurrency` at a time; seconds taken."""
    gate = asyncio.Semaphore(concurrency)
    verb = "create" if create else "connect"

    async def one(client: PingClient) -> None:
        async with gate:
            entered = asyncio.ensure_future(client.expect("Hearth Hall", timeout))
            client.send(f"{verb} {client.tag} {password}")
            await entered

    start = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*(one(c) for c in clients)), timeout)
    return time.monotonic() - start


def percentile(values: list[float], pct: float) -> float:
    """The `pct` percentile (0-100) by nearest rank; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def acli(runner: GameRunner, *args: str, timeout: float = 90.0) -> tuple[int, str, float]:
    """Run `run.py` for `runner` without blocking the loop: (exit code, output, seconds)."""
    start = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "run.py", "--game-dir", str(runner.dir), *args, cwd=REPO,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return -1, f"timed out after {timeout}s", time.monotonic() - start
    return proc.returncode or 0, out.decode("utf-8", "replace"), time.monotonic() - start


def rss_of(pid: int) -> int:
    """Resident memory of `pid` in bytes (0 if it is gone)."""
    try:
        return int(psutil.Process(pid).memory_info().rss)
    except psutil.Error:
        return 0
