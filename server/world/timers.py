"""Time that survives reload: calls stored as a due time plus a dotted path.

`schedule(5, "hearth_game.weather.rain", room)` stores a row (due time, path, object id,
arguments). When it is due, the server imports the path *then* (so it runs the code of
the server running at that moment, new code after a reload) and calls `func(obj, *args)`
as a command of its own: its writes and the timer's own removal (or, for a ticker, its
next due time) are committed in the same transaction, before its output leaves. So a
call due during a reload or a crash runs once, after it: never twice (its removal is
committed with its effects), never lost (a crash before that commit leaves the row).

A call that raises is logged and its writes rolled back; the timer is still consumed
(a ticker still repeats), so a broken function cannot loop. A path that no longer
imports is logged and the timer dropped. A ticker that missed several beats (the game
was stopped) runs once, then every `interval` from then on.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import server.world.codec as codec
from server.world.store import TimerRow
from server.world.typeclasses import normalise
from server.world.undo import current

if TYPE_CHECKING:
    from server.world.world import World

log = logging.getLogger("server.world")

When = float | int | datetime


class Timer:
    """One stored call."""

    __slots__ = ("args", "due", "id", "interval", "obj", "path")

    def __init__(self, tid: int, due: float, interval: float | None, path: str,
                 obj: int | None, args: bytes) -> None:
        self.id, self.due, self.interval, self.path = tid, due, interval, path
        self.obj, self.args = obj, args

    def row(self, seq: int) -> TimerRow:
        return (self.id, self.due, self.interval, self.path, self.obj, self.args, seq)

    def copy(self) -> Timer:
        return Timer(self.id, self.due, self.interval, self.path, self.obj, self.args)

    def __repr__(self) -> str:
        every = f" every {self.interval}s" if self.interval else ""
        return f"<Timer {self.id} {self.path} due {self.due:.3f}{every}>"


def path_of_func(func: str | Callable[..., Any]) -> str:
    if isinstance(func, str):
        return normalise(func)
    module, name = getattr(func, "__module__", ""), getattr(func, "__qualname__", "")
    if not module or not name or "<locals>" in name or "<lambda>" in name:
        raise ValueError("a timer calls a module-level function, by its dotted path")
    return f"{module}.{name}"


def import_func(path: str) -> Callable[..., Any]:
    module_name, _, name = path.rpartition(".")
    module = importlib.import_module(module_name)
    func = getattr(module, name)
    if not callable(func):
        raise TypeError(f"{path} is not callable")
    return func  # type: ignore[no-any-return]


class Timers:
    """The stored calls of one world; `due()` and `fire()` are driven by the server."""

    def __init__(self, world: World, clock: Callable[[], float] = time.time) -> None:
        self.world = world
        self.clock = clock
        self.timers: dict[int, Timer] = {}
        self.next_id = 1
        self.fired = 0
        self.on_change: Callable[[], None] = lambda: None  # re-arm the server's wake-up
        self._dirty: dict[int, Timer] = {}
        self._gone: set[int] = set()
        world.timers = self

    # ------------------------------------------------------------ the game's side

    def schedule(self, when: When, func: str | Callable[..., Any], obj: Any = None,
                 *args: Any, interval: float | None = None) -> int:
        """Call `func(obj, *args)` at `when` (seconds from now, or a datetime); with
        `interval`, again every `interval` seconds. The timer's id."""
        self.world._check_writable()
        if interval is not None and interval <= 0:
            raise ValueError("a ticker's interval is positive")
        due = when.timestamp() if isinstance(when, datetime) else self.clock() + float(when)
        path = path_of_func(func)
        blob = codec.encode(list(args))
        timer = Timer(self._new_id(), due, interval, path, None if obj is None else obj.id, blob)
        self._save(timer.id, None)
        self.timers[timer.id] = timer
        self._dirty[timer.id] = timer
        self.on_change()
        return timer.id

    def cancel(self, tid: int) -> bool:
        """Remove a timer; False if there is none."""
        if tid not in self.timers:
            return False
        self.world._check_writable()
        self._save(tid, self.timers[tid].copy())
        self._drop(tid)
        return True

    def of(self, obj: Any) -> list[Timer]:
        """The timers that call with `obj`."""
        return [t for t in self.timers.values() if t.obj == obj.id]

    # ------------------------------------------------------------ the server's side

    def next_due(self) -> float | None:
        return min((t.due for t in self.timers.values()), default=None)

    def due(self) -> list[Timer]:
        now = self.clock()
        return sorted((t for t in self.timers.values() if t.due <= now), key=lambda t: t.due)

    def consume(self, timer: Timer) -> None:
        """The timer fires now: removed, or a ticker moved to its next beat (stored with
        the call's own writes)."""
        if timer.interval:
            now = self.clock()
            beat = timer.due + timer.interval
            timer.due = beat if beat > now else now + timer.interval
            self._dirty[timer.id] = timer
        else:
            self._drop(timer.id)
        self.fired += 1

    def call(self, timer: Timer) -> Any:
        """Import and call the timer's function (ImportError etc. propagate)."""
        func = import_func(timer.path)
        obj = None
        if timer.obj is not None:
            obj = self.world.get(timer.obj)
            if obj is None:
                log.warning("%r: its object #%d is gone; not called", timer, timer.obj)
                return None
        args = self.world._decoder.decode(timer.args)
        return func(obj, *args)

    # ------------------------------------------------------------ storage

    def load(self, rows: list[TimerRow]) -> None:
        for row in rows:
            self._put(row)

    def catch_up(self, rows: list[TimerRow], gone: list[int]) -> None:
        for tid in gone:
            self.timers.pop(tid, None)
        for row in rows:
            self._put(row)
        self.next_id = max(self.next_id, int(self.world._meta.get("next_timer", 1)))
        self.on_change()

    def changed(self) -> bool:
        return bool(self._dirty or self._gone)

    def batch(self, seq: int) -> tuple[list[TimerRow], list[int]]:
        self.world._meta_dirty["next_timer"] = self.next_id
        return [t.row(seq) for t in self._dirty.values()], list(self._gone)

    def committed(self) -> None:
        self._dirty.clear()
        self._gone.clear()

    def rollback(self, saved: dict[int, Any]) -> None:
        for tid, before in saved.items():
            if before is None:
                self.timers.pop(tid, None)
                self._dirty.pop(tid, None)
            else:
                self.timers[tid] = before
                self._dirty[tid] = before
                self._gone.discard(tid)
        if saved:
            self.on_change()

    def _put(self, row: TimerRow) -> None:
        tid, due, interval, path, obj, args, _ = row
        self.timers[tid] = Timer(tid, due, interval, path, obj, args)
        self.next_id = max(self.next_id, tid + 1)

    def _new_id(self) -> int:
        self.next_id = max(self.next_id, int(self.world._meta.get("next_timer", 1)))
        tid = self.next_id
        self.next_id += 1
        return tid

    def _drop(self, tid: int) -> None:
        self.timers.pop(tid, None)
        self._dirty.pop(tid, None)
        self._gone.add(tid)
        self.on_change()

    def _save(self, tid: int, before: Timer | None) -> None:
        undo = current()
        if undo is not None and tid not in undo.timers:
            undo.timers[tid] = before
