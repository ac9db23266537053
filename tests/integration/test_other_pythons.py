"""Issue 10, item 5: Hearth installs and runs on every supported Python found here.

The suite itself runs on the interpreter it is given. This test takes each *other*
supported interpreter it finds on the machine (pyenv versions, /usr/bin/python3.X, PATH),
makes a venv in a temporary folder, installs a copy of the project into it with plain
`pip install` (dependencies included, no editable link back to this tree), and runs the
smoke test with that venv's `hearth` command: start, connect, a command, stop. It skips
when no other supported interpreter is installed. Each interpreter takes ~20 s with a warm
pip cache (bounded by the step timeouts below).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from benchmarks.client import REPO, MudClient

SUPPORTED = ((3, 11), (3, 12), (3, 13))  # pyproject's requires-python: >=3.11,<3.14
COPY_IGNORE = shutil.ignore_patterns(".venv", ".git", "__pycache__", "*.pyc", ".hearth",
                                     "build", "*.egg-info", "results", ".mypy_cache",
                                     ".ruff_cache", ".pytest_cache", ".hypothesis")


def candidates(major: int, minor: int) -> list[Path]:
    pyenv = sorted(Path.home().glob(f".pyenv/versions/{major}.{minor}.*/bin/python3"),
                   reverse=True)
    on_path = shutil.which(f"python{major}.{minor}")
    return [*pyenv, Path(f"/usr/bin/python{major}.{minor}"),
            *([Path(on_path)] if on_path else [])]


def version_of(python: Path) -> tuple[int, int] | None:
    try:
        out = subprocess.run([str(python), "-c", "import sys, venv; print(*sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    parts = out.stdout.split()
    return (int(parts[0]), int(parts[1])) if out.returncode == 0 and len(parts) == 2 else None


def other_interpreters() -> dict[str, Path]:
    """One working interpreter (with `venv`) per supported version but the running one."""
    found: dict[str, Path] = {}
    for version in SUPPORTED:
        if version == sys.version_info[:2]:
            continue
        for python in candidates(*version):
            if python.exists() and version_of(python) == version:
                found[f"{version[0]}.{version[1]}"] = python
                break
    return found


INTERPRETERS = other_interpreters()
PARAMS = [pytest.param(python, id=name) for name, python in INTERPRETERS.items()] or [
    pytest.param(None, id="none", marks=pytest.mark.skip(
        reason="no other supported Python (3.11-3.13) is installed on this machine"))]


def step(cmd: list[str], cwd: Path, timeout: float) -> str:
    try:
        result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"`{' '.join(cmd)}` did not finish within {timeout}s") from None
    assert result.returncode == 0, f"`{' '.join(cmd)}` failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("python", PARAMS)
def test_install_and_smoke_on_another_python(python: Path, tmp_path: Path) -> None:
    source, venv, game = tmp_path / "source", tmp_path / "venv", tmp_path / "game"
    shutil.copytree(REPO, source, ignore=COPY_IGNORE)  # pip builds in its source folder
    step([str(python), "-m", "venv", str(venv)], tmp_path, 60)
    step([str(venv / "bin" / "pip"), "install", "-q", str(source)], tmp_path, 150)
    hearth = str(venv / "bin" / "hearth")
    step([hearth, "init", str(game)], tmp_path, 30)
    (game / "settings.toml").write_text("[portal]\ntelnet_port = 0\nnegotiation_timeout = 0.3\n")
    started: list[psutil.Process] = []
    try:
        step([hearth, "start", "--game-dir", str(game)], tmp_path, 90)
        status = json.loads(step([hearth, "status", "--json", "--game-dir", str(game)],
                                 tmp_path, 30))
        started = [psutil.Process(status[role]["pid"])
                   for role in ("supervisor", "portal", "server")]
        server = started[-1]
        assert Path(server.exe()).resolve() == python.resolve(), server.exe()
        asyncio.run(ping(int(status["ports"]["telnet"])))
        step([hearth, "stop", "--game-dir", str(game)], tmp_path, 60)
    finally:
        for proc in started:  # only if stop failed; psutil checks the pid is still ours
            with contextlib.suppress(psutil.Error):
                proc.kill()


async def ping(port: int) -> None:
    client = MudClient("other-python")
    await client.connect(port)
    await client.expect("Welcome to")
    client.send("ping smoke")
    await client.expect("^pong smoke$")
    client.close()
