"""The portal hand-over's sans-I/O parts: TelnetProtocol.snapshot()/restore(), the move
frames, and the link's freeze / moved / adopt (portal.handover_frames, portal.link)."""

from __future__ import annotations

import contextlib
import os
import socket
import zlib
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipc.frames import InputItem, SessionData, SyncDone
from ipc.settings import PortalSettings
from portal.handover_frames import (
    MAX_FDS,
    MAX_MESSAGE,
    Bound,
    LetGo,
    Move,
    MoveDone,
    MoveHello,
    SessionBatch,
    SessionMove,
    Taken,
    TelnetState,
    WebBatch,
    WebRecord,
    batches,
    decode_move,
    encode_move,
    fits,
    pack_messages,
    receive_move,
    send_move,
    unpack_messages,
    web_batches,
)
from portal.link import Link, Pause, Send
from portal.telnet import (
    DO,
    GMCP,
    IAC,
    MCCP2,
    NAWS,
    SB,
    SE,
    TTYPE,
    WILL,
    WONT,
    FlagsChanged,
    LineReceived,
    TelnetEvent,
    TelnetProtocol,
)
from tests.unit.telnet.test_fuzz import TOKENS

MCCP_START = bytes((IAC, SB, MCCP2, IAC, SE))


def negotiated() -> TelnetProtocol:
    """A session whose client agreed to MCCP2 and GMCP, reported 100x40, refused TTYPE."""
    proto = TelnetProtocol()
    proto.initiate()
    proto.receive_data(bytes((IAC, DO, MCCP2, IAC, DO, GMCP, IAC, WILL, NAWS, IAC, WONT, TTYPE))
                       + bytes((IAC, SB, NAWS, 0, 100, 0, 40, IAC, SE)))
    proto.settle()
    proto.events_received()
    proto.data_to_send()
    return proto


def after_start(data: bytes) -> bytes:
    """What follows the (last) MCCP2 start marker: the zlib stream."""
    start = data.rfind(MCCP_START)
    return data if start < 0 else data[start + len(MCCP_START):]


def frames_round_trip(state: TelnetState) -> TelnetState:
    move = SessionMove(protocol_key="telnet", session=SessionData(sessid=1, protocol_key="telnet",
                       address="127.0.0.1"), telnet=state)
    back = decode_move(encode_move(move))
    assert isinstance(back, SessionMove)
    return back.telnet


def test_snapshot_ends_the_mccp2_stream_and_restore_starts_a_new_one() -> None:
    old = negotiated()
    old.send_text("before\n")
    sent = old.data_to_send()
    state = old.snapshot()
    sent += old.data_to_send()  # the stream's end
    client = zlib.decompressobj()
    assert client.decompress(after_start(sent)) == b"before\r\n"
    assert client.eof, "the client's decompressor must see the stream end"
    new = TelnetProtocol()
    new.restore(frames_round_trip(state))
    new.send_text("after\n")
    resumed = new.data_to_send()
    assert resumed.startswith(MCCP_START)
    second = zlib.decompressobj()
    assert second.decompress(after_start(resumed)) == b"after\r\n"
    assert new.flags == old.flags | {"MCCP": True}
    assert new.flags["SCREENWIDTH"] == {0: 100} and new.flags["GMCP"]


def test_restore_keeps_the_partial_line_and_sends_gmcp() -> None:
    old = negotiated()
    old.receive_data(b"hal")
    state = old.snapshot()
    new = TelnetProtocol()
    new.restore(frames_round_trip(state))
    new.receive_data(b"f\r\n")
    assert new.events_received() == [LineReceived("half")]
    new.send_oob("Char.Vitals", [], {"hp": 3})
    assert b"Char.Vitals" in zlib.decompressobj().decompress(after_start(new.data_to_send()))


def test_a_failed_move_restores_the_same_instance() -> None:
    proto = negotiated()
    state = proto.snapshot()
    proto.data_to_send()
    proto.restore(state)
    proto.send_text("still here\n")
    out = proto.data_to_send()
    assert zlib.decompressobj().decompress(after_start(out)) == b"still here\r\n"


