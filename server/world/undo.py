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
    Struct: one is made for every command, and a Struct is made in C; each gets new,
    empty dicts.)"""

    saved: dict[int, State | None] = {}  # None: made by this command
    objects: dict[int, WorldObject] = {}
    timers: dict[int, Any] = {}  # timer id -> its row before (None: new)
    kv: dict[str, Any] = {}  # key -> its pending write before (_NOT_PENDING)


_undo: ContextVar[UndoLog | None] = ContextVar("hearth_world_undo", default=None)
