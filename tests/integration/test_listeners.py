"""Issue 13, part 1: the supervisor holds the listening sockets, so a portal that dies or
restarts never closes the port. Real processes, raw loopback sockets."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.client import REPO, GameRunner, MudClient, kill9

SCREEN = b"Welcome to"
TIMEOUT = 40.0


async def reaches_screen(port: int) -> str:
    """Connect once: "screen", "refused", or "dropped" (closed before the screen)."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port), TIMEOUT)
    except ConnectionRefusedError:
        return "refused"
    seen = b""
    try:
        async with asyncio.timeout(TIMEOUT):
            while SCREEN not in seen:
                chunk = await reader.read(4096)
                if not chunk:
                    return "dropped"
                seen += chunk
        return "screen"
    except (ConnectionResetError, TimeoutError):
        return "dropped"
    finally:
        writer.close()


async def connect_throughout(port: int, event: asyncio.Event, kill_at: list[float],
                             ) -> list[tuple[float, str]]:
    """Open a connection every 50 ms until `event` (bounded: at most 300), each waiting
    for the connection screen; returns (opened_at, outcome) for each."""
    tasks: list[tuple[float, asyncio.Task[str]]] = []
    for _ in range(300):
        if event.is_set():
            break
        tasks.append((time.monotonic(), asyncio.create_task(reaches_screen(port))))
        await asyncio.sleep(0.05)
    return [(opened, await task) for opened, task in tasks]


def wait_for_new_pid(game: GameRunner, role: str, old: int, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = game.status().get(role, {}).get("pid")
        if pid and int(pid) != old and game.status()["server"].get("state") == "running":
            game.pids.add(int(pid))
            return int(pid)
        time.sleep(0.2)
    raise AssertionError(f"no new {role} replaced {old} within {timeout:.0f}s")


def test_kill_9_of_the_portal_refuses_no_connection(game: GameRunner) -> None:
    port = game.port
    old_portal = game.pid_of("portal")
    server = game.pid_of("server")

    async def scenario() -> list[tuple[float, str]]:
        done = asyncio.Event()
        kill_at: list[float] = []
        clients = asyncio.create_task(connect_throughout(port, done, kill_at))
        await asyncio.sleep(0.5)
        kill_at.append(time.monotonic())
        kill9(old_portal)
        await asyncio.to_thread(wait_for_new_pid, game, "portal", old_portal)
        await asyncio.sleep(0.5)  # a few connections to the new portal too
        done.set()
        outcomes = await clients
        outcomes.append((kill_at[0], "kill"))
        return outcomes

    outcomes = asyncio.run(scenario())
    killed = next(at for at, what in outcomes if what == "kill")
    results = [(at, what) for at, what in outcomes if what != "kill"]
    assert not [r for r in results if r[1] == "refused"], results
    after = [what for at, what in results if at > killed + 0.05]
    assert len(after) >= 3, results
    assert all(what == "screen" for what in after), results
    assert game.port == port  # the same port, held by the supervisor throughout
    # the server stayed up and re-attached to the new portal: it still serves logins
    assert game.pid_of("server") == server
    assert game.status()["server"]["restarts"] == 0

    async def play() -> None:
        client = MudClient("after")
        await client.connect(port)
        await client.login("survivor")
        client.send("who")
        await client.expect("Players online.*survivor")
        client.close()

    asyncio.run(play())


def test_reboot_keeps_the_port_open(game: GameRunner) -> None:
    port = game.port

    async def scenario() -> list[str]:
        reboot = asyncio.create_task(asyncio.to_thread(game.cli, "reboot", timeout=60))
        outcomes = await asyncio.gather(*[
            asyncio.create_task(reaches_screen(port)) for _ in range(5)])
        result = await reboot
        assert result.returncode == 0, result.stdout + result.stderr
        after = await reaches_screen(port)
        return [*outcomes, after]

    outcomes = asyncio.run(scenario())
    game.remember_pids()
    assert "refused" not in outcomes, outcomes
    assert outcomes[-1] == "screen"
    assert game.port == port


def test_port_in_use_is_one_line(game_factory: type[GameRunner]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        game = game_factory({"portal": {"telnet_port": port}})
        result = game.cli("start", timeout=60)
    assert result.returncode == 1
    assert f"cannot listen for telnet on 127.0.0.1:{port}: the port is in use" in (
        result.stdout + result.stderr)
    assert "Traceback" not in result.stdout + result.stderr


def test_systemd_socket_activation(game_factory: type[GameRunner], tmp_path: Path) -> None:
    """`start --foreground` with LISTEN_FDS takes systemd's socket for telnet."""
    game = game_factory()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    fd = listener.fileno()
    # sd_listen_fds(3): the socket is fd 3 and LISTEN_PID is the supervisor's own pid,
    # which `exec` keeps from the shell.
    script = (f'exec 3<&{fd}; LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=telnet exec '
              f'"{sys.executable}" run.py --game-dir "{game.dir}" start --foreground')
    proc = subprocess.Popen(["bash", "-c", script], cwd=REPO, pass_fds=(fd,),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={k: v for k, v in os.environ.items()
                                 if not k.startswith("LISTEN_")})
    listener.close()  # the supervisor holds it now
    game.pids.add(proc.pid)
    try:
        deadline = time.monotonic() + TIMEOUT
        while game.cli("status", "--json", timeout=30).returncode != 0:
            assert proc.poll() is None, proc.communicate(timeout=5)[0]
            assert time.monotonic() < deadline, "the supervisor never answered status"
            time.sleep(0.3)
        assert asyncio.run(_wait_screen(game, port)) == "screen"
        assert game.port == port
        game.remember_pids()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            output = proc.communicate(timeout=60)[0].decode(errors="replace")
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("supervisor did not stop on SIGTERM")
    assert "listening sockets from systemd: telnet" in output


async def _wait_screen(game: GameRunner, port: int) -> str:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        status = await asyncio.to_thread(game.status)
        if status.get("server", {}).get("state") == "running":
            return await reaches_screen(port)
        await asyncio.sleep(0.3)
    return "server never ran"
