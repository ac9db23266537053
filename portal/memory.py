"""Handing memory back to the system after a storm of connections.

Theory of operation
-------------------
A connection costs the portal 15 to 25 KB while it is open (its session, parser, uvloop
transport and buffers). When a storm of them closes, every object is freed (by reference
counting: a closed session is in no cycle), but the process's RSS stays near its peak:

- objects over 512 bytes (dict tables, buffers, libuv handles) come from glibc malloc,
  which keeps freed chunks below the top of its heap resident; `malloc_trim(0)` gives
  every free page of the heap back (`madvise`), in a few milliseconds;
- smaller objects live in CPython's pymalloc arenas (1 MiB each, returned as soon as one
  is wholly free). An arena that still holds one live object stays, so what remains after
  a trim is the arenas pinned by objects the storm made and that live on (per-address
  buckets until the sweep forgets them, the runtime's caches and free lists): in the
  churn benchmark (9,000 connections at once, 20,000 in all) about 20 MB of the 115 the
  storm took (with `PYTHONMALLOC=malloc` the same run ends 2 MB over its start, at
  the cost of a slower allocator on every path, so pymalloc stays);
- a dict or set keeps its table at its largest size until it is rebuilt: the portal's
  tables by session id are rebuilt (`compact`) before the trim.

`TrimPolicy` decides when (pure: the guard tells it the open connection count): once at
least `memory_trim_after` connections have closed since the most that were open at once
(and at the next sweep again if more closed meanwhile).
The guard's periodic sweep asks it, so the work happens at most once per sweep, never on
the path of a read or a line; `release()` is the one effect.
"""

from __future__ import annotations

import ctypes
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

log = logging.getLogger(__name__)

K = TypeVar("K")
V = TypeVar("V")


@dataclass(slots=True)
class TrimPolicy:
    """Trim once `drop` connections have closed since the highest count (0: never); and
    once more at the next sweep if they went on closing after that (a sweep may come in
    the middle of a storm's close: the tail would stay unreturned)."""

    drop: int
    high: int = 0  # the most connections open at once since the last trim
    follow: int | None = None  # the count at a storm's trim, until the sweep after it

    def opened(self, count: int) -> None:
        """A connection was let in; `count` are open now."""
        if count > self.high:
            self.high = count

    def due(self, count: int) -> bool:
        """Whether to trim now that `count` are open (asked once per sweep); if so,
        counting starts over here."""
        if self.drop <= 0:
            return False
        follow, self.follow = self.follow, None
        if self.high - count >= self.drop:
            self.follow = count
        elif follow is None or count >= follow:
            return False
        self.high = count
        return True


def compact(table: dict[K, V]) -> dict[K, V]:
    """A copy of `table` whose hash table fits what it holds now (a dict never shrinks
    its table on deletion)."""
    return dict(table)


def _load_trim() -> Callable[[int], int] | None:
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return None
    return trim


_MALLOC_TRIM = _load_trim()


def resident_bytes() -> int:
    """This process's RSS (0 where /proc is not there)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def release(why: str) -> None:
    """Give the C heap's free pages back to the system (glibc `malloc_trim(0)`), and log
    how much that was and what it cost."""
    if _MALLOC_TRIM is None:
        return
    before, start = resident_bytes(), time.perf_counter()
    _MALLOC_TRIM(0)
    took, after = time.perf_counter() - start, resident_bytes()
    log.info("%s: gave %.1f MB back to the system in %.1f ms (RSS now %.1f MB)", why,
             (before - after) / 2**20, took * 1000, after / 2**20)
