"""Issue 13, part 2: `run.py reload-portal` moves live telnet connections to a new portal.

Real supervisor, portal and server processes; real clients: a raw socket (MCCP2 bytes
checked exactly), telnetlib3, TinTin++ and inetutils `telnet` in a pty, Python's ssl for
telnet/ssl. Input is typed while the hand-over runs: each line must be answered once, in
order, and the connection must never drop. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import time
import urllib.parse
import zlib
from typing import Any

import pytest

from benchmarks.client import GameRunner, MudClient
from portal.main import TEST_TAKEOVER
from portal.move.handover import RECONNECT
from tests.clients import require
from tests.integration.test_telnet_clients import (
    IAC,
    MCCP2,
    SB,
    SE,
    TIMEOUT,
    PtyClient,
    Recorder,
    Telnetlib3Client,
    client_context,
    ssl_port,
    started,
)

DO = 253
DURING = 15  # lines typed while the hand-over runs
MCCP_START = bytes((IAC, SB, MCCP2, IAC, SE))


def reload_portal(game: GameRunner) -> tuple[int, str]:
    result = game.cli("reload-portal", timeout=120.0)
    return result.returncode, result.stdout + result.stderr


async def reload_while_typing(game: GameRunner, send: Any) -> str:
    """Run `reload-portal` while `send(line)` types DURING pings; its output (rc 0)."""
    reloading = asyncio.create_task(asyncio.to_thread(reload_portal, game))
    for n in range(DURING):
        send(f"ping during{n}")
        await asyncio.sleep(0.05)
    code, output = await reloading
    assert code == 0, output
    assert "took over" in output, output
    return output


def assert_answered_once_in_order(text: str) -> None:
    pongs = [int(n) for n in re.findall(r"pong during(\d+)", text)]
    assert pongs == list(range(DURING)), f"lost, repeated or reordered: {pongs}"


def swapped(game: GameRunner, old_portal: int, server: int) -> None:
    game.remember_pids()
    assert game.pid_of("portal") != old_portal, "the portal was not replaced"
    assert game.pid_of("server") == server, "the server must not be restarted"


# ---------------------------------------------------------------- raw socket, MCCP2


class Mccp2Stream:
    """A raw client that agrees to MCCP2 and follows every stream start and end."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.plain = b""
        self.streams = 0  # zlib streams seen
        self.ended = 0  # of them, finished cleanly
        self._raw = b""
        self._inflate: Any = None

    def feed(self, data: bytes) -> None:
        while data:
            if self._inflate is None:
                self._raw += data
                data = b""
                if MCCP_START in self._raw:
                    before, _, data = self._raw.partition(MCCP_START)
                    self.plain += before
                    self._raw = b""
                    self._inflate = zlib.decompressobj()
                    self.streams += 1
            else:
                self.plain += self._inflate.decompress(data)
                data = b""
                if self._inflate.eof:  # the stream ended: what follows is plain again
                    data, self._inflate = self._inflate.unused_data, None
                    self.ended += 1

    async def read_until(self, needle: bytes) -> None:
        while needle not in self.plain:
            data = await asyncio.wait_for(self.reader.read(65536), TIMEOUT)
            assert data, f"closed before {needle!r}: {self.plain[-300:]!r}"
            self.feed(data)


def test_mccp2_stream_is_ended_and_restarted_across_the_hand_over(
        game_factory: type[GameRunner]) -> None:
    game = started(game_factory, negotiation_timeout=0.5)
    old_portal, server = game.pid_of("portal"), game.pid_of("server")

    async def scenario() -> None:
        client = Mccp2Stream(*await asyncio.open_connection("127.0.0.1", game.port))
        client.writer.write(bytes((IAC, DO, MCCP2)))
        await client.read_until(b"connect <username>")
        client.writer.write(b"create zed secret1\r\n")
        await client.read_until(b"Hearth Hall")
        assert client.streams == 1

        def send(line: str) -> None:
            client.writer.write(line.encode() + b"\r\n")

        reading = asyncio.create_task(client.read_until(b"pong during%d" % (DURING - 1)))
        await reload_while_typing(game, send)
        await reading
        send("ping after")
        await client.read_until(b"pong after")
        assert client.ended >= 1, "the first zlib stream was not finished"
        assert client.streams == client.ended + 1, (client.streams, client.ended)
        assert_answered_once_in_order(client.plain.decode("utf-8", "replace"))
        assert b"restarting" not in client.plain, "a hand-over must be silent"
        client.writer.close()

    asyncio.run(scenario())
    swapped(game, old_portal, server)


