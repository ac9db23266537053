"""Issue 4: the telnet option suite against real clients that no one here wrote.

Clients: telnetlib3's library client and its terminal client (`telnetlib3-client`, in a
pty), both from the test extra; TinTin++ (`tt++`) and inetutils `telnet` from the
distribution, in a pty, skipped where they are not installed (CI installs only the pip
extra); a raw socket for MCCP2 and input limits; Python's `ssl` and `openssl s_client`
for telnet/ssl.

Each terminal client connects through `Recorder`, a loopback proxy that keeps every byte
the client sent, so a test compares the flags the portal recorded (`@flags`, a game
command) with the TTYPE names and NAWS sizes the client really sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import pty
import re
import ssl
import stat
import struct
import subprocess
import sys
import termios
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import telnetlib3
from telnetlib3.telopt import GMCP

from benchmarks.client import GameRunner
from ipc.settings import runtime_paths
from tests.clients import require

# Real clients answer within milliseconds; the timeout only bounds a client that never does.
SETTINGS = {"portal": {"telnet_ssl_port": 0, "max_line": 100, "negotiation_timeout": 3.0}}
IAC, DO, WILL, SB, SE = 255, 253, 251, 250, 240
MCCP2 = 86
TIMEOUT = 15.0
TERMINAL = re.compile(rb"\x1b(\[[0-9;?>]*[A-Za-z]|\][^\x07]*\x07|[()][0-9A-Za-z]|[=>78DME])")
FLAG_LINE = re.compile(r"^flag (\S+) = (.*)$", re.M)
MTTS_BITS = {1: "ANSI", 2: "VT100", 4: "UTF-8", 8: "XTERM256", 64: "SCREENREADER",
             256: "TRUECOLOR"}
VENV_BIN = Path(sys.executable).parent


def started(game_factory: type[GameRunner], **portal: Any) -> GameRunner:
    game = game_factory({"portal": {**SETTINGS["portal"], **portal}})
    game.start()
    return game


# ---------------------------------------------------------------- helpers


class Recorder:
    """A loopback proxy in front of the portal that keeps what the client sent."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.sent = bytearray()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        with contextlib.suppress(asyncio.CancelledError):  # asyncio.run() ending the test
            await asyncio.gather(self._pipe(reader, up_writer, self.sent),
                                 self._pipe(up_reader, writer, None), return_exceptions=True)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                    record: bytearray | None) -> None:
        try:
            while data := await src.read(65536):
                if record is not None:
                    record += data
                dst.write(data)
                await dst.drain()
        finally:
            dst.close()

    def ttype_names(self) -> list[str]:
        found = re.findall(rb"\xff\xfa\x18\x00(.*?)\xff\xf0", bytes(self.sent), re.S)
        return [name.decode("ascii", "replace") for name in found]

    def naws(self) -> tuple[int, int]:
        """The last window size the client reported (width, height)."""
        found = re.findall(rb"\xff\xfa\x1f(.{4})\xff\xf0", bytes(self.sent), re.S)
        assert found, f"the client sent no NAWS: {bytes(self.sent)[:200]!r}"
        width, height = struct.unpack(">HH", found[-1])
        return width, height

    def close(self) -> None:
        if self._server is not None:
            self._server.close()


def expected_from(names: list[str]) -> dict[str, Any]:
    """What the portal must make of the TTYPE names a client sent (MTTS rules)."""
    distinct: list[str] = []
    for name in names:
        if distinct and name.upper() == distinct[-1].upper():
            break
        distinct.append(name)
    assert distinct, "the client sent no TTYPE name"
    expected: dict[str, Any] = {"TTYPE": True, "CLIENTNAME": distinct[0].upper()}
    if len(distinct) >= 2:
        expected["TERM"] = distinct[1]
    if len(distinct) >= 3 and distinct[2].startswith("MTTS "):
        bits = int(distinct[2].split()[1])
        expected.update({name: bool(bits & bit) for bit, name in MTTS_BITS.items()})
    return expected


def parse_flags(text: str) -> dict[str, Any]:
    return {key: json.loads(value) for key, value in FLAG_LINE.findall(text)}


