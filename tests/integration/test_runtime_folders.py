"""Issue 23: another local user prepares the runtime socket folder, or plants a socket.

Before, `start` took a socket folder another user had made (and that user could then move
the sockets away and plant a fake `supervisor.sock`); the CLI spoke to whatever listened.
Now `start` refuses, in one line, a folder that is not private to us, and a client never
speaks to a socket another uid serves. As root, "another user" is `nobody` (65534).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from benchmarks.client import GameRunner
from ipc.settings import make_private_dirs, runtime_paths

NOBODY = 65534
LONG = "x" * 60 + "/" + "y" * 60  # a game path whose sockets move to XDG_RUNTIME_DIR


@pytest.fixture
def runtime_base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    base = tmp_path / "run"
    base.mkdir(mode=0o1777)
    base.chmod(0o1777)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(base))
    return base


def one_line_refusal(result: subprocess.CompletedProcess[str], folder: Path) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output, output
    line = next(x for x in output.splitlines() if "refusing runtime folder" in x)
    assert str(folder) in line, line
    return line


@pytest.mark.skipif(os.getuid() != 0, reason="making a folder of another user needs root")
def test_start_refuses_a_socket_folder_another_user_made(
    game_factory: type[GameRunner], runtime_base: Path,
) -> None:
    runner = game_factory(name=LONG)
    planted = runtime_paths(runner.dir).sockets.parent  # <base>/hearth-UID
    assert planted.parent == runtime_base
    planted.mkdir(mode=0o700)
    os.chown(planted, NOBODY, NOBODY)
    line = one_line_refusal(runner.cli("start", timeout=60), planted)
    assert f"belongs to uid {NOBODY}" in line
    assert os.stat(planted).st_uid == NOBODY and list(planted.iterdir()) == []
    # the same for a folder anyone may enter, and for a planted link
    os.rmdir(planted)
    planted.mkdir()
    planted.chmod(0o777)
    assert "mode 0777" in one_line_refusal(runner.cli("start", timeout=60), planted)
    os.rmdir(planted)
    elsewhere = runtime_base / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    planted.symlink_to(elsewhere)
    assert "symbolic link" in one_line_refusal(runner.cli("start", timeout=60), planted)
    assert list(elsewhere.iterdir()) == []
    # `dev` and `start --foreground` open the folders in the supervisor itself
    planted.unlink()
    planted.mkdir()
    planted.chmod(0o755)
    foreground = runner.cli("start", "--foreground", timeout=60)
    assert "refusing runtime folder" in foreground.stdout + foreground.stderr
    assert foreground.returncode != 0 and "Traceback" not in foreground.stderr


FAKE_SUPERVISOR = textwrap.dedent("""
    import os, socket, sys
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(sys.argv[1])
    os.setuid(int(sys.argv[2]))  # SO_PEERCRED reports the uid of the listen() call
    sock.listen()
    print("listening", flush=True)
    while True:
        conn, _ = sock.accept()
        conn.sendall(b"")  # says nothing; a client must not wait on it either
""")


@pytest.mark.skipif(os.getuid() != 0, reason="a process of another user needs root")
def test_the_cli_refuses_a_supervisor_socket_another_user_serves(
    game_factory: type[GameRunner],
) -> None:
    runner = game_factory()
    paths = runtime_paths(runner.dir)
    make_private_dirs(paths)  # our own private folder; only the socket is someone else's
    fake = subprocess.Popen([sys.executable, "-c", FAKE_SUPERVISOR, str(paths.control_socket),
                             str(NOBODY)], stdout=subprocess.PIPE, text=True)
    try:
        assert fake.stdout is not None and fake.stdout.readline() == "listening\n"
        result = runner.cli("status", timeout=30)
        output = result.stdout + result.stderr
        assert result.returncode == 1, output
        assert f"peer uid {NOBODY} is not ours" in output and "Traceback" not in output, output
    finally:
        fake.kill()
        fake.wait(10)
        paths.control_socket.unlink(missing_ok=True)
    assert not psutil.pid_exists(fake.pid) or psutil.Process(fake.pid).status() == "zombie"
