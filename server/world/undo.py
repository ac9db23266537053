"""One command's savepoint in memory: what each object, timer and key-value entry was
before the command first wrote it (`server.world.world` fills and applies it; the timers
record theirs here too). Imports only the objects."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from server.world.objects import WorldObject

State = tuple[bool, str, tuple[str, ...], str, type, WorldObject | None, WorldObject | None,
              WorldObject | None, tuple[tuple[str, str], ...] | None, bytes | None]


class UndoLog:
    """One command's savepoint: each touched object's state before its first write."""

    __slots__ = ("kv", "objects", "saved", "timers")

    def __init__(self) -> None:
        self.saved: dict[int, State | None] = {}  # None: made by this command
        self.objects: dict[int, WorldObject] = {}
        self.timers: dict[int, Any] = {}  # timer id -> its row before (None: new)
        self.kv: dict[str, Any] = {}  # key -> its pending write before (_NOT_PENDING)


_undo: ContextVar[UndoLog | None] = ContextVar("hearth_world_undo", default=None)
