"""Issue 12: the web port's wire formats, spoken by the `websockets` client and plain HTTP."""

from __future__ import annotations

import asyncio
import http.client
import json
import ssl
import time
import urllib.parse
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from benchmarks.client import GameRunner, MudClient, kill9
from ipc.settings import runtime_paths


@pytest.fixture
def web(game_factory: type[GameRunner]) -> GameRunner:
    runner = game_factory({"portal": {"web_port": 0, "max_line": 200}})
    runner.start()
    return runner


def web_port(game: GameRunner) -> int:
    return int(game.status()["ports"]["web"])


async def open_ws(port: int, page: str = "p1&c1&testbrowser", protocols: list[str] | None = None,
                  scheme: str = "ws", **kwargs: Any) -> ClientConnection:
    subprotocols = ["v1.evennia.com"] if protocols is None else protocols
    return await connect(f"{scheme}://127.0.0.1:{port}/ws?{page}",
                         subprotocols=subprotocols or None,  # type: ignore[arg-type]
                         open_timeout=10, **kwargs)


async def until(ws: ClientConnection, needle: str, timeout: float = 30.0) -> list[Any]:
    """Messages up to and including the first whose text contains `needle`."""
    seen: list[Any] = []
    async with asyncio.timeout(timeout):
        while True:
            raw = await ws.recv()
            try:
                message = json.loads(raw) if isinstance(raw, str) else raw
            except ValueError:
                message = raw  # gmcp.mudstandards.org: "Package.Name json"
            seen.append(message)
            if needle in (raw if isinstance(raw, str) else raw.decode("utf-8", "replace")):
                return seen


def request(port: int, method: str, path: str, body: bytes = b"",
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=40)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def ajax(port: int, **fields: str) -> tuple[int, Any]:
    body = urllib.parse.urlencode(fields).encode()
    status, _, data = request(port, "POST", "/webclientdata", body,
                              {"Content-Type": "application/x-www-form-urlencoded"})
    return status, json.loads(data) if data else None


# ---------------------------------------------------------------- websocket


def test_websocket_v1_wire_format(web: GameRunner) -> None:
    async def scenario() -> None:
        ws = await open_ws(web_port(web))
        assert ws.subprotocol == "v1.evennia.com"
        screen = await until(ws, "create &lt;username&gt;")
        assert screen[-1][0] == "text" and '<span class="color-' in screen[-1][1][0]
        await ws.send(json.dumps(["text", ["create wendy secret1"], {"cmdid": 1}]))
        seen = await until(ws, "Hearth Hall")
        assert ["logged_in", [], {}] in seen
        await ws.send(json.dumps(["text", ["@flags CLIENTNAME OOB"], {}]))
        flags = (await until(ws, "CLIENTNAME"))[-1][1][0]
        assert "websocket:testbrowser" in flags and "v1.evennia.com" in flags
        await ws.send(json.dumps(["ping", ["x"], {}]))  # an inputfunc by name (OOB)
        assert (await until(ws, "ping"))[-1] == ["ping", ["x"], {}]
        await ws.send(json.dumps(["text", ["quit"], {}]))
        seen = await until(ws, "connection_close")
        assert seen[-1][0] == "connection_close"
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000

    asyncio.run(scenario())


def test_websocket_without_subprotocol_gets_v1(web: GameRunner) -> None:
    async def scenario() -> None:
        ws = await open_ws(web_port(web), protocols=[])
        assert ws.subprotocol is None
        await until(ws, "create &lt;username&gt;")
        await ws.close()

    asyncio.run(scenario())


def test_mudstandards_subprotocols(web: GameRunner) -> None:
    async def scenario() -> None:
        port = web_port(web)
        term = await open_ws(port, "t1&c&x", ["terminal.mudstandards.org"])
        assert term.subprotocol == "terminal.mudstandards.org"
        screen = await until(term, "create <username>")
        assert isinstance(screen[-1], bytes) and b"\x1b[" in screen[-1]
        await term.send(b"ping hello\r\n")
        await until(term, "pong hello")
        gmcp = await open_ws(port, "g1&c&x", ["gmcp.mudstandards.org", "v1.evennia.com"])
        assert gmcp.subprotocol == "gmcp.mudstandards.org"
        await gmcp.send('Char.Echo {"a": 1}')
        assert (await until(gmcp, "Char.Echo"))[-1] == 'Char.Echo {"a": 1}'
        js = await open_ws(port, "j1&c&x", ["v1.evennia.com", "json.mudstandards.org"])
        assert js.subprotocol == "json.mudstandards.org"
        await js.send(json.dumps({"proto": "gmcp", "id": "Core.Ping", "data": "[]"}))
        envelope = (await until(js, "Core.Ping"))[-1]
        assert envelope["proto"] == "gmcp" and envelope["id"] == "Core.Ping"
        for ws in (term, gmcp, js):
            await ws.close()

    asyncio.run(scenario())


