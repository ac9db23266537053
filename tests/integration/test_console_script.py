"""Issue 10, item 9: the package installs a `hearth` command; `--game-dir` goes either side.

This is also the suite's one deliberate smoke test of the bundled `game/`: it runs a game
made by `hearth init`, and asserts nothing about its texts (every other test runs
tests/game, so the bundled game can be rewritten freely)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from benchmarks.client import GameRunner, MudClient

HEARTH = Path(sys.executable).parent / "hearth"


def hearth(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert HEARTH.exists(), f"{HEARTH} is missing: the package installs no `hearth` command"
    # run from elsewhere than the repository: the command must not rely on the cwd
    return subprocess.run([str(HEARTH), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def test_hearth_command_runs_a_game_with_game_dir_after_the_command(
    game_factory: type[GameRunner], tmp_path: Path,
) -> None:
    created = hearth("init", "fresh", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    assert "hearth --game-dir fresh start" in created.stdout, created.stdout
    assert (tmp_path / "fresh" / "settings.toml").exists()

    # the bundled game as `init` made it, on a free port, cleaned up by the fixture
    runner = game_factory(name="scripted", template=tmp_path / "fresh")
    game = str(runner.dir)
    started = hearth("start", "--game-dir", game, cwd=tmp_path)
    assert started.returncode == 0, started.stdout + started.stderr
    runner.remember_pids()
    status = json.loads(hearth("status", "--json", "--game-dir", game, cwd=tmp_path).stdout)
    assert status["running"] and status["game_dir"] == str(runner.dir.resolve())

    async def ping() -> None:
        client = MudClient("script")
        await client.connect(int(status["ports"]["telnet"]))
        await client.expect(r"\S")  # the bundled game's screen, whatever it says
        client.close()

    asyncio.run(ping())
    stopped = hearth("--game-dir", game, "stop", cwd=tmp_path)  # and before the command
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
