"""Each child's output, line by line, into its own size-capped rotating file.

Every line gets one timestamp format and the process name, whichever process wrote it,
so `run.py logs` can interleave the files by time.
"""

from __future__ import annotations

import asyncio
import logging
import logging.handlers
import os
import time
from collections.abc import Callable
from pathlib import Path

from ipc.child import CHILD_LOG_FORMAT

LINE_FORMAT = "{stamp} [{name} {pid}] {line}"


def stamp(now: float | None = None) -> str:
    now = time.time() if now is None else now
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1000):03d}"


class LogFile:
    """A rotating log file for one process name (`portal.log`, `server.log`, ...)."""

    def __init__(self, folder: Path, name: str, max_bytes: int, backups: int) -> None:
        self.name = name
        self.path = folder / f"{name}.log"
        self._handler = logging.handlers.RotatingFileHandler(
            self.path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8", delay=True
        )
        self._handler.setFormatter(logging.Formatter("%(message)s"))
        self.tail: list[str] = []  # the last lines, for error reports
        # also called with each line (`run.py dev` prints them to the terminal)
        self.echo: Callable[[str, int, str], None] | None = None

    def write(self, pid: int, line: str) -> None:
        text = LINE_FORMAT.format(stamp=stamp(), name=self.name, pid=pid, line=line)
        self._handler.emit(logging.makeLogRecord({"msg": text, "args": None}))
        if self.echo is not None:
            try:
                self.echo(self.name, pid, line)
            except Exception:  # a terminal's failure must not stop the caller
                self.echo = None  # (which may be the supervisor stopping); the file goes on
                self._handler.emit(logging.makeLogRecord(
                    {"msg": f"{text} (echo to the terminal failed; no more echo)", "args": None}))
        self.tail.append(line)
        if len(self.tail) > 200:
            del self.tail[:100]

    def resize(self, max_bytes: int, backups: int) -> None:
        """Rotate at `max_bytes`, keeping `backups` old files, from the next line on."""
        self._handler.maxBytes = max_bytes
        self._handler.backupCount = backups

    def reopen(self) -> None:
        """Reopen after an external rotation (logrotate's `copytruncate`-less mode)."""
        self._handler.acquire()
        try:
            if self._handler.stream is not None:
                self._handler.stream.close()
                self._handler.stream = None
        finally:
            self._handler.release()

    def close(self) -> None:
        self._handler.close()


class LogFileHandler(logging.Handler):
    """Route this process's own `logging` records into a `LogFile` (`supervisor.log`).

    Each line of a record (a traceback included) is stamped on its own, as the
    children's lines are, so `run.py logs` can interleave every file by time.
    """

    def __init__(self, logfile: LogFile) -> None:
        super().__init__()
        self.logfile = logfile
        self.setFormatter(logging.Formatter(CHILD_LOG_FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:
            self.handleError(record)
            return
        for line in text.splitlines():
            self.logfile.write(os.getpid(), line)


def log_into(logfile: LogFile) -> LogFileHandler:
    """Send the root logger's records into `logfile` too; remove the handler when done."""
    handler = LogFileHandler(logfile)
    logging.getLogger().addHandler(handler)
    return handler


async def pump_output(stream: asyncio.StreamReader, log: LogFile, pid: int) -> None:
    """Copy a child's output into its log until the pipe closes."""
    while True:
        try:
            raw = await stream.readline()
        except ValueError:  # a line over the stream limit: take what is there
            raw = await stream.read(65536)
        if not raw:
            return
        log.write(pid, raw.decode("utf-8", "replace").rstrip("\n"))
