"""Issue 10, item 2: an in-game `reload` answers the admin, and only the admin.

A failed reload changed nothing for the players, so they hear nothing; the admin gets the
whole traceback of the new server. A good reload tells the admin it is done and how long
it took.
"""

from __future__ import annotations

import asyncio
import re

from benchmarks.client import GameRunner, MudClient

# A module-level failure a few frames deep, with a pipe in it (colour markup must not eat it)
BROKEN = '''

def _deep_down() -> None:
    raise RuntimeError("broken on purpose | marker-7 |r")


def _down() -> None:
    _deep_down()


_down()
'''


def test_in_game_reload_reports_to_the_admin_only(game: GameRunner) -> None:
    commands = game.dir / "commands.py"
    good = commands.read_text()

    async def scenario() -> None:
        admin, player = MudClient("admin"), MudClient("player")
        port = game.port
        game.make_admin("admin")  # named on the command line (`admin NAME`)
        await admin.connect(port)
        await admin.login("admin", create=False)
        await player.connect(port)
        await player.login("player")
        await admin.expect("player has entered the hall")
        before = len(player.lines)

        commands.write_text(good + BROKEN)
        admin.send("reload")
        await admin.expect(r"reload failed", timeout=90)
        await admin.expect(r"^Traceback")
        await admin.expect(r'in _deep_down')
        await admin.expect(r"RuntimeError: broken on purpose \| marker-7 \|r$")

        commands.write_text(good)
        admin.send("reload")
        done = await admin.expect(r"reload done", timeout=90)
        assert re.search(r"took \d+(\.\d+)? ?s", done), done

        player.send("ping end-of-test")
        await player.expect("pong end-of-test")
        heard = player.lines[before:]
        assert heard == ["pong end-of-test"], f"the player heard about the reloads: {heard}"
        admin.close()
        player.close()

    asyncio.run(scenario())