def test_malformed_and_oversized_messages(web: GameRunner) -> None:
    async def scenario() -> None:
        port = web_port(web)
        ws = await open_ws(port)
        await until(ws, "create &lt;username&gt;")
        for junk in ["{", "[]", '{"text": 1}', "[1,2,3]", '["text", "look", {}]',
                     "[" * 1000, "\x00\xff"]:
            await ws.send(junk)
        await ws.send(b"\x00binary junk")
        await ws.send(json.dumps(["text", ["x" * 300], {}]))  # over max_line (200)
        await until(ws, "Line too long")
        await ws.send(json.dumps(["text", ["ping still-here"], {}]))
        await until(ws, "pong still-here")  # nothing of the above broke the session
        await ws.send("x" * 100_000)  # over the message limit: closed with 1009
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(10):
                while True:
                    await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009

    asyncio.run(scenario())


def test_refresh_takes_over_the_session(web: GameRunner) -> None:
    async def scenario() -> None:
        port = web_port(web)
        first = await open_ws(port, "page42&cuidA&chrome")
        await until(first, "create &lt;username&gt;")
        await first.send(json.dumps(["text", ["create rita secret1"], {}]))
        await until(first, "Hearth Hall")
        await first.close(code=1001)  # what a browser sends when the page is refreshed
        # the refreshed page: same csessid, a new cuid (as Evennia's page makes)
        second = await open_ws(port, "page42&cuidB&chrome")
        await second.send(json.dumps(["text", ["who"], {}]))
        seen = await until(second, "Players online")
        assert "Players online (1): rita" in seen[-1][1][0]
        assert not any("create &lt;username" in str(m) for m in seen), "a fresh session"
        # a network drop (no close frame) is taken over the same way
        assert second.transport is not None
        second.transport.abort()
        third = await open_ws(port, "page42&cuidB&chrome")
        await third.send(json.dumps(["text", ["who"], {}]))
        assert "Players online (1): rita" in (await until(third, "Players online"))[-1][1][0]
        assert web.status()["sessions"] == 1
        # another page (another csessid) is a session of its own
        other = await open_ws(port, "page43&cuidC&chrome")
        await until(other, "create &lt;username&gt;")
        assert web.status()["sessions"] == 2
        # the player closing the page on purpose (1000) ends the session at once
        await third.close(code=1000)
        await other.close(code=1000)
        async with asyncio.timeout(10):
            while web.status()["sessions"]:
                await asyncio.sleep(0.2)

    asyncio.run(scenario())


def test_say_script_stays_text_for_the_other_player(web: GameRunner) -> None:
    async def scenario() -> None:
        ws = await open_ws(web_port(web))
        await until(ws, "create &lt;username&gt;")
        await ws.send(json.dumps(["text", ["create viewer secret1"], {}]))
        await until(ws, "Hearth Hall")
        mallory = MudClient("mallory")
        await mallory.connect(web.port)
        await mallory.login("mallory")
        mallory.send('say <script>alert(1)</script><b onmouseover="x">|rhi|n&lt;')
        said = (await until(ws, "mallory says"))[-1][1][0]
        assert "<script" not in said and "<b " not in said
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in said
        assert '<span class="color-009">hi</span>&amp;lt;' in said
        mallory.close()
        await ws.close()

    asyncio.run(scenario())


def test_web_port_over_tls(game_factory: type[GameRunner]) -> None:
    game = game_factory({"portal": {"web_port": 0, "web_tls": True}})
    game.start()

    async def scenario() -> None:
        context = ssl.create_default_context(
            cafile=str(runtime_paths(game.dir).keys / "telnet-ssl.crt"))
        ws = await open_ws(web_port(game), scheme="wss", ssl=context,
                           server_hostname="localhost")
        await until(ws, "create &lt;username&gt;")
        await ws.close()

    asyncio.run(scenario())


