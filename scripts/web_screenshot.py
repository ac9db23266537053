"""Take the README's screenshots of the web client (headless Chromium, Playwright).

    .venv/bin/python scripts/web_screenshot.py      # writes docs/web-client-room.png
                                                    # and docs/web-client-phone.png

Starts the bundled game in a temporary folder, plays a few commands in the page (a
player walks into the kitchen and takes an apple while another says hello), takes the
pictures, and stops the game.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.client import GameRunner, MudClient  # noqa: E402


async def shoot(port: int, telnet: int, path: Path, width: int, height: int,
                name: str, thing: str, held: str) -> None:
    from playwright.async_api import async_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium, headless=True,
                                          args=["--no-sandbox"])
        try:
            page = await browser.new_page(viewport={"width": width, "height": height},
                                          bypass_csp=True)
            await page.goto(f"http://127.0.0.1:{port}/")
            await page.wait_for_selector("#status.ok", timeout=20_000)
            await page.keyboard.type(f"create {name} secret1\n")
            await page.wait_for_selector("#room-name:text('Hearth Hall')", timeout=20_000)
            friend = MudClient("tom")
            await friend.connect(telnet)
            await friend.login(f"tom{name}")
            await page.click("#exits button[data-exit='e']")
            await page.wait_for_selector("#room-name:text('Kitchen')", timeout=20_000)
            friend.send("e")
            await page.keyboard.type(f"get {thing}\n")
            await page.wait_for_selector(f"#inventory li:text('{held}')", timeout=20_000)
            friend.send("say That one is sour, you know.")
            await page.wait_for_function(
                "() => document.getElementById('output').innerText.includes('sour')")
            await page.keyboard.type("look apple")
            await page.wait_for_timeout(100)
            await page.screenshot(path=str(path))
            friend.close()
        finally:
            await browser.close()


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="hearth-shot-"))
    game = GameRunner(root, {"portal": {"web_port": 0}})
    try:
        game.start()
        ports = game.status()["ports"]
        asyncio.run(shoot(int(ports["web"]), int(ports["telnet"]),
                          REPO / "docs" / "web-client-room.png", 1000, 620, "ada",
                          "2.apple", "green apple"))
        asyncio.run(shoot(int(ports["web"]), int(ports["telnet"]),
                          REPO / "docs" / "web-client-phone.png", 390, 740, "bo",
                          "bread", "loaf of bread"))
    finally:
        game.cleanup()
        shutil.rmtree(root, ignore_errors=True)
    print("wrote docs/web-client-room.png and docs/web-client-phone.png")


if __name__ == "__main__":
    main()
