"""`run.py dev`: the supervisor in the foreground, every log on the terminal, reload on save.

Theory of operation
-------------------
This is an ordinary foreground supervisor (same pid file, control socket and log files as
`start`), with two additions:

- every line written to a log file is also printed to the terminal, coloured by process;
- once the game is up, `watchfiles` (inotify) watches the game folder. Each debounced
  batch of saved changes to `*.py` or `settings.toml` is checked first: Python files are
  compiled, the settings decoded. A file that does not compile is reported with its error
  and nothing is reloaded: the running server keeps going, and the file stays on a
  "broken" list that is checked again with every later batch. Only when nothing is broken
  does the watcher enqueue a reload on the supervisor's command queue, as `run.py reload`
  does, so it queues behind any other command. The reload path refuses a new server that fails to
  import, so a change that compiles but breaks at import also leaves the old one running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import traceback
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

import watchfiles

from ipc.frames import Command
from ipc.settings import RUNTIME_DIR, SETTINGS_FILE, SettingsError, load_settings
from supervisor.daemon import run_supervisor
from supervisor.logs import log_into, stamp
from supervisor.main import Supervisor

log = logging.getLogger("dev")

DEBOUNCE_MS = 300
STEP_MS = 100
PROCESS_COLOURS = {"supervisor": "35", "portal": "36", "server": "32"}
LEVEL_COLOURS = {"ERROR": "1;31", "CRITICAL": "1;31", "WARNING": "33", "Traceback": "31"}


class Terminal:
    """Prints log lines, coloured by process and level when the output is a terminal."""

    def __init__(self, out: TextIO = sys.stdout, colour: bool | None = None) -> None:
        self.out: TextIO | None = out
        if colour is None:
            colour = bool(os.environ.get("FORCE_COLOR")) or (
                out.isatty() and not os.environ.get("NO_COLOR"))
        self.colour = colour

    def paint(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.colour and code else text

    def line(self, name: str, pid: int, text: str) -> None:
        tag = self.paint(PROCESS_COLOURS.get(name, ""), f"{name:<10} {pid:>7}")
        level = text.split(" ", 1)[0]
        body = self.paint(LEVEL_COLOURS.get(level, ""), text)
        self.print(f"{stamp()[11:]} {tag} | {body}")

    def note(self, text: str, ok: bool = True) -> None:
        self.print(self.paint("1;32" if ok else "1;31", f"dev: {text}"))

    def print(self, text: str) -> None:
        """Print one line; never raises. A terminal that went away (`dev | tee log`, and
        Ctrl-C ended `tee`) silences this terminal instead of failing the caller, which may
        be the supervisor stopping: the log files still get every line."""
        if self.out is None:
            return
        try:
            print(text, file=self.out, flush=True)
        except (OSError, ValueError):  # BrokenPipeError, or a closed stream
            self.silence()

    def silence(self) -> None:
        """Print nothing more, and point the stream's descriptor at /dev/null, so that
        what is still buffered (flushed again at exit) cannot fail either."""
        out, self.out = self.out, None
        if out is None:
            return
        with contextlib.suppress(OSError, ValueError):
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, out.fileno())
            os.close(null)


class GameFilter(watchfiles.DefaultFilter):
    """Python files and settings.toml of the game; no runtime folder, caches, temp files."""

    def __init__(self) -> None:
        super().__init__(ignore_dirs=(*self.ignore_dirs, RUNTIME_DIR))

    def __call__(self, change: watchfiles.Change, path: str) -> bool:
        name = os.path.basename(path)
        wanted = name.endswith(".py") or name == SETTINGS_FILE
        return wanted and super().__call__(change, path)


def check_sources(paths: Iterable[Path], game_dir: Path) -> dict[Path, str]:
    """Compile each Python file and decode the settings; map each broken file to its error."""
    broken: dict[Path, str] = {}
    for path in paths:
        if not path.exists():
            continue
        if path.name == SETTINGS_FILE:
            try:
                load_settings(game_dir)
            except SettingsError as exc:
                broken[path] = str(exc)
            continue
        try:
            compile(path.read_bytes(), str(path), "exec", dont_inherit=True)
        except (SyntaxError, ValueError) as exc:
            broken[path] = "".join(traceback.format_exception_only(exc)).rstrip()
    return broken


class DevReloader:
    """Turns batches of saved files into checked reloads (see the module docstring)."""

    def __init__(self, supervisor: Supervisor, terminal: Terminal) -> None:
        self.supervisor = supervisor
        self.terminal = terminal
        self.broken: dict[Path, str] = {}
        sup = supervisor.settings.supervisor
        self.reload_timeout = sup.reload_timeout * 2 + sup.stop_timeout + 5

    async def run(self) -> None:
        """Watch until the supervisor finishes (Ctrl-C, `run.py stop`)."""
        supervisor = self.supervisor
        await supervisor.up.wait()
        stop = asyncio.Event()
        supervisor.spawn_task(_set_when(supervisor.finished, stop))
        self.terminal.note(f"watching {supervisor.game_dir} for saved changes; Ctrl-C stops")
        async for changes in watchfiles.awatch(
                supervisor.game_dir, watch_filter=GameFilter(), debounce=DEBOUNCE_MS,
                step=STEP_MS, stop_event=stop):
            await self.changed({Path(path) for _, path in changes})

    async def changed(self, paths: set[Path]) -> None:
        names = ", ".join(sorted(p.name for p in paths))
        self.broken = check_sources(paths | set(self.broken), self.supervisor.game_dir)
        if self.broken:
            for path, error in self.broken.items():
                self.terminal.note(f"{path} does not compile:\n{error}", ok=False)
            self.terminal.note("not reloading; the running server keeps going. "
                               "Fix it and save again.", ok=False)
            return
        self.terminal.note(f"changed: {names}; reloading")
        await self.reload()

    async def reload(self) -> None:
        answer = self.supervisor.control.submit(Command(name="reload"))
        try:
            reply = await asyncio.wait_for(answer, self.reload_timeout)
        except TimeoutError:
            self.terminal.note(f"reload failed: no answer within {self.reload_timeout:.0f}s",
                               ok=False)
            return
        if reply.ok:
            self.terminal.note(f"reloaded: {reply.message}")
        else:
            self.terminal.note("reload refused, the old server keeps running: "
                               + without_traceback(reply.message), ok=False)


def without_traceback(message: str) -> str:
    """`message` with a traceback in it cut down to its last line (the exception): dev has
    just printed the whole traceback as the failing server's log lines."""
    lines = message.rstrip().splitlines()
    start = next((n for n, line in enumerate(lines)
                  if line.strip() == "Traceback (most recent call last):"), None)
    if start is None:
        return message
    return "\n".join([*lines[:start], f"{lines[-1].strip()} (traceback above)"])


async def _set_when(source: asyncio.Event, target: asyncio.Event) -> None:
    await source.wait()
    target.set()


def run_dev(game_dir: Path) -> int:
    """Run the game in the foreground until Ctrl-C; reload on every good save."""
    terminal = Terminal()
    logging.basicConfig(level=logging.INFO, handlers=[logging.NullHandler()])
    logging.getLogger("watchfiles").setLevel(logging.WARNING)  # "1 change detected"

    def setup(supervisor: Supervisor) -> None:
        for logfile in supervisor.logs.values():
            logfile.echo = terminal.line
        log_into(supervisor.logs["supervisor"])
        supervisor.spawn_task(DevReloader(supervisor, terminal).run())

    def progress(line: str) -> None:
        logging.getLogger("supervisor").info("%s", line)

    def finish(ok: bool, message: str) -> None:
        terminal.note(message if ok else without_traceback(message), ok=ok)

    return run_supervisor(game_dir, progress, finish, setup)