# ---------------------------------------------------------------- ajax


def test_ajax_wire_format(web: GameRunner) -> None:
    port = web_port(web)
    page = {"csessid": "ajaxpage", "cuid": "u1"}
    status, reply = ajax(port, mode="init", browserstr="firefox", **page)
    assert status == 200 and reply["csessid"] == "ajaxpage"
    status, message = ajax(port, mode="receive", **page)  # Evennia's client: one per poll
    assert status == 200 and message[0] == "text" and "create &lt;username" in message[1][0]
    assert ajax(port, mode="input", data='["text", ["create andy secret1"], {}]', **page) == (
        200, "")
    seen: list[Any] = []
    while not any("Hearth Hall" in str(m) for m in seen):
        status, message = ajax(port, mode="receive", batch="1", **page)
        assert status == 200
        seen.extend(message if isinstance(message[0], list) else [message])
    assert ["logged_in", [], {}] in seen
    ajax(port, mode="input", data='["text", ["@flags CLIENTNAME"], {}]', **page)
    _, flags = ajax(port, mode="receive", **page)
    assert "ajax:firefox" in flags[1][0]
    # malformed data is ignored; unknown modes and sessions are refused
    assert ajax(port, mode="input", data="{not json", **page) == (200, "")
    assert ajax(port, mode="dance", **page)[0] == 400
    assert ajax(port, mode="receive", csessid="nobody", cuid="x")[0] == 410
    assert ajax(port, mode="keepalive", **page) == (200, "")
    assert ajax(port, mode="close", **page) == (200, "")
    assert ajax(port, mode="receive", **page)[0] == 410


def test_ajax_long_poll_is_answered_when_output_exists(web: GameRunner) -> None:
    async def scenario() -> None:
        port = web_port(web)
        page = {"csessid": "poller", "cuid": "u1"}
        ajax(port, mode="init", **page)
        ajax(port, mode="receive", batch="1", **page)  # the connection screen
        poll = asyncio.ensure_future(asyncio.to_thread(ajax, port, mode="receive",
                                                       batch="1", **page))
        await asyncio.sleep(0.5)
        assert not poll.done(), "a poll with no output waiting is held"
        ajax(port, mode="input", data='["text", ["ping held"], {}]', **page)
        status, messages = await asyncio.wait_for(poll, 15)
        assert status == 200 and "pong held" in str(messages)
        # a refreshed page (same csessid, new cuid) takes the session over
        status, _ = ajax(port, mode="init", csessid="poller", cuid="u2")
        assert status == 200 and web.status()["sessions"] == 1
        assert ajax(port, mode="input", data='["text", ["ping again"], {}]',
                    csessid="poller", cuid="u2") == (200, "")
        _, messages = ajax(port, mode="receive", batch="1", csessid="poller", cuid="u2")
        assert "pong again" in str(messages)

    asyncio.run(scenario())


def test_ajax_session_ended_between_polls_leaves_its_goodbye(web: GameRunner) -> None:
    """The game ends a session while no poll is held (`quit`, a reboot): the page's next
    poll still gets the goodbye and `connection_close`, once; then the session is gone."""
    port = web_port(web)
    page = {"csessid": "leaver", "cuid": "u1"}
    ajax(port, mode="init", **page)
    ajax(port, mode="receive", batch="1", **page)  # the connection screen; no poll held now
    assert ajax(port, mode="input", data='["text", ["quit"], {}]', **page) == (200, "")
    deadline = time.monotonic() + 15
    while web.status()["sessions"] and time.monotonic() < deadline:
        time.sleep(0.05)
    status, messages = ajax(port, mode="receive", batch="1", **page)
    assert status == 200, (status, messages)
    assert "Goodbye! Come back soon." in str(messages)
    assert messages[-1][0] == "connection_close", messages
    assert ajax(port, mode="receive", batch="1", **page)[0] == 410


# ---------------------------------------------------------------- plain HTTP