def events_of(proto: TelnetProtocol, chunks: list[bytes]) -> list[TelnetEvent]:
    events: list[TelnetEvent] = []
    for chunk in chunks:
        proto.receive_data(chunk)
        events += [e for e in proto.events_received() if not isinstance(e, FlagsChanged)]
    return events


@settings(max_examples=150, deadline=None)
@given(st.lists(TOKENS | st.binary(max_size=16), max_size=12),
       st.lists(TOKENS | st.binary(max_size=16), max_size=12))
def test_a_moved_parser_goes_on_exactly_as_the_old_one(before: list[bytes],
                                                       after: list[bytes]) -> None:
    old = TelnetProtocol(max_line=32, max_subneg=48)
    old.initiate()
    events_of(old, before)
    state = old.snapshot()
    old.restore(state)  # the control: the old parser after a failed move
    new = TelnetProtocol(max_line=32, max_subneg=48)
    new.restore(frames_round_trip(state))
    old.data_to_send(), new.data_to_send()
    assert events_of(new, after) == events_of(old, after)
    assert new.flags == old.flags
    assert new.data_to_send() == old.data_to_send()


SESSIONS = st.builds(
    SessionData, sessid=st.integers(0, 2**31), protocol_key=st.just("telnet"),
    address=st.text(max_size=20), uid=st.none() | st.integers(0, 2**31),
    uname=st.none() | st.text(max_size=10), logged_in=st.booleans(),
    cmd_total=st.integers(0, 2**31),
    server_data=st.dictionaries(st.text(max_size=5),
                                st.integers(-2**63, 2**63) | st.text(max_size=5), max_size=3))
ITEMS = st.builds(InputItem, st.integers(1, 2**40), st.integers(0, 2**31), st.just("text"),
                  st.lists(st.text(max_size=10), max_size=2), st.just({}))
MOVES: st.SearchStrategy[Move] = st.one_of(
    st.builds(MoveHello, pid=st.integers(0, 2**22)),
    st.builds(SessionMove, protocol_key=st.just("telnet"), session=SESSIONS,
              telnet=st.builds(lambda line: negotiated_state(line), st.binary(max_size=30)),
              input=st.lists(ITEMS, max_size=4), announced=st.booleans()),
    st.builds(SessionBatch, moves=st.lists(st.builds(
        SessionMove, protocol_key=st.just("telnet"), session=SESSIONS,
        telnet=st.builds(lambda line: negotiated_state(line), st.binary(max_size=30))),
        max_size=3)),
    st.builds(MoveDone, run_id=st.text(max_size=32), next_sessid=st.integers(1, 2**40),
              next_seq=st.integers(1, 2**40), next_mode=st.sampled_from(["start", "crash"]),
              sessions=st.integers(0, 10**6), web=st.integers(0, 10**6)),
    st.builds(WebBatch, records=st.lists(st.builds(
        WebRecord, protocol_key=st.sampled_from(["webclient/websocket", "webclient/ajax"]),
        session=SESSIONS, csessid=st.text(max_size=20), cuid=st.text(max_size=20),
        bound=st.booleans(), wire=st.text(max_size=20),
        waiting=st.lists(st.tuples(st.booleans(), st.binary(max_size=20)), max_size=3),
        input=st.lists(ITEMS, max_size=3),
        delayed=st.lists(st.tuples(st.just("text"), st.lists(st.text(max_size=5), max_size=1),
                                   st.just({})), max_size=2),
        announced=st.booleans()), max_size=3)),
    st.builds(Taken, ok=st.booleans(), message=st.text(max_size=40)),
    st.just(LetGo()),
    st.builds(Bound, ok=st.booleans(), message=st.text(max_size=40)),
)


def negotiated_state(line: bytes) -> TelnetState:
    proto = negotiated()
    proto.receive_data(line.replace(b"\r", b"").replace(b"\n", b"").replace(b"\xff", b""))
    return proto.snapshot()


@settings(max_examples=100, deadline=None)
@given(MOVES)
def test_every_move_frame_round_trips(frame: Move) -> None:
    assert decode_move(encode_move(frame)) == frame


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_undecodable_bytes_are_a_value_error(data: bytes) -> None:
    with contextlib.suppress(ValueError):  # anything else fails the test
        decode_move(data)