# ---------------------------------------------------------------- telnetlib3


def test_telnetlib3_lives_through_reload_portal(game_factory: type[GameRunner]) -> None:
    game = started(game_factory)
    old_portal, server = game.pid_of("portal"), game.pid_of("server")

    async def scenario() -> None:
        recorder = Recorder(game.port)
        port = await recorder.start()
        client = Telnetlib3Client()
        await client.connect(port, term="xterm-256color", cols=132, rows=43)
        try:
            await client.expect(r"connect <username> <password>")
            client.send("create tilly secret1")
            await client.expect(r"Hearth Hall")
            before = await client.flags()
            assert before["MCCP"] is True and before["GMCP"] is True
            await reload_while_typing(game, client.send)
            client.send("ping after")
            await client.expect(r"pong after")
            assert_answered_once_in_order(client.text())
            after = await client.flags()
            for key in ("MCCP", "GMCP", "SCREENWIDTH", "SCREENHEIGHT", "CLIENTNAME",
                        "XTERM256", "ANSI", "CHARSET", "EOR"):
                assert after[key] == before[key], (key, before[key], after[key])
            assert after["SCREENWIDTH"] == {"0": 132}
            data = {"hp": 7, "name": "Ünïcode"}
            client.writer.send_gmcp("Char.Echo", data)
            assert await client.gmcp_reply("Char.Echo") == ("Char.Echo", data)
            start = len(client.buffer)
            client.send("look")
            await client.expect(r"Hearth Hall")
            assert "\x1b[" in client.buffer[start:], "no colour after the hand-over"
            assert not client.closed
        finally:
            client.close()
            recorder.close()

    asyncio.run(scenario())
    swapped(game, old_portal, server)


def test_a_connection_still_negotiating_is_moved_too(game_factory: type[GameRunner]) -> None:
    """A client that answers no telnet option: it is moved before the portal has even
    announced it to the game, with the line it typed meanwhile; the new portal settles
    its negotiation and the game answers that line."""
    game = started(game_factory, negotiation_timeout=4.0)
    old_portal, server = game.pid_of("portal"), game.pid_of("server")

    async def scenario() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", game.port)
        first = await asyncio.wait_for(reader.read(65536), TIMEOUT)
        assert first.startswith(bytes((IAC,))), first  # the offers, which it ignores
        writer.write(b"ping early\r\n")
        code, output = await asyncio.to_thread(reload_portal, game)
        assert code == 0, output
        assert "(1 connections moved;" in output, output
        data = b""
        while b"pong early" not in data:
            chunk = await asyncio.wait_for(reader.read(65536), TIMEOUT)
            assert chunk, f"dropped: {data[-300:]!r}"
            data += chunk
        assert b"connect <username>" in data
        writer.close()

    asyncio.run(scenario())
    swapped(game, old_portal, server)


def test_input_held_back_by_the_rate_limit_moves_too(game_factory: type[GameRunner]) -> None:
    """A player typing faster than `commands_per_second`: what the rate limit holds back
    in the old portal is moved and answered by the new one, once each, in order."""
    game = started(game_factory, commands_per_second=4.0, command_burst=2)
    old_portal, server = game.pid_of("portal"), game.pid_of("server")

    async def scenario() -> None:
        alice = MudClient("alice")
        await alice.connect(game.port)
        await alice.login("alice")
        for n in range(DURING):  # at once: most wait in the old portal's rate limit
            alice.send(f"ping during{n}")
        code, output = await asyncio.to_thread(reload_portal, game)
        assert code == 0, output
        for n in range(DURING):
            await alice.expect(f"pong during{n}$", TIMEOUT)
        assert_answered_once_in_order("\n".join(alice.lines))
        alice.close()

    asyncio.run(scenario())
    swapped(game, old_portal, server)


# ---------------------------------------------------------------- terminal clients


