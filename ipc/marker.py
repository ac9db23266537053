"""The input the server is running, kept in a small shared file.

A server hung in a game command cannot say which command hung. Before running an input,
the server writes its `seq` here (`slot[0] = seq`: a memory write into a mapped file, no
call and no syscall); the
supervisor reads it after killing a hung server, so the portal can drop that one input
instead of replaying it into the next server, which would hang again.
"""

from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path
from typing import Protocol

_FORMAT = "=Q"  # (native order: writer and reader are on one machine)
_STRUCT = struct.Struct(_FORMAT)
SIZE = _STRUCT.size


def marker_path(state_dir: Path, pid: int) -> Path:
    return state_dir / f"server-{pid}.seq"


class Slot(Protocol):
    """Where a seq is written: `slot[0] = seq`."""

    def __setitem__(self, index: int, value: int, /) -> None: ...


class FileMarker:
    """Writer side: `slot[0] = seq` before an input, `slot[0] = 0` after it."""

    slot: Slot

    def __init__(self, path: Path) -> None:
        self.path = path
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.ftruncate(fd, SIZE)
            self._map = mmap.mmap(fd, SIZE)
        finally:
            os.close(fd)
        self._view = memoryview(self._map).cast("Q")  # (8 bytes, native order: `_FORMAT`)
        self.slot = self._view

    def close(self) -> None:
        self.slot = [0]  # a write after closing goes nowhere
        self._view.release()
        self._map.close()
        self.path.unlink(missing_ok=True)


def read_marker(path: Path) -> int:
    """Reader side: the seq the server was running (0 if none or unreadable)."""
    try:
        data = path.read_bytes()
    except OSError:
        return 0
    if len(data) < SIZE:
        return 0
    return int(struct.unpack_from(_FORMAT, data)[0])