def small_move(sessid: int, server_data: dict[str, Any] | None = None) -> SessionMove:
    return SessionMove(protocol_key="telnet", session=SessionData(
        sessid=sessid, protocol_key="telnet", address="127.0.0.1",
        server_data=server_data or {}), telnet=negotiated().snapshot())


def test_descriptors_travel_with_their_batch_in_order() -> None:
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pairs = [socket.socketpair() for _ in range(3)]
    try:
        batch = SessionBatch(moves=[small_move(n) for n in (1, 2, 3)])
        send_move(left, batch, [a.fileno() for a, _ in pairs])
        send_move(left, LetGo())
        frame, fds = receive_move(right)
        assert frame == batch and len(fds) == 3
        for fd, (_, b) in zip(fds, pairs, strict=True):
            with socket.socket(fileno=fd) as moved:
                moved.sendall(b"through the copy %d" % fd)
                assert b.recv(100) == b"through the copy %d" % fd
        assert receive_move(right) == (LetGo(), [])
        left.close()
        with pytest.raises(ConnectionError):
            receive_move(right)
    finally:
        for a, b in pairs:
            a.close()
            b.close()
        right.close()


def test_descriptors_the_frame_does_not_name_are_refused_and_closed() -> None:
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    a, b = socket.socketpair()
    with left, right, a, b:
        with pytest.raises(ValueError):  # the sender checks
            send_move(left, LetGo(), [a.fileno()])
        socket.send_fds(left, [encode_move(LetGo())], [a.fileno()])  # a hostile sender
        before = len(os_fds())
        with pytest.raises(ValueError, match="descriptors"):
            receive_move(right)
        assert len(os_fds()) == before  # the received copy was closed


def os_fds() -> list[str]:
    return os.listdir("/proc/self/fd")


def test_batches_keep_order_and_stay_within_a_message() -> None:
    moves = [(small_move(n), 100 + n) for n in range(1, 600)]
    got = list(batches(moves))
    assert [m.session.sessid for batch, _ in got for m in batch.moves] == list(range(1, 600))
    assert [fd for _, fds in got for fd in fds] == [100 + n for n in range(1, 600)]
    assert all(len(fds) <= MAX_FDS and len(encode_move(batch)) <= MAX_MESSAGE
               for batch, fds in got)
    assert len(got) <= 5  # about 1.3 KB a session: over 100 sessions a message
    big = [(small_move(n, {"notes": "x" * 40_000}), n) for n in range(1, 10)]
    sized = list(batches(big))
    assert all(len(encode_move(batch)) <= MAX_MESSAGE for batch, _ in sized)
    assert sum(len(fds) for _, fds in sized) == 9 and len(sized) > 2
    with pytest.raises(ValueError, match="too big"):
        list(batches([(small_move(1, {"notes": "x" * MAX_MESSAGE}), 5)]))


def web_record(sessid: int, waiting: list[str | bytes] | None = None) -> WebRecord:
    return WebRecord(protocol_key="webclient/websocket", session=SessionData(
        sessid=sessid, protocol_key="webclient/websocket", address="127.0.0.1"),
        csessid=f"page{sessid}", cuid="c1", waiting=pack_messages(waiting or []))


def test_web_batches_keep_order_and_stay_within_a_message() -> None:
    records = [web_record(n, ["x" * 30_000]) for n in range(1, 20)]
    got = list(web_batches(records))
    assert [r.session.sessid for batch in got for r in batch.records] == list(range(1, 20))
    assert all(len(encode_move(batch)) <= MAX_MESSAGE for batch in got) and len(got) > 3
    assert len(list(web_batches([web_record(n) for n in range(500)]))) == 1
    assert not fits(web_record(1, ["x" * MAX_MESSAGE]))
    with pytest.raises(ValueError, match="too big"):
        list(web_batches([web_record(1, ["x" * MAX_MESSAGE])]))