async def terminal_through_reload(game: GameRunner, argv: list[str], mccp: bool) -> None:
    """A terminal client in a 120x40 pty: login, reload-portal while typing, then its
    window size, colours and MCCP2 state must be as before, and resizing still works."""
    client = PtyClient(argv, cols=120, rows=40)
    try:
        await client.expect(r"connect <username> <password>")
        client.send("create termy secret1")
        await client.expect(r"Hearth Hall")
        before = await client.flags("MCCP", "SCREENWIDTH", "XTERM256", "ANSI")
        assert before["MCCP"] is mccp and before["SCREENWIDTH"] == {"0": 120}
        await reload_while_typing(game, client.send)
        client.send("ping after")
        await client.expect(r"pong after")
        assert_answered_once_in_order(client.text())
        after = await client.flags("MCCP", "SCREENWIDTH", "XTERM256", "ANSI")
        assert after == before
        client.resize(150, 50)
        for _ in range(50):  # NAWS reaches the new portal
            if (await client.flags("SCREENWIDTH"))["SCREENWIDTH"] == {"0": 150}:
                break
        else:
            raise AssertionError("NAWS after the hand-over never reported the resize")
        start = len(client.output)
        client.send("look")
        await client.expect(r"Hearth Hall")
        assert b"\x1b[" in client.output[start:], "no colour after the hand-over"
        assert not client.closed and "^M" not in client.text()
    finally:
        client.close()


def test_tintin_with_mccp2_lives_through_reload_portal(
        game_factory: type[GameRunner]) -> None:
    tintin = require("tt++")
    game = started(game_factory)
    old_portal, server = game.pid_of("portal"), game.pid_of("server")
    asyncio.run(terminal_through_reload(
        game, [tintin, "-G", "-e", f"#session hearth 127.0.0.1 {game.port}"], mccp=True))
    swapped(game, old_portal, server)


def test_inetutils_telnet_lives_through_reload_portal(
        game_factory: type[GameRunner]) -> None:
    telnet = require("telnet")
    game = started(game_factory)
    old_portal, server = game.pid_of("portal"), game.pid_of("server")
    asyncio.run(terminal_through_reload(game, [telnet, "127.0.0.1", str(game.port)],
                                        mccp=False))
    swapped(game, old_portal, server)


# ---------------------------------------------------------------- TLS


async def read_until(reader: asyncio.StreamReader, needle: bytes) -> bytes:
    """Read (each read bounded by TIMEOUT) until `needle` came; everything read."""
    data = b""
    while needle not in data:
        chunk = await asyncio.wait_for(reader.read(65536), TIMEOUT)
        assert chunk, data[-300:]
        data += chunk
    return data


def test_a_tls_client_is_told_to_reconnect(game_factory: type[GameRunner]) -> None:
    game = started(game_factory)
    old_portal, server = game.pid_of("portal"), game.pid_of("server")
    port, context = ssl_port(game), client_context(game)

    async def scenario() -> None:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname="localhost"), TIMEOUT)
        writer.write(b"ping over tls\r\n")
        data = await read_until(reader, b"pong over tls")
        code, output = await asyncio.to_thread(reload_portal, game)
        assert code == 0, output
        while chunk := await asyncio.wait_for(reader.read(65536), TIMEOUT):
            data += chunk
        assert RECONNECT.encode() in data, data[-300:]
        writer.close()
        # and the port serves the next TLS connection, through the new portal
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname="localhost"), TIMEOUT)
        writer.write(b"ping again\r\n")
        await read_until(reader, b"pong again")
        writer.close()

    asyncio.run(scenario())
    swapped(game, old_portal, server)


# ---------------------------------------------------------------- a failing new portal


@pytest.mark.parametrize("how", [
    "fail-start", "fail-take", "fail-bind"])