def check_flags(flags: dict[str, Any], recorder: Recorder) -> None:
    for key, value in expected_from(recorder.ttype_names()).items():
        assert flags[key] == value, (key, flags[key], value, recorder.ttype_names())
    width, height = recorder.naws()
    assert flags["SCREENWIDTH"] == {"0": width}
    assert flags["SCREENHEIGHT"] == {"0": height}
    assert flags["AUTORESIZE"] is True


class PtyClient:
    """A terminal program in a pseudo-terminal, read from the event loop."""

    def __init__(self, argv: list[str], cols: int, rows: int) -> None:
        self.master, slave = pty.openpty()
        self._winsize(slave, cols, rows)
        self.proc = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
            env={**os.environ, "TERM": "xterm-256color", "LANG": "C.UTF-8"},
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
        )
        os.close(slave)
        self.output = bytearray()
        self.cursor = 0
        self.closed = False
        self._changed = asyncio.Event()
        asyncio.get_running_loop().add_reader(self.master, self._readable)

    @staticmethod
    def _winsize(fd: int, cols: int, rows: int) -> None:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def resize(self, cols: int, rows: int) -> None:
        """Like resizing the terminal window: the kernel sends the client SIGWINCH."""
        self._winsize(self.master, cols, rows)

    def _readable(self) -> None:
        try:
            data = os.read(self.master, 65536)
        except OSError:
            data = b""
        if not data:
            self.closed = True
            asyncio.get_running_loop().remove_reader(self.master)
        self.output += data
        self._changed.set()

    def text(self) -> str:
        return TERMINAL.sub(b"", bytes(self.output)).decode("utf-8", "replace")

    def send(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\r")

    async def expect(self, pattern: str, timeout: float = TIMEOUT) -> re.Match[str]:
        """The next match of `pattern` after the cursor; moves the cursor past it."""
        return await wait_for_text(self, pattern, timeout)

    async def flags(self, *names: str) -> dict[str, Any]:
        self.send(" ".join(["@flags", *names]))
        await self.expect(r"protocol: telnet")
        start = self.cursor
        await self.expect(r"\(\d+ flags\)")
        return parse_flags(self.text()[start:self.cursor])

    def close(self) -> None:
        with contextlib.suppress(ValueError, OSError):
            asyncio.get_running_loop().remove_reader(self.master)
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 9)
        self.proc.wait(timeout=10)
        os.close(self.master)


async def wait_for_text(client: Any, pattern: str, timeout: float) -> re.Match[str]:
    """Wait (with a timeout) until `client.text()` matches `pattern` after `client.cursor`."""
    regex = re.compile(pattern, re.M)
    deadline = time.monotonic() + timeout
    while True:
        match = regex.search(client.text(), client.cursor)
        if match:
            client.cursor = match.end()
            return match
        left = deadline - time.monotonic()
        if left <= 0 or client.closed:
            raise AssertionError(f"no {pattern!r} within {timeout}s (closed: {client.closed}); "
                                 f"last output: {client.text()[-600:]!r}")
        client._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(client._changed.wait(), left)


class Telnetlib3Client:
    """telnetlib3's library client, with its text and GMCP messages collected."""

    def __init__(self) -> None:
        self.buffer = ""
        self.cursor = 0
        self.closed = False
        self.gmcp: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.writer: Any = None

    async def connect(self, port: int, **kwargs: Any) -> None:
        reader, self.writer = await asyncio.wait_for(telnetlib3.open_connection(
            "127.0.0.1", port, connect_minwait=0.2, connect_maxwait=2.0, **kwargs), TIMEOUT)
        self.writer.set_ext_callback(GMCP, lambda pkg, data: self.gmcp.put_nowait((pkg, data)))
        self._task = asyncio.create_task(self._read(reader))

    async def _read(self, reader: Any) -> None:
        while chunk := await reader.read(65536):
            self.buffer += chunk
            self._changed.set()
        self.closed = True
        self._changed.set()

    def text(self) -> str:
        return TERMINAL.sub(b"", self.buffer.encode()).decode()

    def send(self, line: str) -> None:
        self.writer.write(line + "\r\n")

    async def expect(self, pattern: str, timeout: float = TIMEOUT) -> re.Match[str]:
        return await wait_for_text(self, pattern, timeout)

    async def flags(self) -> dict[str, Any]:
        self.send("@flags")
        await self.expect(r"protocol: telnet")
        start = self.cursor
        await self.expect(r"\(\d+ flags\)")
        return parse_flags(self.text()[start:self.cursor])

    async def gmcp_reply(self, package: str | None = None) -> tuple[str, Any]:
        """The next GMCP message (of `package`: others, such as the Char.Name and Room.Info
        a login sends to telnetlib3's default Core.Supports.Set, are skipped)."""
        async def next_one() -> tuple[str, Any]:
            while True:
                message = await self.gmcp.get()
                if package is None or message[0] == package:
                    return message
        return await asyncio.wait_for(next_one(), TIMEOUT)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self._task is not None:
            self._task.cancel()



