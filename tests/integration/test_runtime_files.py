"""Issue 10, item 1: a process that did not create a runtime file never removes it.

A second supervisor started against a running game (through `dev`, `start --foreground`,
or a second daemon that lost the race to a `start` running at the same time) must fail
with a one-line reason and leave the running game's sockets and pid file alone, so that
`status`, `reload` and `stop` keep working.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from benchmarks.client import REPO, GameRunner
from ipc.settings import runtime_paths

WAYS_IN = {
    "dev": ["dev"],
    "start --foreground": ["start", "--foreground"],
    # what the losing one of two simultaneous `start`s runs: both passed the CLI's check
    # before either supervisor wrote its pid file
    "second daemon": None,
}


def second_supervisor(runner: GameRunner, way: str) -> subprocess.CompletedProcess[str]:
    args = WAYS_IN[way]
    if args is None:
        cmd = [sys.executable, "-m", "supervisor", "--game-dir", str(runner.dir)]
    else:
        cmd = [sys.executable, "run.py", "--game-dir", str(runner.dir), *args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60)


def runtime_files(runner: GameRunner) -> dict[str, int]:
    paths = runtime_paths(runner.dir)
    found = {}
    for path in (paths.control_socket, paths.portal_socket, paths.pid_file):
        assert path.exists(), f"{path} is missing"
        found[path.name] = path.stat().st_ino
    return found


@pytest.mark.parametrize("way", list(WAYS_IN))
def test_a_second_supervisor_leaves_the_running_games_files_alone(
    game: GameRunner, way: str,
) -> None:
    before = runtime_files(game)
    supervisor = game.pid_of("supervisor")
    result = second_supervisor(game, way)
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"the second supervisor did not fail:\n{output}"
    assert "already running" in output, output
    assert "Traceback" not in output, output
    assert runtime_files(game) == before, "the second supervisor replaced or removed a file"
    status = game.status()
    assert status["supervisor"]["pid"] == supervisor
    reload = game.cli("reload")
    assert reload.returncode == 0, reload.stdout + reload.stderr
    stop = game.cli("stop")
    assert stop.returncode == 0, stop.stdout + stop.stderr


def test_two_starts_at_once_run_one_game(game_factory: type[GameRunner]) -> None:
    runner = game_factory()
    cmd = [sys.executable, "run.py", "--game-dir", str(runner.dir), "start"]
    procs = [subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for _ in range(2)]
    outputs = [proc.communicate(timeout=120)[0] for proc in procs]
    codes = sorted(proc.returncode for proc in procs)
    runner.remember_pids()
    assert codes == [0, 1], outputs
    assert all("Traceback" not in out for out in outputs), outputs
    assert runner.status()["server"]["state"] == "running"
    reload = runner.cli("reload")
    assert reload.returncode == 0, reload.stdout + reload.stderr
    stop = runner.cli("stop")
    assert stop.returncode == 0, stop.stdout + stop.stderr
