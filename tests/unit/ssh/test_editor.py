"""asyncssh's line editor: its printable-key pattern, made as asyncssh makes it, once per
set of bound keys and without its scan of every code point."""

from __future__ import annotations

from typing import Any

import pytest
from asyncssh.editor import SSHLineEditor

from portal.ssh import editor


class Editor(SSHLineEditor):
    """The part of asyncssh's editor that builds the pattern (no channel needed)."""

    def __init__(self, extra: str = "") -> None:
        self._keymap: Any = {}
        for func, keys in self._keylist:
            for key in keys:
                self._add_key(key, func)
        if extra:
            self._add_key(extra, print)


def test_the_pattern_is_built_once_per_key_set_without_asyncssh_s_scan() -> None:
    """asyncssh's own build calls Python once per code point of the BMP (67 ms in a loop
    turn under load, at the first SSH login of a key set); ours is never called, and
    each key set's pattern is made once."""
    calls: list[frozenset[str]] = []

    def asyncssh_scan(ed: Any) -> None:
        calls.append(frozenset(ed._keymap))

    editor._PATTERNS.clear()
    build = editor.shared_build(asyncssh_scan)
    first, second, third = Editor(), Editor(), Editor("\x0c")
    for ed in (first, second, third):
        build(ed)
    assert calls == []
    assert first._printable is second._printable
    assert third._printable.match("abc\x0cdef").group() == "abc"
    assert len(editor._PATTERNS) == 2


@pytest.mark.parametrize("extra", ["", "\x0c", "a", "-", "~", "\\", "\u00e9", "\uffef"])
def test_the_pattern_is_the_one_asyncssh_builds(extra: str) -> None:
    ours, theirs = Editor(extra), Editor(extra)
    asyncssh_build = getattr(SSHLineEditor._build_printable, "original",
                             SSHLineEditor._build_printable)  # (before or after install())
    asyncssh_build(theirs)
    assert editor.printable_pattern(ours._keymap).pattern == theirs._printable.pattern


def test_install_is_idempotent_and_keeps_the_original() -> None:
    editor.install()
    installed = SSHLineEditor._build_printable
    editor.install()
    assert SSHLineEditor._build_printable is installed
    assert hasattr(installed, "original")