def test_a_failing_new_portal_changes_nothing(game_factory: type[GameRunner],
                                              monkeypatch: pytest.MonkeyPatch,
                                              how: str) -> None:
    monkeypatch.setenv(TEST_TAKEOVER, how)  # the supervisor and its children inherit it
    game = started(game_factory)
    old_portal, server = game.pid_of("portal"), game.pid_of("server")

    async def scenario() -> None:
        alice = MudClient("alice")
        await alice.connect(game.port)
        await alice.login("alice")
        squeezed = Mccp2Stream(*await asyncio.open_connection("127.0.0.1", game.port))
        squeezed.writer.write(bytes((IAC, DO, MCCP2)))
        await squeezed.read_until(b"connect <username>")
        reloading = asyncio.create_task(asyncio.to_thread(reload_portal, game))
        for n in range(DURING):
            alice.send(f"ping during{n}")
            await asyncio.sleep(0.05)
        code, output = await reloading
        assert code != 0, output
        assert f"portal {old_portal} keeps serving" in output, output
        assert "test: this portal" in output, output
        for n in range(DURING):
            await alice.expect(f"pong during{n}$", TIMEOUT)
        alice.send("ping after")
        await alice.expect("pong after", TIMEOUT)
        assert_answered_once_in_order("\n".join(alice.lines))
        bob = MudClient("bob")  # the old portal accepts again
        await bob.connect(game.port)
        await bob.login("bob")
        squeezed.writer.write(b"ping squeezed\r\n")  # its zlib stream is still valid
        await squeezed.read_until(b"pong squeezed")
        assert squeezed.streams == squeezed.ended + 1, (squeezed.streams, squeezed.ended)
        alice.close()
        bob.close()
        squeezed.writer.close()

    asyncio.run(scenario())
    assert game.pid_of("portal") == old_portal
    assert game.pid_of("server") == server


@pytest.mark.parametrize("how", ["fail-take", "fail-bind"])
def test_web_sessions_stay_when_the_new_portal_fails(game_factory: type[GameRunner],
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     how: str) -> None:
    """Before the commit (fail-take) a web page notices nothing; after it (fail-bind) its
    page was sent away, and comes back to the old portal, logged in."""
    from websockets.asyncio.client import connect

    from tests.integration.test_web_protocol import ajax, until

    monkeypatch.setenv(TEST_TAKEOVER, how)
    game = game_factory({"portal": {"web_port": 0}})
    game.start()
    web = int(game.status()["ports"]["web"])
    old_portal = game.pid_of("portal")
    page = {"csessid": "ajaxpage", "cuid": "u1"}
    url = f"ws://127.0.0.1:{web}/ws?page1&c1&testbrowser"

    async def scenario() -> None:
        ws = await connect(url, subprotocols=["v1.evennia.com"],  # type: ignore[list-item]
                           open_timeout=TIMEOUT)
        await until(ws, "create")
        await ws.send('["text", ["create webby secret1"], {}]')
        await until(ws, "Hearth Hall")
        ajax(web, mode="init", **page)
        ajax(web, mode="input", data='["text", ["create andy secret1"], {}]', **page)
        poll = asyncio.create_task(asyncio.to_thread(
            ajax, web, mode="receive", batch="1", **page))
        code, output = await asyncio.to_thread(reload_portal, game)
        assert code != 0 and f"portal {old_portal} keeps serving" in output, output
        if how == "fail-bind":  # sent away at the commit: the page comes back
            await until(ws, "connection_close")
            await ws.wait_closed()
            ws = await connect(url, subprotocols=["v1.evennia.com"],  # type: ignore[list-item]
                               open_timeout=TIMEOUT)
            await until(ws, "logged_in")
        await ws.send('["text", ["say still here"], {}]')
        await until(ws, "still here")
        assert ajax(web, mode="input", data='["text", ["say me too"], {}]', **page) == (200, "")
        seen = json.dumps(await poll)
        async with asyncio.timeout(TIMEOUT):
            while "me too" not in seen:
                seen = json.dumps(await asyncio.to_thread(
                    ajax, web, mode="receive", batch="1", **page))
        status = game.status()
        assert (status["sessions"], status["portal_link"]["logged_in"]) == (2, 2), status
        await ws.close()

    asyncio.run(scenario())
    assert game.pid_of("portal") == old_portal


# ---------------------------------------------------------------- the health limit


