"""asyncssh's line editor, made cheap to create.

asyncssh (pinned in pyproject.toml) gives every SSH session with a pty a line editor,
and each editor builds its pattern of "printable keys without a handler" by testing all
65,536 code points of the Basic Multilingual Plane: 15 ms of CPU, and once more for each
key a session binds (we bind Ctrl-L). That made each SSH login cost the portal 30 ms,
so a few dozen connections a second held a core. The pattern depends only on the set of
keys bound, so `install()` makes it built once per key set and shared by every editor
(a handful of sets: the default keys, and those plus ours).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from asyncssh.editor import SSHLineEditor

_PATTERNS: dict[frozenset[str], re.Pattern[str]] = {}
MAX_PATTERNS = 64  # key sets remembered (beyond: built as asyncssh does, not kept)


def shared_build(build: Callable[[Any], None]) -> Callable[[Any], None]:
    """`build` (asyncssh's `_build_printable`) run once per set of bound keys."""

    def build_printable(editor: Any) -> None:
        keys = frozenset(editor._keymap)
        pattern = _PATTERNS.get(keys)
        if pattern is None:
            build(editor)
            if len(_PATTERNS) < MAX_PATTERNS:
                _PATTERNS[keys] = editor._printable
            return
        editor._printable = pattern

    build_printable.original = build  # type: ignore[attr-defined]
    return build_printable


def install() -> None:
    """Make every asyncssh line editor share its printable-key pattern (idempotent)."""
    current = SSHLineEditor._build_printable
    if not hasattr(current, "original"):
        SSHLineEditor._build_printable = shared_build(current)  # type: ignore[method-assign,assignment]