@given(st.lists(st.text(max_size=8) | st.binary(max_size=8), max_size=6))
def test_waiting_output_keeps_its_kind_and_order(messages: list[str | bytes]) -> None:
    record = decode_move(encode_move(WebBatch(records=[web_record(1, messages)])))
    assert isinstance(record, WebBatch)
    assert unpack_messages(record.records[0].waiting) == messages


# ---------------------------------------------------------------- the link


def link(**portal: Any) -> Link:
    return Link(PortalSettings(**portal), "run1", lambda sessid: SessionData(
        sessid=sessid, protocol_key="telnet", address="x"), clock=lambda: 0.0)


def sent(effects: list[Any]) -> list[Any]:
    return [e.frame for e in effects if isinstance(e, Send)]


def attached(the_link: Link) -> None:
    the_link.server_hello(1, 10, False)
    the_link.receive_frame(1, SyncDone())


def test_a_frozen_link_sends_no_input_and_moves_held_input_with_its_seqs() -> None:
    old = link()
    attached(old)
    old.connect(1)
    old.data_in(1, "text", ["a"], {})
    old.pump()
    old.freeze(True)
    old.data_in(1, "text", ["b"], {})
    old.data_in(1, "text", ["c"], {})
    assert old.pump() == []
    old.connect(2)
    old.data_in(2, "text", ["e"], {})
    held = old.held_input()
    assert old.announced(1) and [i.args[0] for i in held[1]] == ["b", "c"]
    old.moved({1, 2})
    assert old.held_total == 0 and not old.peers and not old.pending
    new = link()
    new.adopt_counters(*old.counters())
    new.adopt(2, True, held[2])
    new.adopt(1, True, held[1])
    new.adopted()
    new.data_in(1, "text", ["d"], {})
    assert new.connect(3) == [], "a taking-over portal tells nobody 'restarting'"
    new.server_hello(5, 10, False)
    effects = new.receive_frame(5, SyncDone())
    effects += new.pump()
    data = [f for f in sent(effects) if type(f).__name__ == "DataIn"]
    assert [(i.seq, i.args[0]) for i in data[0].items] == [(2, "b"), (3, "c"), (4, "e"),
                                                           (5, "d")]


def test_adopting_a_full_buffer_pauses_the_player() -> None:
    new = link(input_buffer_per_session=10)
    items = [InputItem(n, 1, "text", [str(n)], {}) for n in range(1, 20)]
    assert Pause(1) in new.adopt(1, True, items)


def test_thawing_sends_the_held_input() -> None:
    old = link()
    attached(old)
    old.connect(1)
    old.freeze(True)
    old.data_in(1, "text", ["x"], {})
    assert old.pump() == []
    effects = old.freeze(False)
    assert any(type(e).__name__ == "PumpSoon" for e in effects)
    assert sent(old.pump())[0].items[0].args == ["x"]


def test_telnet_state_is_plain_msgpack() -> None:
    state = negotiated().snapshot()
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(state), type=TelnetState) == state


def test_input_over_the_parser_budget_moves_too() -> None:
    old = TelnetProtocol(max_bytes=8)
    old.receive_data(b"ping one\r\nping two\r\n")  # only 8 bytes are parsed per call
    assert old.backlog
    new = TelnetProtocol(max_bytes=8)
    new.restore(frames_round_trip(old.snapshot()))
    while new.backlog:
        new.receive_more()
    assert [e for e in new.events_received() if isinstance(e, LineReceived)] == [
        LineReceived("ping one"), LineReceived("ping two")]


def test_a_batch_at_the_size_limit_still_fits_one_message() -> None:
    """Two sessions whose sizes add up to just under MAX_MESSAGE: the batch's own bytes
    (tag, key, list header) must not push the message over it."""
    base = len(encode_move(small_move(1, {"notes": ""})))
    for spare in range(0, 48, 2):  # how far under the limit the two add up
        pad = (MAX_MESSAGE - spare) // 2 - base
        moves = [(small_move(n, {"notes": "x" * pad}), n) for n in (1, 2)]
        for batch, _ in batches(moves):
            assert len(encode_move(batch)) <= MAX_MESSAGE, spare
