"""One command's savepoint in memory: what each object, timer and key-value entry was
before the command first wrote it (`server.world.world` fills and applies it; the timers
record theirs here too). Imports only the objects."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

import msgspec

from server.world.objects import WorldObject

State = tuple[bool, str, tuple[str, ...], str, type, WorldObject | None, WorldObject | None,
              WorldObject | None, tuple[tuple[str, str], ...] | None, bytes | None]


class UndoLog(msgspec.Struct):
    """One command's savepoint: each touched object's state before its first write. (A
    Struct, made in C; each gets new, empty dicts.)"""

    saved: dict[int, State | None] = {}  # None: made by this command
    objects: dict[int, WorldObject] = {}
    timers: dict[int, Any] = {}  # timer id -> its row before (None: new)
    kv: dict[str, Any] = {}  # key -> its pending write before (_NOT_PENDING)


# The savepoints of the synchronous commands running now, innermost last. Each log is made
# at its command's first write (most commands write nothing). No task step runs while a
# synchronous command does, so while this is not empty its top is the running code's log.
SYNC: list[UndoLog | None] = []

# An awaiting command's savepoint: a context variable, so each task has its own.
_undo: ContextVar[UndoLog | None] = ContextVar("hearth_world_undo", default=None)


def current() -> UndoLog | None:
    """The log the running code's writes go to (made now if its command has none yet);
    None outside every command (a write there cannot be undone)."""
    if SYNC:
        undo = SYNC[-1]
        if undo is None:
            undo = SYNC[-1] = UndoLog()
        return undo
    return _undo.get()