def test_http_routes_and_limits(web: GameRunner) -> None:
    port = web_port(web)
    status, headers, body = request(port, "GET", "/")
    assert status == 200 and b'id="output"' in body
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    for asset in ("/static/client.js", "/static/client.css", "/static/colours.css"):
        assert request(port, "GET", asset)[0] == 200, asset
    assert request(port, "GET", "/static/../../ipc/settings.py")[0] == 404
    assert request(port, "GET", "/nothing")[0] == 404
    assert request(port, "GET", "/ws")[0] == 426
    assert request(port, "GET", "/webclientdata")[0] == 405
    assert request(port, "POST", "/webclientdata", b"x" * 100_000)[0] == 413
    many = {f"X-Header-{i}": "1" for i in range(100)}
    assert request(port, "GET", "/", headers=many)[0] == 431


def test_websocket_session_lives_through_a_server_crash(web: GameRunner) -> None:
    async def scenario() -> None:
        ws = await open_ws(web_port(web))
        await until(ws, "create &lt;username&gt;")
        await ws.send(json.dumps(["text", ["create crashy secret1"], {}]))
        await until(ws, "Hearth Hall")
        kill9(web.pid_of("server"))
        for n in range(3):
            await ws.send(json.dumps(["text", [f"ping crash-{n}"], {}]))
        seen = await until(ws, "pong crash-2", timeout=40)
        pongs = [m[1][0] for m in seen if "pong" in str(m)]
        assert pongs == ["pong crash-0", "pong crash-1", "pong crash-2"], seen
        await ws.send(json.dumps(["text", ["who"], {}]))
        assert "crashy" in (await until(ws, "Players online"))[-1][1][0]
        await ws.close()

    asyncio.run(scenario())


FLOOD_COMMAND = '''

@command("flood", logged_in=None, help="flood - a lot of output (test).")
def flood(ctx: Context) -> None:
    for n in range(3000):
        ctx.session.msg(f"flood {n} " + "x" * 10000)
'''


def test_a_page_that_stops_reading_is_cut_off(game_factory: type[GameRunner]) -> None:
    game = game_factory({"portal": {"web_port": 0, "max_output_buffer": 262144}})
    with (game.dir / "commands.py").open("a") as handle:
        handle.write(FLOOD_COMMAND)
    game.start()

    async def scenario() -> None:
        # max_queue=1: the client library stops reading from the socket at once
        ws = await open_ws(web_port(game), max_queue=1)
        await until(ws, "create &lt;username&gt;")
        await ws.send(json.dumps(["text", ["flood"], {}]))
        async with asyncio.timeout(60):
            while game.status()["sessions"]:
                await asyncio.sleep(0.5)
        log = (game.dir / ".hearth" / "logs" / "portal.log").read_text()
        assert "stopped reading" in log or "does not read" in log, log[-2000:]
        ws.transport.abort()

    asyncio.run(scenario())


def test_input_over_the_command_rate_is_delayed_not_lost(
        game_factory: type[GameRunner]) -> None:
    game = game_factory({"portal": {"web_port": 0, "commands_per_second": 50,
                                    "command_burst": 10}})
    game.start()

    async def scenario() -> None:
        port = web_port(game)
        ws = await open_ws(port)
        await until(ws, "create &lt;username&gt;")
        for n in range(100):
            await ws.send(json.dumps(["text", [f"ping rate-{n}"], {}]))
        seen = await until(ws, "pong rate-99", timeout=60)
        pongs = [m[1][0] for m in seen if "pong rate-" in str(m)]
        assert pongs == [f"pong rate-{n}" for n in range(100)]
        await ws.close()
        page = {"csessid": "ratepage", "cuid": "u1"}
        ajax(port, mode="init", **page)
        for n in range(30):  # each answered once the game takes it: none is refused
            assert ajax(port, mode="input", data=f'["text", ["ping a-{n}"], {{}}]',
                        **page) == (200, "")
        seen_ajax: list[Any] = []
        while not any("pong a-29" in str(m) for m in seen_ajax):
            status, messages = ajax(port, mode="receive", batch="1", **page)
            assert status == 200
            seen_ajax.extend(messages if isinstance(messages[0], list) else [messages])
        ajax_pongs = [m[1][0] for m in seen_ajax if "pong a-" in str(m)]
        assert ajax_pongs == [f"pong a-{n}" for n in range(30)]

    asyncio.run(scenario())
