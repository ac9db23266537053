"""The supervisor's pid file, whose identity is checked with the process start time.

A pid alone can be reused by an unrelated process after a reboot or a crash; the pair
(pid, create_time) cannot, so a stale file is recognised and replaced.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from pathlib import Path

import msgspec
import psutil


class PidRecord(msgspec.Struct, frozen=True):
    pid: int
    create_time: float


def own_record() -> PidRecord:
    return PidRecord(os.getpid(), psutil.Process().create_time())


def write_pid_file(path: Path, record: PidRecord) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(msgspec.json.encode(record))
    tmp.chmod(0o600)
    tmp.replace(path)


def read_pid_file(path: Path) -> PidRecord | None:
    try:
        return msgspec.json.decode(path.read_bytes(), type=PidRecord)
    except (OSError, msgspec.DecodeError):
        return None


def is_alive(record: PidRecord) -> bool:
    """The recorded process still runs (same pid *and* same start time)."""
    try:
        proc = psutil.Process(record.pid)
        return abs(proc.create_time() - record.create_time) < 0.01 and proc.status() != "zombie"
    except psutil.Error:
        return False


def running_supervisor(path: Path) -> PidRecord | None:
    """The live supervisor named by the pid file, or None (missing or stale)."""
    record = read_pid_file(path)
    return record if record is not None and is_alive(record) else None


def remove_pid_file(path: Path, record: PidRecord) -> None:
    """Remove the file only if it still names `record` (never another run's file)."""
    if read_pid_file(path) == record:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def socket_answers(path: Path, timeout: float = 1.0) -> bool:
    """Something accepts connections on the Unix socket `path` (a stale file does not)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


def claim(state: Path) -> int | None:
    """Lock the game's runtime folder for this process's lifetime; None if another holds it.

    The lock (flock on the folder itself, so no file is left behind) is what makes one
    supervisor per game: two that start at once both find no pid file, but only one gets
    the lock. The kernel drops it when the holder exits, even after `kill -9`. Keep the
    returned descriptor open; `release` it on the way out.
    """
    fd = os.open(state, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def release(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)
