"""A server that takes longer than a heartbeat interval to import its game (or load a big
world) still starts and reloads: its hello reaches the supervisor before any heartbeat."""

from __future__ import annotations

from benchmarks.client import GameRunner

SLOW = '''
import time

time.sleep(1.3)  # longer than the 1 s heartbeat interval, all in one blocking step
'''


def test_a_slow_import_starts_and_reloads(game_factory: type[GameRunner]) -> None:
    game = game_factory()
    (game.dir / "slow.py").write_text(SLOW)
    with (game.dir / "__init__.py").open("a") as init:
        init.write("from . import slow  # noqa: E402,F401\n")
    game.start()
    result = game.cli("reload")
    assert result.returncode == 0, result.stdout + result.stderr
