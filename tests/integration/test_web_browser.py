"""Issue 12: the web client page in a real browser (Debian's Chromium, headless, driven by
Playwright from PyPI through `executable_path`; no browser is ever downloaded)."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from benchmarks.client import GameRunner, MudClient, acli
from tests.clients import require

playwright_api = pytest.importorskip("playwright.async_api")

REPO = Path(__file__).resolve().parent.parent.parent
WAIT_MS = 20_000
SECRET_COMMAND = '''

@command("secret", logged_in=None, help="secret - ask for a password (test).")
def secret(ctx: Context) -> None:
    ctx.session.data_out(echo=([], {"hidden": True}))
    ctx.session.msg("Password:")


@command("unsecret", logged_in=None, help="unsecret - show input again (test).")
def unsecret(ctx: Context) -> None:
    ctx.session.data_out(echo=([], {"hidden": False}))
    ctx.session.msg("Shown again.")
'''


def web_game(game_factory: type[GameRunner], **portal: Any) -> GameRunner:
    # port 0 is bound once by the supervisor: a reboot keeps the page's address
    runner = game_factory({"portal": {"web_port": 0, **portal}})
    with (runner.dir / "commands.py").open("a") as handle:
        handle.write(SECRET_COMMAND)
    runner.start()
    return runner


@asynccontextmanager
async def browser_page(url: str) -> AsyncIterator[Any]:
    chromium = require("chromium")
    async with playwright_api.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium, headless=True,
                                          args=["--no-sandbox"])
        try:
            # Playwright evaluates its wait functions with eval(), which the page's CSP forbids.
            page = await browser.new_page(viewport={"width": 900, "height": 600},
                                          bypass_csp=True)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(url)
            yield page
            assert not errors, f"script errors in the page: {errors}"
        finally:
            await browser.close()


async def wait_status(page: Any, text: str) -> None:
    try:
        await page.wait_for_function(
            "(t) => document.getElementById('status').textContent.startsWith(t)", arg=text,
            timeout=WAIT_MS)
    except Exception as exc:
        status = await page.text_content("#status")
        raise AssertionError(f"status never became {text!r}; it is {status!r}") from exc


async def wait_output(page: Any, text: str) -> None:
    try:
        await page.wait_for_function(
            "(t) => document.getElementById('output').innerText.includes(t)", arg=text,
            timeout=WAIT_MS)
    except Exception as exc:
        tail = (await page.inner_text("#output"))[-600:]
        raise AssertionError(f"page never showed {text!r}; it shows:\n{tail}") from exc


async def type_line(page: Any, line: str) -> None:
    await page.keyboard.type(line)
    await page.keyboard.press("Enter")


async def play(game: GameRunner, transport: str, screenshot: Path | None = None) -> None:
    port = game.status()["ports"]["web"]
    query = "?ajax" if transport == "ajax" else ""
    async with browser_page(f"http://127.0.0.1:{port}/{query}") as page:
        await wait_status(page, "connected")
        assert await page.evaluate("document.body.dataset.transport") == transport
        await wait_output(page, "create <username> <password>")
        await type_line(page, "create webby secret1")
        await wait_output(page, "Hearth Hall")
        await wait_status(page, "connected, logged in")

        bob = MudClient("bob")
        await bob.connect(game.port)
        await bob.login("bob")
        await wait_output(page, "bob has entered the hall")
        bob.send("say look |rred|n <script>window.pwned=1</script><img src=x onerror=pwned=2>")
        await wait_output(page, "bob says")
        # the colour became a span, and what bob typed stayed text
        red = await page.inner_text("#output span.color-009")
        assert red == "red"
        assert await page.evaluate("window.pwned") is None
        assert await page.evaluate("document.querySelectorAll('#output script, #output img')"
                                   ".length") == 0
        await wait_output(page, "<script>window.pwned=1</script>")
        await type_line(page, "say hello bob")
        await bob.expect(r'webby says, "hello bob"')

        # a reload swaps the game server; the page must not notice at all
        code, out, _ = await acli(game, "reload")
        assert code == 0, out
        await type_line(page, "say still here")
        await bob.expect(r'webby says, "still here"')
        await wait_output(page, 'You say, "still here"')
        link = await page.evaluate("({opens: hearth.link.opens, attempt: hearth.link.attempt})")
        assert link == {"opens": 1, "attempt": 0}, link
        assert "The connection was lost" not in await page.inner_text("#output")

        # input history, keyboard only
        await page.keyboard.press("ArrowUp")
        assert await page.input_value("#input") == "say still here"
        await page.keyboard.press("ArrowUp")
        assert await page.input_value("#input") == "say hello bob"
        await page.keyboard.press("ArrowDown")
        assert await page.input_value("#input") == "say still here"
        await page.fill("#input", "")

        # the game asks for a password: the input is masked, then shown again
        await type_line(page, "secret")
        await wait_output(page, "Password:")
        assert await page.get_attribute("#input", "type") == "password"
        await type_line(page, "unsecret")
        await wait_output(page, "Shown again.")
        assert await page.get_attribute("#input", "type") == "text"
        if screenshot is not None:
            await page.screenshot(path=str(screenshot))

        # a refresh takes the session over: still logged in, no second session
        await page.reload()
        await wait_status(page, "connected, logged in")
        await type_line(page, "say refreshed")
        await bob.expect(r'webby says, "refreshed"')
        bob.send("who")
        await bob.expect(r"Players online \(2\): bob, webby")
        assert game.status()["sessions"] == 2

        # a reboot restarts the portal: the page says so and comes back by itself
        bob.close()
        code, out, _ = await acli(game, "reboot")
        assert code == 0, out
        game.remember_pids()
        try:
            await page.wait_for_function("hearth.link.opens >= 2", timeout=60_000)
        except Exception as exc:
            state = await page.evaluate("[hearth.link.attempt, hearth.link.restarting, "
                                        "document.getElementById('status').textContent]")
            tail = (await page.inner_text("#output"))[-400:]
            raise AssertionError(f"no reconnect after reboot: {state}\n{tail}") from exc
        await wait_status(page, "connected")
        notes = await page.inner_text("#output")
        assert "The game is rebooting" in notes
        await type_line(page, "connect webby secret1")
        await wait_output(page, "Hearth Hall")


@pytest.mark.parametrize("transport", ["websocket", "ajax"])
def test_page_plays_through_reload_and_reboot(game_factory: type[GameRunner],
                                              transport: str, tmp_path: Path) -> None:
    game = web_game(game_factory)
    shot = tmp_path / "web-client.png" if transport == "websocket" else None
    asyncio.run(play(game, transport, shot))
    if shot is not None and os.environ.get("HEARTH_SCREENSHOT"):
        shutil.copy(shot, REPO / "docs" / "web-client.png")


async def through_reload_portal(game: GameRunner, transport: str) -> None:
    port = game.status()["ports"]["web"]
    query = "?ajax" if transport == "ajax" else ""
    async with browser_page(f"http://127.0.0.1:{port}/{query}") as page:
        await wait_output(page, "create <username> <password>")
        await type_line(page, "create webby secret1")
        await wait_output(page, "Hearth Hall")
        await wait_status(page, "connected, logged in")
        old_portal = game.pid_of("portal")
        code, out, _ = await acli(game, "reload-portal")
        assert code == 0, out
        assert game.pid_of("portal") != old_portal
        # issue 21, item 6: the session moved; the page comes back to it by itself,
        # logged in (a websocket reconnects; an ajax page's next poll reaches the new portal)
        if transport == "websocket":
            await page.wait_for_function("hearth.link.opens >= 2", timeout=WAIT_MS)
        await wait_status(page, "connected, logged in")
        await type_line(page, "say after the upgrade")
        await wait_output(page, 'You say, "after the upgrade"')
        shown = await page.inner_text("#output")
        assert shown.count("create <username> <password>") == 1, shown[-600:]
        assert "The connection was lost" not in shown, shown[-600:]
        if transport == "ajax":  # it never opened its session again
            assert await page.evaluate("hearth.link.opens") == 1
        status = game.status()
        assert (status["sessions"], status["portal_link"]["logged_in"]) == (1, 1), status


@pytest.mark.parametrize("transport", ["websocket", "ajax"])
def test_the_page_stays_logged_in_through_reload_portal(game_factory: type[GameRunner],
                                                        transport: str) -> None:
    game = web_game(game_factory)
    asyncio.run(through_reload_portal(game, transport))