def test_a_portal_over_its_health_limit_is_replaced_live(
        game_factory: type[GameRunner]) -> None:
    game = game_factory({"supervisor": {"health": {"interval": 0}}})
    game.start()
    old_portal, server = game.pid_of("portal"), game.pid_of("server")

    async def scenario() -> None:
        alice = MudClient("alice")
        await alice.connect(game.port)
        await alice.login("alice")
        # every portal is over a 1 MB limit: the first one is replaced, then the cooldown
        game.write_settings({"supervisor": {"health": {
            "interval": 0.5, "portal_max_rss_mb": 1, "portal_restart": True,
            "recycle_cooldown": 3600.0}}})
        code, output = await asyncio.to_thread(
            lambda: (lambda r: (r.returncode, r.stdout + r.stderr))(game.cli("reload")))
        assert code == 0, output
        deadline = time.monotonic() + TIMEOUT  # the health watch samples every 0.5 s
        while (await asyncio.to_thread(game.status))["portal"]["pid"] == old_portal:
            assert time.monotonic() < deadline, "the portal over its limit was not replaced"
            alice.send("ping waiting")  # (and paces the loop: one round trip per status)
            await alice.expect("pong waiting", TIMEOUT)
            await asyncio.sleep(0.2)
        alice.send("ping after")
        await alice.expect("pong after", TIMEOUT)
        assert not alice.closed
        alice.close()

    asyncio.run(scenario())
    game.remember_pids()
    assert game.pid_of("server") != server  # (the reload above replaced it, on purpose)
    history = game.status()["portal"]["history"]
    assert any(entry.get("kind") == "health" for entry in history), history


# ---------------------------------------------------------------- web and SSH


def test_web_sessions_move_and_ssh_players_are_told(game_factory: type[GameRunner]) -> None:
    """Issue 21, item 6: web sessions move without their connections. A websocket page is
    told to reconnect (1012) and finds its session, logged in, at the new portal; output
    that waited for a page that had gone away waits there; an ajax page's held poll is
    answered (`Connection: close`) and its next poll reaches the new portal. SSH state
    cannot move: those players get the reconnect line, and the game hears that they
    left, once (issue 21, item 1: they stayed in `who` as ghosts)."""
    import asyncssh
    from websockets.asyncio.client import connect

    from tests.integration.test_web_protocol import ajax, until

    game = game_factory({"portal": {"web_port": 0, "ssh_port": 0}})
    game.start()
    ports = game.status()["ports"]
    web = int(ports["web"])
    old_portal, server = game.pid_of("portal"), game.pid_of("server")
    ssh_options = {"host": "127.0.0.1", "port": int(ports["ssh"]), "known_hosts": None,
                   "agent_path": None, "client_keys": None}
    page = {"csessid": "ajaxpage", "cuid": "u1"}

    async def open_page(name: str) -> Any:
        return await connect(f"ws://127.0.0.1:{web}/ws?{name}&c1&testbrowser",
                             subprotocols=["v1.evennia.com"],  # type: ignore[list-item]
                             open_timeout=TIMEOUT)

    def held_poll() -> tuple[int, str | None, bytes]:
        """One poll on a keep-alive connection, as a browser holds it."""
        conn = http.client.HTTPConnection("127.0.0.1", web, timeout=TIMEOUT)
        try:
            conn.request("POST", "/webclientdata", urllib.parse.urlencode(
                {"mode": "receive", "batch": "1", **page}).encode(),
                {"Content-Type": "application/x-www-form-urlencoded"})
            answer = conn.getresponse()
            return answer.status, answer.getheader("connection"), answer.read()
        finally:
            conn.close()

    async def scenario() -> None:
        ws = await open_page("page1")
        await until(ws, "create")
        await ws.send('["text", ["create webby secret1"], {}]')
        await until(ws, "Hearth Hall")
        away = await open_page("page2")
        await until(away, "create")
        await away.send('["text", ["create wanda secret1"], {}]')
        await until(away, "Hearth Hall")
        await away.close(1001)  # a refresh: wanda's session waits for her page
        assert ajax(web, mode="init", **page)[0] == 200
        ajax(web, mode="input", data='["text", ["create andy secret1"], {}]', **page)
        alice = MudClient("alice")  # plain telnet: moves to the new portal
        await alice.connect(game.port)
        await alice.login("alice")
        alice.send("say while you were away")
        async with asyncssh.connect(username="new", **ssh_options) as conn:
            proc = await conn.create_process(term_type="xterm", term_size=(80, 24))
            await asyncio.wait_for(proc.stdout.readuntil("create <username>"), TIMEOUT)
            proc.stdin.write("create shelly secret1\r\n")
            await asyncio.wait_for(proc.stdout.readuntil("Hearth Hall"), TIMEOUT)
            alice.send("who")
            await alice.expect(r"Players online \(5\): alice, andy, shelly, wanda, webby")
            _, seen = ajax(web, mode="receive", batch="1", **page)  # all of it so far
            poll = asyncio.create_task(asyncio.to_thread(held_poll))
            code, output = await asyncio.to_thread(reload_portal, game)
            assert code == 0, output
            assert "3 web sessions" in output, output
            said = await asyncio.wait_for(proc.stdout.read(), TIMEOUT)
            assert RECONNECT in said, said[-300:]
        # the held poll was answered, and its connection closed: the next one goes on
        assert await poll == (200, "close", b'""')
        told = await until(ws, "connection_close")
        assert told[-1][2] == {"restarting": True}, told
        await ws.wait_closed()
        assert ws.close_code == 1012
        await alice.expect("shelly has left the hall", TIMEOUT)
        alice.send("who")
        await alice.expect(r"Players online \(4\): alice, andy, wanda, webby$", TIMEOUT)
        assert game.status()["sessions"] == 4
        ws = await open_page("page1")  # the page reconnects: logged in, as after a refresh
        await until(ws, "logged_in")
        await ws.send('["text", ["say back again"], {}]')
        await alice.expect('webby says, "back again"', TIMEOUT)
        away = await open_page("page2")
        await until(away, "while you were away")
        await until(away, "logged_in")
        assert ajax(web, mode="input", data='["text", ["say polled"], {}]', **page) == (200, "")
        async with asyncio.timeout(TIMEOUT):
            while "You say" not in json.dumps(seen) or "polled" not in json.dumps(seen):
                seen = (await asyncio.to_thread(ajax, web, mode="receive", batch="1", **page))[1]
        await alice.expect('andy says, "polled"', TIMEOUT)
        assert sum("has left the hall" in line for line in alice.lines) == 1, alice.lines
        assert game.status()["sessions"] == 4
        alice.close()
        await ws.close()
        await away.close()
        async with asyncssh.connect(username="new", **ssh_options) as conn:
            proc = await conn.create_process(term_type="xterm", term_size=(80, 24))
            await asyncio.wait_for(proc.stdout.readuntil("create <username>"), TIMEOUT)

    asyncio.run(scenario())
    swapped(game, old_portal, server)


