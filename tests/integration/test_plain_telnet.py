"""Issue 10, item 6: inetutils `telnet`, the README's first suggestion, shows clean lines.

Told WILL SGA without LINEMODE, a BSD-style telnet goes character-at-a-time with local
echo: Enter shows as `^M` and the game's answer is glued to the typed line. Driven in a
pty here, the screen must show each typed line and each answer on lines of their own.
"""

from __future__ import annotations

import asyncio

from benchmarks.client import GameRunner
from tests.clients import require
from tests.integration.test_telnet_clients import PtyClient, started


def screen_lines(text: str) -> list[str]:
    return [line.rstrip("\r") for line in text.split("\n")]


def test_inetutils_telnet_shows_clean_lines(game_factory: type[GameRunner]) -> None:
    telnet = require("telnet")
    game = started(game_factory)

    async def scenario() -> None:
        client = PtyClient([telnet, "127.0.0.1", str(game.port)], cols=100, rows=30)
        try:
            await client.expect(r"connect <username> <password>")
            for word in ("one", "two"):
                client.send(f"ping {word}")
                await client.expect(rf"pong {word}\r?\n")
            text = client.text()
            assert "^M" not in text, f"Enter shows as ^M: {text[-300:]!r}"
            lines = screen_lines(text)
            for word in ("one", "two"):
                typed = lines.index(f"ping {word}")  # the typed line, alone on its line
                assert lines[typed + 1] == f"pong {word}", lines[typed - 2:typed + 3]
        finally:
            client.close()

    asyncio.run(scenario())
