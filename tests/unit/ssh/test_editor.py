"""asyncssh's line editor builds its printable-key pattern once per set of bound keys."""

from __future__ import annotations

from typing import Any

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


def test_the_pattern_is_built_once_per_key_set_and_is_asyncssh_s_own() -> None:
    calls: list[frozenset[str]] = []
    original = SSHLineEditor._build_printable

    def counting(ed: Any) -> None:
        calls.append(frozenset(ed._keymap))
        original(ed)

    editor._PATTERNS.clear()
    build = editor.shared_build(counting)
    first, second, third = Editor(), Editor(), Editor("\x0c")
    for ed in (first, second, third):
        build(ed)
    assert len(calls) == 2  # the default keys once, the default keys and Ctrl-L once
    assert first._printable is second._printable
    plain = Editor("\x0c")
    original(plain)
    assert third._printable.pattern == plain._printable.pattern
    assert third._printable.match("abc\x0cdef").group() == "abc"


def test_install_is_idempotent_and_keeps_the_original() -> None:
    editor.install()
    installed = SSHLineEditor._build_printable
    editor.install()
    assert SSHLineEditor._build_printable is installed
    assert hasattr(installed, "original")
