"""Issue 5: supervision with real processes: orphans, stale files, health recycle, dev, status."""

from __future__ import annotations

import asyncio
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import psutil
import pytest

from benchmarks.client import REPO, GameRunner, MudClient, kill9
from ipc.settings import make_private_dirs, runtime_paths
from supervisor.cli import wait_pid_gone
from supervisor.pidfile import PidRecord

MB = 1024 * 1024

HOG_COMMAND = '''

_HOGGED: list[bytes] = []


@command("hog", logged_in=None, help="hog MB - keep MB megabytes of memory (tests only).")
def hog(ctx: Context) -> None:
    _HOGGED.append(b"\\x01" * (int(ctx.args) * 1024 * 1024))
    ctx.session.msg(f"hogged {ctx.args} MB")
'''

GREETING_COMMAND = '''

@command("greet", logged_in=None, help="greet - say which version of the code runs.")
def greet(ctx: Context) -> None:
    ctx.session.msg("greetings from {version}")
'''


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Check `condition` until it holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


def test_kill_9_of_the_supervisor_leaves_no_child_running(game: GameRunner) -> None:
    status = game.status()
    children = [status[role]["pid"] for role in ("portal", "server")]
    kill9(status["supervisor"]["pid"])
    for pid in children:  # pidfd: woken by the exit itself
        assert wait_pid_gone(pid, 5.0), f"child {pid} outlived its supervisor by 5s"
    # the dead run's pid file and sockets are recognised as stale, and start works again
    again = game.cli("status")
    assert again.returncode == 3
    assert "stale pid file" in again.stderr and "not running" in again.stderr
    game.start()
    assert game.status()["server"]["state"] == "running"


@pytest.mark.parametrize("pid_file", ["reused", "plain"])
def test_stale_pid_file_and_socket_files_do_not_stop_start(
    game_factory: type[GameRunner], pid_file: str,
) -> None:
    runner = game_factory()
    paths = runtime_paths(runner.dir)
    make_private_dirs(paths)
    me = psutil.Process()
    if pid_file == "reused":  # a live pid, but not the process that wrote the file
        record = PidRecord(pid=me.pid, create_time=me.create_time() - 3600)
        paths.pid_file.write_bytes(msgspec.json.encode(record))
    else:  # another tool's style: just a number, of a live process
        paths.pid_file.write_text(f"{me.pid}\n")
    for path in (paths.control_socket, paths.portal_socket):
        with socket.socket(socket.AF_UNIX) as sock:  # bound, then nobody listens
            sock.bind(str(path))
    assert paths.control_socket.exists()
    runner.start()
    status = runner.status()
    assert status["supervisor"]["pid"] != me.pid
    assert status["server"]["state"] == "running"


def test_server_over_its_memory_limit_is_recycled_with_players_connected(
    game_factory: type[GameRunner],
) -> None:
    runner = game_factory()
    with (runner.dir / "settings.toml").open("a") as settings:
        settings.write("[supervisor.health]\ninterval = 0.5\nserver_max_rss_mb = 150\n")
    with (runner.dir / "commands.py").open("a") as commands:
        commands.write(HOG_COMMAND)
    runner.start()
    old = runner.pid_of("server")

    async def scenario() -> None:
        alice = MudClient("alice")
        await alice.connect(runner.port)
        await alice.login("alice")
        alice.send("hog 200")
        await alice.expect("^hogged 200 MB$")
        await asyncio.to_thread(wait_until, lambda: runner.pid_of("server") != old, 30.0,
                                "the server to be recycled")
        for n in range(5):
            alice.send(f"ping alice-{n}")
            await alice.expect(rf"^pong alice-{n}$")
        alice.send("who")
        await alice.expect(r"Players online \(1\): alice")
        assert not alice.closed
        alice.close()

    asyncio.run(scenario())
    assert wait_pid_gone(old, 10.0)
    server = runner.status()["server"]
    assert server["state"] == "running"
    events = [e for e in server["history"] if e["kind"] == "health"]
    assert len(events) == 1 and events[0]["pid"] == old and "rss" in events[0]["reason"]
    assert server["rss"] < 150 * MB  # the fresh server is within the limit and stays
    log = (runner.dir / ".hearth" / "logs" / "supervisor.log").read_text()
    assert "recycling it through a reload" in log


class DevProcess:
    """`run.py dev` as a child of the test, its output read line by line on a thread."""

    def __init__(self, game_dir: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "run.py", "--game-dir", str(game_dir), "dev"], cwd=REPO,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=dict(os.environ, NO_COLOR="1"))
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def expect(self, text: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(left, 0.01))
            except queue.Empty:
                raise AssertionError(f"dev printed no {text!r} within {timeout}s; "
                                     f"last lines:\n" + "\n".join(self.seen[-20:])) from None
            self.seen.append(line)
            if text in line:
                return line

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=60)


@pytest.fixture
def dev(game_factory: type[GameRunner]) -> Iterator[tuple[GameRunner, DevProcess]]:
    runner = game_factory()
    with (runner.dir / "commands.py").open("a") as commands:
        commands.write(GREETING_COMMAND.format(version="v1"))
    process = DevProcess(runner.dir)
    runner.pids.add(process.proc.pid)
    try:
        process.expect("dev: watching")
        runner.remember_pids()
        yield runner, process
    finally:
        if process.proc.poll() is None:
            process.stop()


