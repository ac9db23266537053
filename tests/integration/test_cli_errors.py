"""Issue 10, item 4: the command line fails in one line, never with a traceback."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

from benchmarks.client import REPO, GameRunner


def hearth(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "run.py", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_a_taken_port_is_named_with_its_holder(game_factory: type[GameRunner]) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        runner = game_factory({"portal": {"telnet_port": port}})
        result = runner.cli("start")
    line = one_line_error(result, 1)
    assert f"telnet on 127.0.0.1:{port}: the port is in use" in line, line
    assert f"by pid {os.getpid()} (" in line, line  # this test's process holds it


def test_game_dir_naming_a_file_or_nothing(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("")
    for command in ("start", "status", "stop", "logs"):
        line = one_line_error(hearth("--game-dir", str(afile), command), 2)
        assert "is a file, not a game directory" in line, line
    missing = tmp_path / "missing"
    line = one_line_error(hearth("--game-dir", str(missing), "status"), 2)
    assert f"game directory {missing} does not exist" in line, line


def test_settings_error_in_settings_words(game_factory: type[GameRunner]) -> None:
    runner = game_factory({"portal": {"max_lin": 100}})
    line = one_line_error(runner.cli("start"), 2)
    assert line.endswith("unknown setting `portal.max_lin` (did you mean `max_line`?)"), line


def test_logs_n_0_prints_nothing_and_logs_h_documents_its_options(
    game: GameRunner,
) -> None:
    none = game.cli("logs", "-n", "0")
    assert none.returncode == 0 and none.stdout == "", none.stdout[:500]
    two = game.cli("logs", "-n", "2")
    assert len(two.stdout.splitlines()) == 2, two.stdout
    usage = game.cli("logs", "-h").stdout
    for option in (r"-f, --follow", r"-n N, --lines N", r"--process \{[a-z,]+\}"):
        assert re.search(rf"^\s+{option}\s+\w", usage, re.M) or re.search(
            rf"^\s+{option}\n\s+\w", usage, re.M), f"{option} is not explained:\n{usage}"