async def run_terminal_client(game: GameRunner, argv: Callable[[int], list[str]],
                              check: Callable[[dict[str, Any]], None]) -> None:
    """Start a terminal client in a 120x40 pty, check its flags, resize it to 150x50."""
    recorder = Recorder(game.port)
    port = await recorder.start()
    client = PtyClient(argv(port), cols=120, rows=40)
    try:
        await client.expect(r"connect <username> <password>")
        flags = await client.flags()
        check_flags(flags, recorder)
        check(flags)
        client.resize(150, 50)
        deadline = time.monotonic() + TIMEOUT
        while (flags := await client.flags("SCREENWIDTH", "SCREENHEIGHT"))["SCREENWIDTH"] \
                != {"0": 150}:
            assert time.monotonic() < deadline, f"NAWS never reported the resize: {flags}"
        assert recorder.naws()[0] == 150
        assert flags["SCREENHEIGHT"] == {"0": recorder.naws()[1]}
        client.send("ping from a terminal")
        await client.expect(r"pong from a terminal")
    finally:
        client.close()
        recorder.close()


# ---------------------------------------------------------------- telnetlib3


def test_telnetlib3_client_flags_mccp_and_gmcp(game_factory: type[GameRunner]) -> None:
    game = started(game_factory)

    async def scenario() -> None:
        recorder = Recorder(game.port)
        port = await recorder.start()
        client = Telnetlib3Client()
        await client.connect(port, term="xterm-256color", cols=132, rows=43)
        try:
            await client.expect(r"connect <username> <password>")
            flags = await client.flags()
            check_flags(flags, recorder)
            assert recorder.naws() == (132, 43)
            assert flags["CLIENTNAME"] == "XTERM-256COLOR" and flags["XTERM256"] is True
            # telnetlib3 accepts MCCP2 when offered: all this text arrived compressed.
            assert flags["MCCP"] is True
            assert flags["GMCP"] is True and flags["OOB"] is True
            assert flags["CHARSET"] == "UTF-8" and flags["EOR"] is True
            # GMCP round trip through the game's inputfuncs (game/oob.py).
            data = {"hp": 5, "name": "Ünïcode", "tags": ["a", "b"]}
            client.writer.send_gmcp("Char.Echo", data)
            assert await client.gmcp_reply() == ("Char.Echo", data)
            client.writer.send_gmcp("Core.Ping")
            assert await client.gmcp_reply() == ("Core.Ping", None)
            client.send("ping after gmcp")
            await client.expect(r"pong after gmcp")
        finally:
            client.close()
            recorder.close()

    asyncio.run(scenario())


def test_telnetlib3_terminal_client_in_a_pty(game_factory: type[GameRunner]) -> None:
    game = started(game_factory)

    def check(flags: dict[str, Any]) -> None:
        assert flags["CLIENTNAME"] == "XTERM-256COLOR"  # the pty's $TERM
        assert flags["MCCP"] is True

    asyncio.run(run_terminal_client(
        game, lambda port: [str(VENV_BIN / "telnetlib3-client"), "127.0.0.1", str(port)],
        check))


# ---------------------------------------------------------------- distribution clients


