"""SSH's sans-I/O parts: line splitting (fuzzed), terminal flags, the host key."""

from __future__ import annotations

import stat
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipc.settings import PortalSettings, load_settings
from portal.ssh.input import (
    InputEvent,
    Line,
    LineSplitter,
    LineTooLong,
    clean,
    client_name,
    size_flags,
    terminal_flags,
)
from portal.ssh.server import HOST_KEY_FILE, SshKeyError, host_key

REPO = Path(__file__).resolve().parents[3]


def lines_of(splitter: LineSplitter, *chunks: str, eof: bool = False) -> list[InputEvent]:
    for chunk in chunks:
        splitter.receive_data(chunk)
    if eof:
        splitter.receive_eof()
    return splitter.events_received()


def test_lines_across_chunks_with_cr_and_controls_removed() -> None:
    splitter = LineSplitter(100)
    assert lines_of(splitter, "say he", "llo\r\nlo", "ok\x07 \x1b[31mred\n") == [
        Line("say hello"), Line("look [31mred")]
    assert lines_of(splitter, "last words", eof=True) == [Line("last words")]
    assert lines_of(splitter, eof=True) == []


def test_a_long_line_is_dropped_whole_and_reported_once() -> None:
    splitter = LineSplitter(10)
    events = lines_of(splitter, "0123456", "789abcdef", "ghij\nok\n")
    assert events == [LineTooLong(10), Line("ok")]
    # the limit counts UTF-8 bytes: five two-byte letters fit, six do not
    assert lines_of(splitter, "ééééé\nèèèèèè\n") == [Line("ééééé"), LineTooLong(10)]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=200), max_size=20), st.integers(1, 64))
def test_fuzz_splitter_never_raises_and_respects_the_limit(chunks: list[str],
                                                           limit: int) -> None:
    splitter = LineSplitter(limit)
    events = lines_of(splitter, *chunks, eof=True)
    for event in events:
        if isinstance(event, Line):
            assert len(event.text.encode("utf-8", "replace")) <= limit
            assert event.text == clean(event.text)
    whole = "".join(chunks)
    assert sum(isinstance(e, Line) for e in events) <= whole.count("\n") + 1


def test_terminal_flags_from_term_and_colorterm() -> None:
    flags = terminal_flags("xterm-256color", {"COLORTERM": "truecolor"}, 120, 40,
                           "SSH-2.0-OpenSSH_9.2p1 Debian-2")
    assert flags["TRUECOLOR"] and flags["XTERM256"] and flags["ANSI"]
    assert flags["SCREENWIDTH"] == {0: 120} and flags["SCREENHEIGHT"] == {0: 40}
    assert flags["CLIENTNAME"] == "OPENSSH_9.2P1" and flags["TERM"] == "xterm-256color"
    plain = terminal_flags("vt100", {}, 0, 0)
    assert plain["ANSI"] and not plain["XTERM256"] and not plain["TRUECOLOR"]
    assert plain["SCREENWIDTH"] == {0: 78}  # unknown size: the telnet default
    no_pty = terminal_flags(None, {"COLORTERM": "truecolor"}, 0, 0)
    assert not no_pty["ANSI"] and no_pty["NOCOLOR"] and not no_pty["TRUECOLOR"]
    assert size_flags(100, 0) == {"SCREENWIDTH": {0: 100}}
    assert client_name("garbage") == "GARBAGE"


def test_host_key_is_made_private_once_and_reused(tmp_path: Path) -> None:
    keys = tmp_path / ".hearth" / "keys"
    first = host_key(tmp_path, keys, "")
    path = keys / HOST_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    assert first.get_algorithm() == "ssh-ed25519"
    again = host_key(tmp_path, keys, "")
    assert again.public_data == first.public_data
    (tmp_path / "own_key").write_bytes(path.read_bytes())
    assert host_key(tmp_path, keys, "own_key").public_data == first.public_data
    with pytest.raises(SshKeyError, match="missing_key"):
        host_key(tmp_path, keys, "missing_key")


def test_ssh_settings() -> None:
    assert load_settings(REPO / "game").portal.ssh_port == 4004
    assert PortalSettings().ssh_port is None  # absent: off
    with pytest.raises(msgspec.ValidationError, match="ssh_port"):
        msgspec.convert({"ssh_port": 70000}, PortalSettings)
    with pytest.raises(msgspec.ValidationError, match="ssh_auth_timeout"):
        msgspec.convert({"ssh_auth_timeout": 0}, PortalSettings)
