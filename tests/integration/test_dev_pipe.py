"""Issue 21, item 3: `hearth dev 2>&1 | tee dev.log`, then Ctrl-C, which ends `tee` too.

The supervisor's stdout and stderr are a pipe whose reader has gone: every line it prints
while stopping meets a broken pipe. It must still stop cleanly on SIGINT or SIGTERM: every
process exits, and no pid file or socket is left (the fixture checks those too).
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time

import psutil
import pytest

from benchmarks.client import REPO, GameRunner

# each command, and what it prints once the game is up (dev: once its watcher runs)
COMMANDS = {"dev": (["dev"], b"watching"),
            "foreground": (["start", "--foreground"], b"Hearth is running")}


def read_until(fd: int, marker: bytes, timeout: float) -> bytes:
    """What the pipe gave until `marker` appeared; AssertionError after `timeout`."""
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen:
        left = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(left, 0))
        if not ready:
            raise AssertionError(f"no {marker!r} within {timeout}s: {seen[-2000:]!r}")
        chunk = os.read(fd, 65536)
        if not chunk:
            raise AssertionError(f"dev's output ended before {marker!r}: {seen[-2000:]!r}")
        seen += chunk
    return seen


def gone(pids: list[int], timeout: float) -> list[int]:
    """The pids still alive (not zombies) after waiting up to `timeout` for them."""
    procs = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    return [p.pid for p in alive if p.status() != psutil.STATUS_ZOMBIE]


@pytest.mark.parametrize(("command", "signum"), [("dev", signal.SIGINT), ("dev", signal.SIGTERM),
                                                ("foreground", signal.SIGTERM)])
def test_a_supervisor_stops_although_its_output_pipe_is_broken(
    game_factory: type[GameRunner], command: str, signum: int,
) -> None:
    runner = game_factory()
    args, ready = COMMANDS[command]
    read_end, write_end = os.pipe()
    dev = subprocess.Popen([sys.executable, "run.py", "--game-dir", str(runner.dir), *args],
                           cwd=REPO, stdin=subprocess.DEVNULL, stdout=write_end,
                           stderr=write_end, start_new_session=True)
    os.close(write_end)
    runner.pids.add(dev.pid)
    try:
        read_until(read_end, ready, 60)
        runner.remember_pids()
        children = [runner.pid_of("portal"), runner.pid_of("server")]
    finally:
        os.close(read_end)  # `tee` has ended: every later write meets a broken pipe
    os.killpg(dev.pid, signum)  # Ctrl-C signals the terminal's foreground group
    try:
        dev.wait(timeout=30)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{command} ignored {signal.Signals(signum).name} with a broken "
                             f"stdout: still running after 30 s") from None
    assert not gone(children, 10), "a child outlived the supervisor"
    state = runner.dir / ".hearth"
    assert not (state / "supervisor.pid").exists(), "the pid file was left behind"
    assert not list(state.glob("*.sock")), f"sockets left: {list(state.glob('*.sock'))}"


def test_dev_prints_a_broken_reloads_traceback_once(game_factory: type[GameRunner]) -> None:
    """Issue 21, item 7: the new server's traceback came both as its log lines and again
    inside dev's "reload refused" note."""
    runner = game_factory()
    read_end, write_end = os.pipe()
    dev = subprocess.Popen([sys.executable, "run.py", "--game-dir", str(runner.dir), "dev"],
                           cwd=REPO, stdin=subprocess.DEVNULL, stdout=write_end,
                           stderr=write_end, start_new_session=True,
                           env={**os.environ, "NO_COLOR": "1"})
    os.close(write_end)
    runner.pids.add(dev.pid)
    try:
        read_until(read_end, COMMANDS["dev"][1], 60)
        runner.remember_pids()
        with (runner.dir / "commands.py").open("a") as source:
            source.write("\nraise RuntimeError('boom at import')\n")
        seen = read_until(read_end, b"reload refused", 60).decode()
        if "\n" not in seen[seen.index("reload refused"):]:  # the rest of that note's line
            seen += read_until(read_end, b"\n", 10).decode()
    finally:
        os.killpg(dev.pid, signal.SIGTERM)
        os.close(read_end)
        dev.wait(timeout=30)
    tail = seen[seen.index("commands.py"):]  # from the edit on
    assert tail.count("Traceback (most recent call last)") == 1, tail
    assert tail.count("RuntimeError: boom at import") <= 2, tail  # the traceback, the note
