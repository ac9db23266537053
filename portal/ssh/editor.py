"""asyncssh's line editor, made cheap to create.

asyncssh (pinned in pyproject.toml) gives every SSH session with a pty a line editor,
and each editor builds its pattern of "printable keys without a handler" by testing all
65,536 code points of the Basic Multilingual Plane, one Python call each: 33 ms of CPU,
and once more for each key a session binds (we bind Ctrl-L). That made each SSH login
cost the portal 67 ms in one loop turn, a stall every other player felt. `install()`
replaces the build with `printable_pattern`, which makes the same pattern from one table
of which code points are printable (made once per process, in C, at `install()`) and
keeps it per set of bound keys (a handful of sets: the default keys, and those plus ours).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from asyncssh.editor import SSHLineEditor

_PATTERNS: dict[frozenset[str], re.Pattern[str]] = {}
MAX_PATTERNS = 64  # key sets remembered (beyond: built again, not kept)
_FIRST, _LIMIT = ord(" "), 0x10000  # where asyncssh's scan starts, and where it stops
_TABLE_END = 0x11000  # the table reaches past _LIMIT: asyncssh's last run may run over it
_SPECIAL = "-&|[]\\^~"  # what asyncssh escapes inside the character class
_printable_table: bytes | None = None


def _table() -> bytes:
    """One byte per code point up to `_TABLE_END`: 1 where `str.isprintable`."""
    global _printable_table
    if _printable_table is None:
        _printable_table = bytes(map(str.isprintable, map(chr, range(_TABLE_END))))
    return _printable_table


def _escape(point: int) -> str:
    ch = chr(point)
    return "\\" + ch if ch in _SPECIAL else ch


def printable_pattern(keys: Iterable[str]) -> re.Pattern[str]:
    """The pattern asyncssh's `_build_printable` makes for an editor whose keymap has
    `keys`: runs of printable code points that no key is bound to, scanned as asyncssh
    scans them (the same string, so the same regex), but run by run instead of point by
    point."""
    table = bytearray(_table())
    for key in keys:
        if len(key) == 1 and ord(key) < _TABLE_END:
            table[ord(key)] = 0
    parts: list[str] = []
    start = _FIRST
    while start < _LIMIT:
        found = table.find(1, start, _LIMIT)
        start = _LIMIT if found < 0 else found
        end = table.find(0, start)  # (found: the table ends in unprintable code points)
        parts.append(_escape(start))
        if start != end - 1:
            parts.append("-" + _escape(end - 1))
        start = end + 1
    return re.compile("[" + "".join(parts) + "]*")


def shared_build(build: Callable[[Any], None]) -> Callable[[Any], None]:
    """A `_build_printable` that makes each key set's pattern once (`printable_pattern`)."""

    def build_printable(editor: Any) -> None:
        keys = frozenset(editor._keymap)
        pattern = _PATTERNS.get(keys)
        if pattern is None:
            pattern = printable_pattern(keys)
            if len(_PATTERNS) < MAX_PATTERNS:
                _PATTERNS[keys] = pattern
        editor._printable = pattern

    build_printable.original = build  # type: ignore[attr-defined]
    return build_printable


def install() -> None:
    """Make every asyncssh line editor build its printable-key pattern our way, once per
    key set (idempotent). The table behind it is made here, at start, not in a login."""
    current = SSHLineEditor._build_printable
    if not hasattr(current, "original"):
        SSHLineEditor._build_printable = shared_build(current)  # type: ignore[method-assign,assignment]
    _table()