def test_tintin_in_a_pty(game_factory: type[GameRunner]) -> None:
    tintin = require("tt++")
    game = started(game_factory)

    def check(flags: dict[str, Any]) -> None:
        assert flags["CLIENTNAME"] == "TINTIN++"
        assert flags["TERM"] == "xterm-256color"
        assert flags["MCCP"] is True  # TinTin++ decompresses what it shows us
        assert flags["CHARSET"] == "UTF-8" and flags["EOR"] is True

    asyncio.run(run_terminal_client(
        game, lambda port: [tintin, "-G", "-e", f"#session hearth 127.0.0.1 {port}"], check))

    async def both_passwords_hidden() -> None:
        """Issue 21, item 2: TinTin++ showed `create NAME`'s second password (the portal
        sent WONT ECHO then WILL ECHO between the two prompts)."""
        client = PtyClient([tintin, "-G", "-e", f"#session hearth 127.0.0.1 {game.port}"],
                           cols=120, rows=40)
        try:
            await client.expect(r"connect <username> <password>")
            client.send("create judy")
            await client.expect(r"Choose a password:")
            client.send("judyFIRSTpw")
            await client.expect(r"Type it again:")
            client.send("judyFIRSTpw")
            await client.expect(r"Hearth Hall")
            client.send("ping shown")  # typing shows again after the passwords
            await client.expect(r"pong shown")
            assert "judyFIRSTpw" not in client.text(), client.text()[-400:]
        finally:
            client.close()

    asyncio.run(both_passwords_hidden())


def test_distribution_telnet_in_a_pty(game_factory: type[GameRunner]) -> None:
    telnet = require("telnet")
    game = started(game_factory)

    def check(flags: dict[str, Any]) -> None:
        assert flags["CLIENTNAME"] == "XTERM-256COLOR"
        assert flags["MCCP"] is False  # a plain telnet refuses what it does not know

    asyncio.run(run_terminal_client(
        game, lambda port: [telnet, "127.0.0.1", str(port)], check))


# ---------------------------------------------------------------- raw sockets


