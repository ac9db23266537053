"""Running the supervisor: in the background for `start`, attached for `start --foreground`.

`start` passes the write end of a pipe (`--progress-fd`): the supervisor writes one line
per step, then `ok ...` or `error ...`, and closes it, so the CLI prints each step and
returns the moment the game is up (or failed), with no polling.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

import uvloop

from ipc.child import LOG_DATEFMT, LOG_FORMAT
from ipc.settings import SettingsError, load_settings
from supervisor.children import StartError
from supervisor.logs import log_into
from supervisor.main import AlreadyRunning, Supervisor

EXIT_FAILED = 1


def keep_stderr_log(supervisor: Supervisor) -> None:
    """Foreground: log to the terminal (or journald) and to `supervisor.log`."""
    log_into(supervisor.logs["supervisor"])


def file_log_only(supervisor: Supervisor) -> None:
    """Background: `supervisor.log` only, rotated like the children's files.

    The daemon's stdout and stderr go to `supervisor.out`, which then only ever holds
    what bypasses `logging` (an interpreter crash, a faulthandler dump).
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, logging.StreamHandler) and not isinstance(
                handler, logging.FileHandler):
            root.removeHandler(handler)
    log_into(supervisor.logs["supervisor"])


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, datefmt=LOG_DATEFMT,
                        stream=sys.stderr)


def run_supervisor(game_dir: Path, progress: Callable[[str], None],
                   finish: Callable[[bool, str], None],
                   setup: Callable[[Supervisor], None] = keep_stderr_log) -> int:
    """Run until stopped; `finish(ok, message)` is called once start succeeded or failed.

    `setup` is called with the new `Supervisor` before it starts (logging, dev hooks).
    """
    try:
        settings = load_settings(game_dir)
    except SettingsError as exc:
        finish(False, str(exc))
        return EXIT_FAILED

    async def main() -> int:
        supervisor = Supervisor(game_dir, settings, progress)
        setup(supervisor)
        running = asyncio.ensure_future(supervisor.run())
        up = asyncio.ensure_future(supervisor.up.wait())
        # run() returns only once stopped; `up` is set as soon as the game is up.
        await asyncio.wait({running, up}, return_when=asyncio.FIRST_COMPLETED)
        up.cancel()
        if running.done() and running.exception() is not None:
            finish(False, str(running.exception()))
            return EXIT_FAILED
        finish(True, "Hearth is running")
        await running
        return 0

    try:
        return uvloop.run(main())
    except (StartError, AlreadyRunning) as exc:
        finish(False, str(exc))
        return EXIT_FAILED


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m supervisor")
    parser.add_argument("--game-dir", type=Path, required=True)
    parser.add_argument("--progress-fd", type=int, default=-1)
    args = parser.parse_args()
    configure_logging()
    out = os.fdopen(args.progress_fd, "w", buffering=1) if args.progress_fd >= 0 else None

    def progress(line: str) -> None:
        logging.getLogger("supervisor").info("%s", line)
        if out is not None and not out.closed:
            out.write(f"step {line}\n")

    def finish(ok: bool, message: str) -> None:
        if out is None and not ok:  # run by hand: say why on stderr
            print(f"error: {message}", file=sys.stderr, flush=True)
        if out is not None and not out.closed:
            out.write(("ok " if ok else "error ") + message.replace("\n", "\n  ") + "\n")
            out.close()

    sys.exit(run_supervisor(args.game_dir, progress, finish, file_log_only))
