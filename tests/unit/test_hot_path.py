"""The player path's fast paths (issue 24) do what the slow paths do, and stay in place."""

from __future__ import annotations

import gc
import typing
from pathlib import Path
from typing import Any

import pytest

from ipc.child import GC_YOUNG, tune_gc
from ipc.frames import Ack, DataOut, InputItem
from ipc.settings import PortalSettings
from portal import link_input as fx
from portal.guard import plain_line
from portal.sessions import PortalSessionHandler
from portal.telnet import IAC, WILL, FlagsChanged, TelnetEvent, TelnetProtocol
from server.testkit import TestGame
from tests.unit.test_guard import FakeSession, make_guard

TEST_GAME = Path(__file__).resolve().parent.parent / "game"


def test_the_gc_is_tuned_for_a_long_lived_heap() -> None:
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold()[0] == GC_YOUNG and gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_every_link_effect_has_a_handler() -> None:
    handler = PortalSessionHandler(PortalSettings(), "secret", lambda a, s: None,
                                   lambda ok, m: None)
    assert set(handler._effect_table) == set(typing.get_args(fx.Effect))


def test_a_plain_line_passes_the_guard_as_it_came() -> None:
    guard, _, _, _ = make_guard()
    seen: list[list[Any]] = []
    guard._forward = lambda session, name, args, kwargs: seen.append(args)
    session = FakeSession()
    line = ["look at the fountain"]
    guard.data_in(session, "text", line, {})
    assert seen[0] is line  # no copy, no new list
    assert session.guard_state is not None  # the guard's state lives on the session


@pytest.mark.parametrize("line", ["tab\there", "esc\x1b[2J", "pipe |/ newline", "é", "del\x7f",
                                  "c1\x85"])
def test_a_line_that_needs_cleaning_is_not_plain(line: str) -> None:
    assert not plain_line(line)


def test_cleaning_still_applies_off_the_fast_path() -> None:
    guard, _, forwarded, _ = make_guard()
    session = FakeSession()
    for line in ("say hi", "say \x1b[2Jhi", "say a|/b", "say\ttab", "say é"):
        guard.data_in(session, "text", [line], {})
    assert [args[0] for _, args in forwarded] == [
        "say hi", "say [2Jhi", "say a||/b", "say\ttab", "say é"]


def _events(chunks: list[bytes], **options: Any) -> list[TelnetEvent]:
    proto = TelnetProtocol(**options)
    proto.settle()
    proto.events_received()
    out: list[TelnetEvent] = []
    for chunk in chunks:
        proto.receive_data(chunk)
        out += proto.events_received()
    return out


READS = [
    [b"look\r\n"],
    [b"look\r\n", b"north\r\n"],
    [b"\r\n"],
    [b"a" * 16 + b"\r\n"],  # at max_line
    [b"a" * 17 + b"\r\n"],  # over it
    [b"half", b"line\r\n"],
    [b"look\r", b"\n"],
    [b"two\r\nlines\r\n"],
    [b"nul\r\x00\r\n"],
    [b"caf\xc3\xa9\r\n"],
    [b"bad \xff\xfe utf\r\n"],
    [b"bad \xc3 utf\r\n"],
    [b"lf only\n"],
    [bytes((IAC, WILL, 31)) + b"x\r\n"],
]


@pytest.mark.parametrize("chunks", READS)
def test_a_one_line_read_gives_what_the_byte_parser_gives(chunks: list[bytes]) -> None:
    whole = _events(chunks, max_line=16)
    bytewise = _events([bytes((b,)) for chunk in chunks for b in chunk], max_line=16)
    strip = [e for e in whole if not isinstance(e, FlagsChanged)]
    assert strip == [e for e in bytewise if not isinstance(e, FlagsChanged)]


def test_the_server_answers_a_read_at_its_end_in_one_write(tmp_path: Path) -> None:
    """Input the portal sent in one read is answered when that read ends, output and
    acks in one `send_now`, not a loop turn later (issue 24)."""
    kit = TestGame(tmp_path / "world.db", game_dir=TEST_GAME)
    try:
        alice = kit.player("alice", oob=False)
        sent: list[list[Any]] = []
        kit.handler._send_now = sent.append
        sessid = alice.session.sessid

        async def read() -> None:
            kit.handler.hold_flush()
            kit.handler.receive_input([InputItem(901, sessid, "text", ["ping a"], {}),
                                       InputItem(902, sessid, "text", ["ping b"], {})])
            assert sent == []  # nothing before the read's end, and no flush scheduled
            assert not kit.loop._ready  # type: ignore[attr-defined]
            kit.handler.release_flush()
            assert [type(frame) for frame in sent[0]] == [DataOut, Ack]
            assert [item.args[0] for item in sent[0][0].items] == ["pong a", "pong b"]
            assert sent[0][1].seqs == [901, 902]

        kit._run(read())
        assert len(sent) == 1
    finally:
        kit.close()