# ---------------------------------------------------------------- output during the move

TICKS = 1500
TICK_COMMAND = '''

import asyncio as _asyncio


@command("ticks", logged_in=None, help="ticks N - say tick 0..N-1, one every 2 ms (test).")
def ticks(ctx: Context) -> None:
    session, total = ctx.session, int(ctx.args or "0")
    loop = _asyncio.get_running_loop()

    def tick(n: int) -> None:
        session.msg(f"tick {n}")
        if n + 1 < total:
            loop.call_later(0.002, tick, n + 1)

    tick(0)
'''


@pytest.mark.parametrize("how", ["moved", "fail-bind"])
def test_output_the_game_sends_during_the_move_reaches_the_player(
        game_factory: type[GameRunner], monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    """Timer-driven output (a combat round, the weather) keeps coming while the portal
    moves: the server holds it while it has no portal and sends it to the new one (or
    to the old one again, when the new one fails after the old one let go)."""
    if how != "moved":
        monkeypatch.setenv(TEST_TAKEOVER, how)
    game = game_factory()
    with (game.dir / "commands.py").open("a") as handle:
        handle.write(TICK_COMMAND)
    game.start()
    old_portal, server = game.pid_of("portal"), game.pid_of("server")

    async def scenario() -> None:
        alice = MudClient("alice")
        await alice.connect(game.port)
        await alice.login("alice")
        alice.send(f"ticks {TICKS}")
        await alice.expect("tick 10$", TIMEOUT)
        code, output = await asyncio.to_thread(reload_portal, game)
        assert (code == 0) == (how == "moved"), output
        await alice.expect(f"tick {TICKS - 1}$", TIMEOUT)
        ticks = [int(n) for n in re.findall(r"^tick (\d+)$", "\n".join(alice.lines), re.M)]
        missing = sorted(set(range(TICKS)) - set(ticks))
        assert ticks == list(range(TICKS)), f"missing {missing[:20]}, {len(ticks)} ticks"
        alice.close()

    asyncio.run(scenario())
    if how == "moved":
        swapped(game, old_portal, server)
    else:
        assert game.pid_of("portal") == old_portal
        assert game.pid_of("server") == server
