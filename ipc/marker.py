"""The input the server is running, kept in a small shared file.

A server hung in a game command cannot say which command hung. Before running an input,
the server writes its `seq` here (a memory write into a mapped file, no syscall); the
supervisor reads it after killing a hung server, so the portal can drop that one input
instead of replaying it into the next server, which would hang again.
"""

from __future__ import annotations

import functools
import mmap
import os
import struct
from collections.abc import Callable
from pathlib import Path

_FORMAT = "<Q"
_STRUCT = struct.Struct(_FORMAT)
SIZE = _STRUCT.size


def marker_path(state_dir: Path, pid: int) -> Path:
    return state_dir / f"server-{pid}.seq"


class FileMarker:
    """Writer side: `set(seq)` before an input, `set(0)` after it."""

    set: Callable[[int], None]

    def __init__(self, path: Path) -> None:
        self.path = path
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.ftruncate(fd, SIZE)
            self._map = mmap.mmap(fd, SIZE)
        finally:
            os.close(fd)
        # `set(seq)` runs twice per input: a C partial, no Python frame
        self.set = functools.partial(_STRUCT.pack_into, self._map, 0)

    def close(self) -> None:
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
