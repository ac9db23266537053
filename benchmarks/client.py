"""A small telnet MUD client for tests and benchmarks, plus helpers to run a game.

`MudClient` reads lines (telnet commands and ANSI colour stripped) into a list and lets a
caller wait, with a timeout, for a line matching a pattern. It answers no telnet options,
so the portal settles its negotiation on its own timeout: the plainest client there is.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
ANSI = re.compile(rb"\x1b\[[0-9;]*[A-Za-z]")
IAC = 255
SE, SB = 240, 250


def strip_telnet(data: bytes, state: dict[str, Any]) -> bytes:
    """Remove telnet commands (stateful across reads); IAC IAC becomes 0xff."""
    out = bytearray()
    mode = state.get("mode", "data")
    for byte in data:
        if mode == "data":
            if byte == IAC:
                mode = "iac"
            else:
                out.append(byte)
        elif mode == "iac":
            if byte == IAC:
                out.append(byte)
                mode = "data"
            elif byte == SB:
                mode = "sb"
            elif 251 <= byte <= 254:
                mode = "option"
            else:
                mode = "data"
        elif mode == "option":
            mode = "data"
        elif mode == "sb":
            if byte == IAC:
                mode = "sb_iac"
        elif mode == "sb_iac":
            mode = "data" if byte == SE else "sb"
    state["mode"] = mode
    return bytes(out)


class MudClient:
    def __init__(self, name: str = "") -> None:
        self.name = name
        self.lines: list[str] = []
        self.cursor = 0
        self.closed = False
        self._changed = asyncio.Event()
        self._partial = b""
        self._telnet: dict[str, Any] = {}
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None

    async def connect(self, port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
        self._reader, self._writer = await asyncio.wait_for(
            asyncio.open_connection(host, port), timeout)
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._reader is not None
        try:
            while True:
                data = await self._reader.read(65536)
                if not data:
                    break
                self._feed(data)
        except (ConnectionError, OSError):
            pass
        finally:
            if self._partial:
                self.lines.append(self._partial.decode("utf-8", "replace"))
                self._partial = b""
            self.closed = True
            self._changed.set()

    def _feed(self, data: bytes) -> None:
        text = self._partial + ANSI.sub(b"", strip_telnet(data, self._telnet))
        *complete, self._partial = text.split(b"\n")
        for raw in complete:
            self.lines.append(raw.rstrip(b"\r").decode("utf-8", "replace"))
        self._changed.set()

    def send(self, line: str) -> None:
        assert self._writer is not None
        self._writer.write(line.encode() + b"\r\n")

    async def expect(self, pattern: str, timeout: float = 15.0) -> str:
        """The next line (after the cursor) that matches `pattern`; moves the cursor past it."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            for index in range(self.cursor, len(self.lines)):
                if regex.search(self.lines[index]):
                    self.cursor = index + 1
                    return self.lines[index]
            if self.closed:
                raise AssertionError(f"{self.name}: connection closed while waiting for "
                                     f"{pattern!r}; last lines: {self.lines[-5:]}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{self.name}: no line matching {pattern!r} within "
                                     f"{timeout}s; last lines: {self.lines[-8:]}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                pass

    async def login(self, name: str, password: str = "secret1", create: bool = True) -> None:
        await self.expect("connect <username> <password>")
        self.send(f"{'create' if create else 'connect'} {name} {password}")
        await self.expect("Hearth Hall")

    async def wait_closed(self, timeout: float = 10.0) -> None:
        if self._task is not None:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._task is not None:
            self._task.cancel()


# ---------------------------------------------------------------- running a game


class GameRunner:
    """A game directory in a temporary folder, driven through `run.py`."""

    def __init__(self, root: Path, settings: dict[str, dict[str, Any]] | None = None) -> None:
        self.dir = root / "game"
        self.pids: set[int] = set()
        run([sys.executable, "run.py", "init", str(self.dir)], timeout=30)
        self.write_settings(settings or {})

    def write_settings(self, overrides: dict[str, dict[str, Any]]) -> None:
        sections: dict[str, dict[str, Any]] = {
            "portal": {"telnet_port": 0, "negotiation_timeout": 0.3},
            "supervisor": {"start_timeout": 30.0, "hang_timeout": 3.0},
        }
        for section, values in overrides.items():
            sections.setdefault(section, {}).update(values)
        lines = []
        for section, values in sections.items():
            lines.append(f"[{section}]")
            lines.extend(f"{key} = {json.dumps(value)}" for key, value in values.items())
        (self.dir / "settings.toml").write_text("\n".join(lines) + "\n")

    def cli(self, *args: str, timeout: float = 90.0, check: bool = False
            ) -> subprocess.CompletedProcess[str]:
        return run([sys.executable, "run.py", "--game-dir", str(self.dir), *args],
                   timeout=timeout, check=check)

    def start(self) -> None:
        result = self.cli("start")
        assert result.returncode == 0, f"start failed:\n{result.stdout}\n{result.stderr}"
        self.remember_pids()

    def status(self) -> dict[str, Any]:
        result = self.cli("status", "--json", timeout=30)
        data: dict[str, Any] = json.loads(result.stdout)
        return data

    def remember_pids(self) -> None:
        status = self.status()
        for role in ("supervisor", "portal", "server"):
            pid = status.get(role, {}).get("pid")
            if pid:
                self.pids.add(int(pid))

    @property
    def port(self) -> int:
        return int(self.status()["ports"]["telnet"])

    def pid_of(self, role: str) -> int:
        return int(self.status()[role]["pid"])

    def cleanup(self) -> list[str]:
        """Stop the game; kill by pid whatever it started and is still running."""
        self.cli("stop", timeout=60)
        leftovers = []
        for proc in self._tree():
            leftovers.append(f"{proc.pid} {' '.join(proc.cmdline())}")
            proc.kill()
        return leftovers

    def _tree(self) -> Iterable[psutil.Process]:
        seen: dict[int, psutil.Process] = {}
        for pid in self.pids:
            try:
                proc = psutil.Process(pid)
                if proc.status() == psutil.STATUS_ZOMBIE:
                    continue
                seen[pid] = proc
                for child in proc.children(recursive=True):
                    seen[child.pid] = child
            except psutil.Error:
                continue
        # children of ours whose parent already died are re-parented: find them by env
        for proc in psutil.process_iter(["pid", "environ"]):
            try:
                env = proc.info.get("environ") or {}
                if str(self.dir) in env.get("HEARTH_CHILD", ""):
                    seen[proc.pid] = proc
            except psutil.Error:
                continue
        return [p for p in seen.values() if p.is_running() and p.status() != "zombie"]


def run(cmd: list[str], timeout: float, check: bool = False) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          check=check, env=env)


def kill9(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