class RawClient:
    """A socket that agrees to MCCP2 and nothing else, and inflates what follows."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.raw = b""
        self.plain = b""
        self.inflate: Any = None

    async def read_until(self, needle: bytes, compressed: bool = False) -> None:
        while needle not in (self.plain if compressed else self.raw):
            data = await asyncio.wait_for(self.reader.read(65536), TIMEOUT)
            assert data, f"closed before {needle!r}; plain so far: {self.plain[-300:]!r}"
            self.feed(data)

    def feed(self, data: bytes) -> None:
        if self.inflate is None:
            self.raw += data
            start = bytes((IAC, SB, MCCP2, IAC, SE))
            if start in self.raw:
                self.raw, _, rest = self.raw.partition(start)
                self.inflate = zlib.decompressobj()
                self.plain += self.inflate.decompress(rest)
        else:
            self.plain += self.inflate.decompress(data)


def test_mccp2_compresses_everything_and_ends_cleanly(game_factory: type[GameRunner]) -> None:
    game = started(game_factory, negotiation_timeout=0.5)

    async def scenario() -> None:
        client = RawClient(*await asyncio.open_connection("127.0.0.1", game.port))
        await client.read_until(bytes((IAC, WILL, MCCP2)))
        client.writer.write(bytes((IAC, DO, MCCP2)))
        await client.read_until(b"connect <username>", compressed=True)
        assert client.inflate is not None
        assert b"connect <username>" not in client.raw  # nothing leaked uncompressed
        client.writer.write(b"ping squeezed\r\n")
        await client.read_until(b"pong squeezed", compressed=True)
        client.writer.write(b"quit\r\n")
        while data := await asyncio.wait_for(client.reader.read(65536), TIMEOUT):
            client.feed(data)
        assert b"Goodbye" in client.plain
        assert client.inflate.eof, "the zlib stream was not finished before the close"
        client.writer.close()

    asyncio.run(scenario())


def test_input_limits_and_encoding(game_factory: type[GameRunner]) -> None:
    game = started(game_factory, negotiation_timeout=0.5)

    async def scenario() -> None:
        client = RawClient(*await asyncio.open_connection("127.0.0.1", game.port))
        await client.read_until(b"connect <username>")
        client.writer.write(b"ping " + b"x" * 200 + b"\r\n")
        await client.read_until(b"Line too long (205 bytes, limit 100); dropped.")
        client.writer.write(b"ping caf\xc3\x28\r\n")
        await client.read_until(b"Input was not valid utf-8; line dropped.")
        client.writer.write(b"ping still here\r\n")
        await client.read_until(b"pong still here\r\n")
        client.writer.write("ping café\r\n".encode())
        await client.read_until("pong café\r\n".encode())
        # The player switches to latin-1: input and output follow the game's flag.
        client.writer.write(b"encoding latin-1\r\n")
        await client.read_until(b"Your encoding is now iso8859-1.")
        client.writer.write(b"ping caf\xe9\r\n")
        await client.read_until(b"pong caf\xe9\r\n")
        client.writer.write(b"encoding klingon\r\n")
        await client.read_until(b"Unknown encoding 'klingon'.")
        client.writer.close()

    asyncio.run(scenario())


# ---------------------------------------------------------------- telnet/ssl


def client_context(game: GameRunner) -> ssl.SSLContext:
    cert = runtime_paths(game.dir).keys / "telnet-ssl.crt"
    return ssl.create_default_context(cafile=str(cert))


def ssl_port(game: GameRunner) -> int:
    return int(game.status()["ports"]["telnet/ssl"])


async def tls_session(port: int, context: ssl.SSLContext) -> tuple[str, bytes]:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname="localhost"), TIMEOUT)
    version = str(writer.get_extra_info("ssl_object").version())
    writer.write(b"@flags TTYPE\r\nping over tls\r\n")
    data = b""
    while b"pong over tls" not in data:
        chunk = await asyncio.wait_for(reader.read(65536), TIMEOUT)
        assert chunk, f"closed early: {data[-300:]!r}"
        data += chunk
    writer.close()
    return version, data


def test_telnet_ssl_with_python_ssl_and_certificate_reuse(
        game_factory: type[GameRunner]) -> None:
    game = started(game_factory)
    keys = runtime_paths(game.dir).keys
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    assert stat.S_IMODE((keys / "telnet-ssl.key").stat().st_mode) == 0o600
    first_cert = (keys / "telnet-ssl.crt").read_bytes()
    ports = game.status()["ports"]
    assert ports["telnet/ssl"] not in (0, ports["telnet"])

    version, data = asyncio.run(tls_session(ssl_port(game), client_context(game)))
    assert version in ("TLSv1.2", "TLSv1.3")
    assert b"protocol: telnet/ssl" in data and b"connect <username>" in data

    stop = game.cli("stop")
    assert stop.returncode == 0, stop.stderr
    game.start()
    assert (keys / "telnet-ssl.crt").read_bytes() == first_cert  # reused, not remade
    version, data = asyncio.run(tls_session(ssl_port(game), client_context(game)))
    assert b"pong over tls" in data

    async def telnetlib3_over_tls() -> None:
        client = Telnetlib3Client()
        await client.connect(ssl_port(game), ssl=client_context(game),
                             server_hostname="localhost", term="xterm")
        try:
            client.writer.send_gmcp("Core.Ping")
            assert await client.gmcp_reply() == ("Core.Ping", None)
            flags = await client.flags()
            assert flags["CLIENTNAME"] == "XTERM"
            assert flags["MCCP"] is False  # telnetlib3 refuses MCCP over TLS (by design)
        finally:
            client.close()

    asyncio.run(telnetlib3_over_tls())


def test_telnet_ssl_with_openssl_s_client(game_factory: type[GameRunner]) -> None:
    openssl = require("openssl")
    game = started(game_factory, negotiation_timeout=0.5)
    cert = runtime_paths(game.dir).keys / "telnet-ssl.crt"

    async def scenario() -> None:
        proc = await asyncio.create_subprocess_exec(
            openssl, "s_client", "-connect", f"127.0.0.1:{ssl_port(game)}", "-quiet",
            "-verify_return_error", "-CAfile", str(cert), "-verify_hostname", "localhost",
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdin is not None and proc.stdout is not None
        try:
            output = b""
            proc.stdin.write(b"@flags\r\nping from openssl\r\n")
            while b"pong from openssl" not in output:
                chunk = await asyncio.wait_for(proc.stdout.read(65536), TIMEOUT)
                assert chunk, f"s_client closed: {output[-300:]!r}"
                output += chunk
            assert b"protocol: telnet/ssl" in output
            assert b"connect <username>" in output
            # s_client answers no telnet options: the portal settled on its timeout.
            assert b'flag TTYPE = false' in output and b'flag MCCP = false' in output
        finally:
            proc.kill()
            await proc.wait()

    asyncio.run(scenario())
