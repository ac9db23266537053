"""Each child's output, line by line, into its own size-capped rotating file.

Every line gets one timestamp format and the process name, whichever process wrote it,
so `run.py logs` can interleave the files by time.
"""

from __future__ import annotations

import asyncio
import logging
import logging.handlers
import time
from pathlib import Path

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

    def write(self, pid: int, line: str) -> None:
        text = LINE_FORMAT.format(stamp=stamp(), name=self.name, pid=pid, line=line)
        self._handler.emit(logging.makeLogRecord({"msg": text, "args": None}))
        self.tail.append(line)
        if len(self.tail) > 200:
            del self.tail[:100]

    def reopen(self) -> None:
        """Reopen after an external rotation (logrotate's `copytruncate`-less mode)."""
        self._handler.acquire()
        try:
            if self._handler.stream is not None:
                self._handler.stream.close()
                self._handler.stream = None  # type: ignore[assignment]
        finally:
            self._handler.release()

    def close(self) -> None:
        self._handler.close()


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