def test_dev_reloads_on_save_and_refuses_a_broken_edit(
    dev: tuple[GameRunner, DevProcess],
) -> None:
    runner, process = dev
    commands = runner.dir / "commands.py"
    original = commands.read_text()
    first = runner.pid_of("server")

    async def scenario() -> None:
        alice = MudClient("alice")
        await alice.connect(runner.port)
        await alice.login("alice")
        alice.send("greet")
        await alice.expect("^greetings from v1$")

        commands.write_text(original.replace("greetings from v1", "greetings from v2"))
        await asyncio.to_thread(process.expect, "dev: reloaded")
        alice.send("greet")
        await alice.expect("^greetings from v2$")
        second = runner.pid_of("server")
        assert second != first

        commands.write_text(original + "\ndef broken(:\n")
        await asyncio.to_thread(process.expect, "does not compile")
        await asyncio.to_thread(process.expect, "not reloading")
        alice.send("ping still-here")
        await alice.expect("^pong still-here$")
        assert runner.pid_of("server") == second

        commands.write_text(original.replace("greetings from v1", "greetings from v3"))
        await asyncio.to_thread(process.expect, "dev: reloaded")
        alice.send("greet")
        await alice.expect("^greetings from v3$")
        assert not alice.closed
        alice.close()

    asyncio.run(scenario())
    assert process.stop() == 0
    runner.remember_pids()


def test_status_json_figures_match_psutil(game: GameRunner) -> None:
    status = game.status()
    for role in ("supervisor", "portal", "server"):
        info = status[role]
        proc = psutil.Process(info["pid"])
        rss = proc.memory_info().rss
        assert abs(info["rss"] - rss) <= max(0.2 * rss, 4 * MB), (role, info["rss"], rss)
        assert 0.0 <= info["cpu_percent"] < 100.0 * (psutil.cpu_count() or 1)
        assert abs(info["uptime"] - (time.time() - proc.create_time())) < 2.0
        assert abs(info["threads"] - proc.num_threads()) <= 2
        assert abs(info["open_files"] - proc.num_fds()) <= 4
        assert info["over_limit"] is None
    assert status["portal"]["connections"] >= 1  # the telnet listener
    table = game.cli("status")
    assert table.returncode == 0
    header = table.stdout.splitlines()[0].split()
    assert header[:7] == ["process", "pid", "state", "uptime", "restarts", "rss", "cpu"]
    assert "sessions" in header and "ports" in header
    assert f"telnet:{status['ports']['telnet']}" in table.stdout


def test_foreground_speaks_sd_notify_and_takes_signals_through_the_queue(
    game_factory: type[GameRunner], tmp_path: Path,
) -> None:
    runner = game_factory()
    address = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(address)
        notify.settimeout(60)
        proc = subprocess.Popen(
            [sys.executable, "run.py", "--game-dir", str(runner.dir), "start", "--foreground"],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=dict(os.environ, NOTIFY_SOCKET=address, WATCHDOG_USEC="400000"))
        runner.pids.add(proc.pid)

        def receive(wanted: str) -> None:
            while (message := notify.recv(4096).decode()) != wanted:
                assert message.startswith(("WATCHDOG=", "STATUS=", "READY=")), message

        try:
            receive("READY=1")  # only once the server is attached
            runner.remember_pids()
            assert runner.status()["server"]["state"] == "running"
            receive("WATCHDOG=1")
            receive("WATCHDOG=1")
            old = runner.pid_of("server")
            proc.send_signal(signal.SIGHUP)  # reload
            wait_until(lambda: runner.pid_of("server") != old, 30.0, "the SIGHUP reload")
            runner.remember_pids()
            log = runner.dir / ".hearth" / "logs" / "supervisor.log"
            log.rename(log.with_suffix(".log.1"))  # as logrotate does
            proc.send_signal(signal.SIGUSR1)
            wait_until(lambda: log.exists() and "log files reopened" in log.read_text(), 10.0,
                       "SIGUSR1 to reopen the log files")
            proc.send_signal(signal.SIGTERM)
            receive("STOPPING=1")
            assert proc.wait(timeout=60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


def test_crash_loop_gives_up_with_a_clear_status_and_a_good_reload_recovers(
    game_factory: type[GameRunner],
) -> None:
    runner = game_factory({"supervisor": {"crash_loop_limit": 3, "backoff_max": 0.5}})
    runner.start()
    commands = runner.dir / "commands.py"
    original = commands.read_text()
    commands.write_text(original + "\nraise RuntimeError('broken on purpose')\n")
    first = runner.pid_of("server")
    kill9(first)  # a crash; every restart now fails at import
    wait_until(lambda: runner.status()["server"]["state"] == "fatal", 30.0, "the give-up")
    server = runner.status()["server"]
    kinds = [event["kind"] for event in server["history"]]
    assert kinds == ["crash", "startup_failure", "startup_failure"]
    assert server["pid"] is None and server["restarts"] == 2
    assert "startup_failure" in server["last_exit"]
    refused = runner.cli("reload")
    assert refused.returncode == 1 and "broken on purpose" in refused.stderr
    commands.write_text(original)
    fixed = runner.cli("reload")
    assert fixed.returncode == 0, fixed.stderr
    runner.remember_pids()
    assert runner.status()["server"]["state"] == "running"
