"""Issue 20 through real processes and real clients: the starter area of the default game.

These test the bundled `game/` itself (`template=BUNDLED_GAME`), as shipped; every other
test runs tests/game. One game for the module (its world grows from test to test).
TinTin++ in tmux walks the starter area and logs its GMCP events; telnetlib3 checks the
shape of every GMCP message and MSDP variable the game sends; a builder's house survives a
reload and a `kill -9` of the server; restarts and a reset never build the starter area
twice; headless Chromium clicks an exit button of the web client's room panel.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.client import BUNDLED_GAME, GameRunner, MudClient, kill9
from tests.clients import require
from tests.integration.test_oob import OobClient

TIMEOUT = 15.0
BUILDER = "bea"
PASSWORD = "secret-build1"


@pytest.fixture(scope="module")
def game(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GameRunner]:
    runner = GameRunner(tmp_path_factory.mktemp("starter"),
                        {"portal": {"web_port": 0, "commands_per_second": 0},
                         "supervisor": {"backoff_max": 0.2}},
                        template=BUNDLED_GAME)
    try:
        runner.make_admin(BUILDER, PASSWORD)  # an admin may do what a builder may
        runner.start()
        yield runner
    finally:
        leftovers = runner.cleanup()
        state = runner.dir / ".hearth"
        left = [p.name for p in (*state.glob("*.sock"), *state.glob("*.pid"))]
        assert not left and not leftovers, (left, leftovers)


def rows(game: GameRunner, sql: str) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(game.dir / ".hearth" / "game.db")
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


async def player(game: GameRunner, name: str, create: bool = True,
                 password: str = "secret1") -> MudClient:
    client = MudClient(name)
    await client.connect(game.port)
    await client.login(name, password, create=create)
    await client.expect(r"^Exits:")
    return client


async def ask(client: MudClient, line: str, answer: str, timeout: float = TIMEOUT) -> str:
    client.send(line)
    return await client.expect(answer, timeout)


# ---------------------------------------------------------------- TinTin++ in tmux

TINTIN_SCRIPT = r"""
#EVENT {IAC WILL GMCP}
{
    #send {\xFF\xFD\xC9};
    #send {\xFF\xFA\xC9Core.Supports.Set ["Room 1", "Char 1", "Char.Items 1"]\xFF\xF0}
}
#EVENT {IAC SB GMCP Room.Info IAC SE} {#line log {LOG} {GMCP %1}}
#EVENT {IAC SB GMCP Char.Items.Add IAC SE} {#line log {LOG} {GMCP %1}}
#session hearth 127.0.0.1 PORT
"""


class Tmux:
    """A terminal program in a tmux session of its own server (socket `name`)."""

    def __init__(self, name: str, command: str, cwd: Path) -> None:
        self.base = [require("tmux"), "-L", name]
        subprocess.run([*self.base, "new-session", "-d", "-s", "t", "-x", "120", "-y", "40",
                        command], check=True, cwd=cwd, timeout=TIMEOUT)
        out = subprocess.run([*self.base, "list-panes", "-F", "#{pane_pid}"], check=True,
                             capture_output=True, text=True, timeout=TIMEOUT)
        self.pid = int(out.stdout.split()[0])

    def send(self, line: str) -> None:
        subprocess.run([*self.base, "send-keys", "-t", "t", "-l", line], check=True,
                       timeout=TIMEOUT)
        subprocess.run([*self.base, "send-keys", "-t", "t", "Enter"], check=True,
                       timeout=TIMEOUT)

    def screen(self) -> str:
        out = subprocess.run([*self.base, "capture-pane", "-p", "-J", "-S", "-2000", "-t", "t"],
                             capture_output=True, text=True, timeout=TIMEOUT)
        return out.stdout

    def wait(self, pattern: str, timeout: float = TIMEOUT) -> str:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            if regex.search(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"tmux never showed {pattern!r}; screen:\n{text[-1500:]}")
            time.sleep(0.05)

    def close(self) -> None:
        subprocess.run([*self.base, "kill-server"], capture_output=True, timeout=TIMEOUT)


def wait_gmcp(path: Path, package: str, count: int, timeout: float = TIMEOUT) -> list[Any]:
    """The data of the first `count` `package` messages TinTin++'s events logged to
    `path` (a line `GMCP Room.Info {...}` each)."""
    deadline = time.monotonic() + timeout
    prefix = f"GMCP {package} "
    while True:
        text = path.read_text(errors="replace") if path.exists() else ""
        found = [json.loads(line[len(prefix):]) for line in text.splitlines()
                 if line.startswith(prefix)]
        if len(found) >= count:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"only {len(found)} {package} in {path}:\n{text[-1500:]}")
        time.sleep(0.05)


def test_tintin_walks_the_starter_area_with_room_info_on_every_move(
        game: GameRunner, tmp_path: Path) -> None:
    tintin = require("tt++")
    log = tmp_path / "gmcp.log"
    script = tmp_path / "walk.tin"
    text = TINTIN_SCRIPT.lstrip().replace("LOG", str(log))
    script.write_text(text.replace("PORT", str(game.port)))
    term = Tmux(f"hearth-tt-{time.monotonic_ns()}", f"{tintin} -G {script}", tmp_path)
    try:
        term.wait("connect <username> <password>")
        term.send("create tina secret1")
        term.wait(r"Exits:")
        assert wait_gmcp(log, "Room.Info", 1)[0]["name"] == "Hearth Hall"
        term.send("n")
        term.wait(r"Cobbles wet with dew")
        assert wait_gmcp(log, "Room.Info", 2)[1]["name"] == "Courtyard"
        term.send("get bucket")
        term.wait(r"You pick up wooden bucket\.")
        added = wait_gmcp(log, "Char.Items.Add", 1)[0]
        assert added["location"] == "inv" and added["item"]["name"] == "wooden bucket"
        term.send("inventory")
        term.wait(r"You are carrying:\s+wooden bucket")
        term.send("drop bucket")  # left for the browser's test
        term.wait(r"You drop wooden bucket")
        term.send("s")
        term.wait(r"(?s)Cobbles.*A long, low hall")
        third = wait_gmcp(log, "Room.Info", 3)[2]
        assert third["name"] == "Hearth Hall" and third["exits"]["n"] == \
            wait_gmcp(log, "Room.Info", 2)[1]["num"]
    finally:
        term.close()


# ---------------------------------------------------------------- telnetlib3: shapes


def is_item(entry: Any) -> bool:
    return (isinstance(entry, dict) and isinstance(entry.get("id"), str)
            and isinstance(entry.get("name"), str)
            and isinstance(entry.get("attrib", ""), str)
            and set(entry) <= {"id", "name", "attrib", "icon"})


def check_room_info(info: Any, name: str) -> None:
    assert set(info) == {"num", "name", "area", "environment", "exits"}, info
    assert isinstance(info["num"], int) and info["name"] == name
    assert info["area"] == "Hearthstead" and isinstance(info["environment"], str)
    assert info["exits"] and all(isinstance(k, str) and isinstance(v, int)
                                 for k, v in info["exits"].items()), info


def test_every_gmcp_message_has_its_shape(game: GameRunner) -> None:
    async def scenario() -> None:
        client = OobClient()
        await client.connect(game.port)
        try:
            await client.expect_text("connect <username> <password>")
            client.writer.send_gmcp("Core.Supports.Set",
                                    ["Room 1", "Char 1", "Char.Items 1", "Comm 1"])
            client.send("create gus secret1")
            assert await client.until("Char.Name") == {"name": "gus", "fullname": "gus"}
            vitals = await client.until("Char.Vitals")
            assert all(isinstance(v, str) for v in vitals.values())
            assert vitals["hp"] == vitals["maxhp"] == "20" and vitals["string"].startswith("H:")
            assert await client.until("Char.StatusVars") == {"name": "Name", "level": "Level",
                                                             "gold": "Gold"}
            assert await client.until("Char.Status") == {"name": "gus", "level": 1, "gold": 5}
            inv = await client.until("Char.Items.List")
            assert inv == {"location": "inv", "items": []}
            check_room_info(await client.until("Room.Info"), "Hearth Hall")
            room = await client.until("Char.Items.List")
            assert room["location"] == "room" and all(is_item(i) for i in room["items"])
            assert "fire" in [i["name"] for i in room["items"]]
            client.send("e")
            check_room_info(await client.until("Room.Info"), "Kitchen")
            room = await client.until("Char.Items.List")
            apples = [i for i in room["items"] if "apple" in i["name"]]
            assert len(apples) == 2 and all(i["attrib"] == "t" for i in apples)
            client.send("get 2.apple")
            removed = await client.until("Char.Items.Remove")
            added = await client.until("Char.Items.Add")
            assert removed["location"] == "room" and added["location"] == "inv"
            assert removed["item"] == added["item"] == apples[1]
            client.send("sw")
            assert await client.until("Room.WrongDir") == "sw"
            client.send("say crunch")
            assert await client.until("Comm.Channel.Text") == {
                "channel": "say", "talker": "gus", "text": 'You say, "crunch"'}
            client.send("w")
            check_room_info(await client.until("Room.Info"), "Hearth Hall")
        finally:
            client.close()

    asyncio.run(scenario())


def test_every_msdp_variable_has_its_shape(game: GameRunner) -> None:
    async def scenario() -> None:
        client = OobClient(msdp=True)
        await client.connect(game.port)
        try:
            await client.expect_text("connect <username> <password>")
            client.writer.send_msdp({"REPORT": ["ROOM_VNUM", "ROOM_NAME", "ROOM_AREA",
                                                "ROOM_TERRAIN", "ROOM_EXITS", "HEALTH",
                                                "HEALTH_MAX", "CHARACTER_NAME", "LEVEL",
                                                "MONEY"]})
            client.send("create mia secret1")
            assert await client.until("CHARACTER_NAME") == "mia"
            assert await client.until("HEALTH") == "20"
            assert await client.until("HEALTH_MAX") == "20"
            assert await client.until("LEVEL") == "1" and await client.until("MONEY") == "5"
            assert await client.until("ROOM_NAME") == "Hearth Hall"
            assert (await client.until("ROOM_VNUM")).isdigit()
            assert await client.until("ROOM_AREA") == "Hearthstead"
            assert await client.until("ROOM_TERRAIN") == "indoors"
            exits = await client.until("ROOM_EXITS")
            assert isinstance(exits, dict) and set(exits) == {"n", "e", "w", "u", "d"}
            assert all(v.isdigit() for v in exits.values())
            client.send("n")
            assert await client.until("ROOM_NAME") == "Courtyard"
            assert await client.until("ROOM_TERRAIN") == "outdoors"
        finally:
            client.close()

    asyncio.run(scenario())


# ---------------------------------------------------------------- building


HOUSE = [
    ("dig Cottage = southwest;sw, northeast;ne", r"Exit northeast\(#\d+\)"),
    ("sw", r"^Cottage$"),
    ("desc here = A tiny cottage with a thatched roof.", r"description of Cottage"),
    ("tunnel n = Bedroom", r"Exit south\(#\d+\) from Bedroom"),
    ("dig Pantry", r"Created room Pantry"),
    ("open door;dr, door;dr = Pantry", r"Exit door\(#\d+\) from Pantry"),
    ("create table;tbl", r"Created table"),
    ("desc table = A scrubbed oak table.", r"description of table"),
    ("set table/legs = 4", r"legs = 4"),
    ("drop table", r"You drop table\."),
]


async def check_house(client: MudClient) -> None:
    assert "A tiny cottage" in await ask(client, "look", r"A tiny cottage|^Hearth Hall")
    await ask(client, "examine table", r"legs = 4")
    await ask(client, "look table", r"A scrubbed oak table\.")
    await ask(client, "door", r"^Pantry$")
    await ask(client, "door", r"^Cottage$")
    await ask(client, "n", r"^Bedroom$")
    await ask(client, "s", r"^Cottage$")


def test_a_builders_house_survives_a_reload_and_a_kill9(game: GameRunner) -> None:
    async def scenario() -> None:
        bea = await player(game, BUILDER, create=False, password=PASSWORD)
        try:
            started = time.monotonic()
            for line, answer in HOUSE:
                await ask(bea, line, answer)
            typing = time.monotonic() - started
            await check_house(bea)
            result = await asyncio.to_thread(game.cli, "reload")
            assert result.returncode == 0, result.stdout + result.stderr
            await check_house(bea)
            old = game.pid_of("server")
            kill9(old)
            await ask(bea, "look", r"A tiny cottage", timeout=30)  # answered by the next one
            assert game.pid_of("server") != old
            await check_house(bea)
            print(f"the house: {len(HOUSE)} commands answered in {typing:.2f}s")
        finally:
            bea.close()

    asyncio.run(scenario())


def test_restarts_and_a_reset_never_build_the_starter_area_twice(game: GameRunner) -> None:
    def count() -> tuple[int, int]:
        halls = rows(game, "SELECT COUNT(*) FROM world_objects WHERE key = 'Hearth Hall'")
        return halls[0][0], rows(game, "SELECT COUNT(*) FROM world_objects")[0][0]

    before = count()
    assert before[0] == 1
    for action in ("stop", "start", "reset", "stop", "start"):
        if action == "start":
            game.start()
        else:
            result = game.cli(action)
            assert result.returncode == 0, f"{action}: {result.stdout}{result.stderr}"
    assert count() == before

    async def look() -> None:
        client = await player(game, "newcomer")
        client.close()

    asyncio.run(look())
    assert count()[0] == 1 and count()[1] == before[1] + 1  # only the new character


# ---------------------------------------------------------------- the web client


def test_chromium_clicks_an_exit_button_and_sees_the_new_room(game: GameRunner) -> None:
    from tests.integration.test_web_browser import browser_page, type_line, wait_output

    port = game.status()["ports"]["web"]

    async def scenario() -> None:
        async with browser_page(f"http://127.0.0.1:{port}/") as page:
            await wait_output(page, "create <username> <password>")
            await type_line(page, "create wendy secret1")
            await page.wait_for_selector("#room-name:text('Hearth Hall')", timeout=20_000)
            await page.click("#exits button[data-exit='n']", timeout=20_000)
            await wait_output(page, "Cobbles wet with dew")
            await page.wait_for_selector("#room-name:text('Courtyard')", timeout=20_000)
            items = await page.inner_text("#room-items")
            assert "wooden bucket" in items, items
            await type_line(page, "get bucket")
            await page.wait_for_selector("#inventory li:text('wooden bucket')",
                                         timeout=20_000)
            assert "wooden bucket" not in await page.inner_text("#room-items")
            label = await page.inner_text("#prompt")
            assert "Password" not in label, label

    asyncio.run(scenario())


def test_the_starter_area_has_the_shape_the_issue_asks(game: GameRunner) -> None:
    """8 to 12 rooms, compass exits plus up/down/in/out with aliases (read from the db)."""
    names = {key for (key,) in rows(game, "SELECT key FROM world_objects WHERE "
                                          "destination IS NULL AND location IS NULL")}
    assert {"Hearth Hall", "Courtyard", "Kitchen", "Cellar"} <= names
    exits = rows(game, "SELECT key, aliases FROM world_objects WHERE destination IS NOT NULL")
    keys = {k for k, _ in exits}
    assert {"north", "south", "east", "west", "up", "down", "northeast"} <= keys
    assert json.dumps(sorted(keys))  # readable in a failure


# ---------------------------------------------------------------- the page (issue 21, 6)

NO_WEBSOCKET = "delete window.WebSocket;"
THROWING_WEBSOCKET = ("window.WebSocket = function () { throw new Error('blocked'); };")


async def open_page(port: int, init_script: str = "") -> Any:
    """A headless Chromium page on the game (a context manager: use `async with`)."""
    from contextlib import asynccontextmanager

    from tests.integration.test_web_browser import playwright_api

    @asynccontextmanager
    async def page_cm() -> Any:
        chromium = require("chromium")
        async with playwright_api.async_playwright() as p:
            browser = await p.chromium.launch(executable_path=chromium, headless=True,
                                              args=["--no-sandbox"])
            try:
                page = await browser.new_page(viewport={"width": 900, "height": 600},
                                              bypass_csp=True)
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                if init_script:
                    await page.add_init_script(init_script)
                await page.goto(f"http://127.0.0.1:{port}/")
                yield page
                assert not errors, f"script errors in the page: {errors}"
            finally:
                await browser.close()

    return page_cm()


async def prompt_of(page: Any) -> str:
    return str(await page.inner_text("#prompt"))


def test_the_page_resets_its_prompt_and_shows_no_empty_line_after_a_hidden_one(
        game: GameRunner) -> None:
    from tests.integration.test_web_browser import WAIT_MS, type_line, wait_output, wait_status

    port = game.status()["ports"]["web"]

    async def scenario() -> None:
        async with await open_page(port) as page:
            await wait_output(page, "create <username> <password>")
            await type_line(page, "create pam secret1")
            await wait_output(page, "Hearth Hall")
            await type_line(page, "quit")
            await wait_status(page, "disconnected")
            await page.keyboard.press("Enter")  # connect again
            await wait_status(page, "connected")
            await type_line(page, "connect pam")
            await page.wait_for_function(
                "() => document.getElementById('prompt').textContent === 'Password:'")
            assert await page.get_attribute("#input", "type") == "password"
            opens = await page.evaluate("window.hearth.link.opens")
            await page.evaluate("window.hearth.link.transport.close()")  # the link drops
            # (the status still says "connected" until the page sees the close: wait for
            # the new connection itself, not for the status)
            await page.wait_for_function("(n) => window.hearth.link.opens > n", arg=opens,
                                         timeout=WAIT_MS)
            await wait_status(page, "connected")
            assert await prompt_of(page) == ">", "the prompt stayed after a reconnect"
            assert await page.get_attribute("#input", "type") == "text"
            await type_line(page, "connect pam")
            await page.wait_for_function(
                "() => document.getElementById('prompt').textContent === 'Password:'")
            await type_line(page, "secret1")
            await wait_output(page, "(hidden)\nHearth Hall")
            await page.wait_for_selector("#room-name:text('Hearth Hall')")
            assert await prompt_of(page) == ">", "the prompt stayed Password: after login"
            empty = await page.evaluate(
                "Array.from(document.querySelectorAll('#output > div'))"
                ".filter((d) => d.textContent === '').length")
            assert empty == 0, f"{empty} empty lines in the output"

    asyncio.run(scenario())


@pytest.mark.parametrize("init_script", [NO_WEBSOCKET, THROWING_WEBSOCKET],
                         ids=["no-websocket", "throwing-constructor"])
def test_a_browser_without_a_working_websocket_falls_back_to_ajax(
        game: GameRunner, init_script: str) -> None:
    from tests.integration.test_web_browser import wait_output, wait_status

    port = game.status()["ports"]["web"]

    async def scenario() -> None:
        async with await open_page(port, init_script) as page:
            await wait_status(page, "connected")
            assert await page.evaluate("document.body.dataset.transport") == "ajax"
            await wait_output(page, "create <username> <password>")

    asyncio.run(scenario())
