"""The new portal's receiving end of a hand-over (portal.takeover.MoveReceiver), over a
real seqpacket socketpair: what it adopts, in which order, and what it refuses."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipc.frames import SessionData
from portal.handover_frames import (
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
    encode_move,
    send_move,
)
from portal.move.takeover import MoveReceiver

DONE = MoveDone(run_id="run1", next_sessid=9, next_seq=40, next_mode="crash", sessions=0)


def move(sessid: int) -> SessionMove:
    return SessionMove(protocol_key="telnet", session=SessionData(
        sessid=sessid, protocol_key="telnet", address="127.0.0.1"),
        telnet=TelnetState(flags={}, reported={}, settled=True, us={}, him={}))


@pytest.fixture
def channel() -> Iterator[tuple[socket.socket, socket.socket]]:
    old, new = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with old, new:
        yield old, new


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def receive(new: socket.socket, timeout: float = 5.0
            ) -> tuple[MoveDone | BaseException, list[tuple[int, socket.socket]]]:
    """Run a receiver to its end; what it returned or raised, and what it adopted."""
    adopted: list[tuple[int, socket.socket]] = []

    async def run() -> MoveDone:
        receiver = MoveReceiver(new, lambda m, sock: adopted.append((m.session.sessid, sock)))
        return await receiver.receive(timeout)

    try:
        result: MoveDone | BaseException = asyncio.run(run())
    except (ValueError, ConnectionError, TimeoutError) as exc:
        result = exc
    return result, adopted


def test_every_connection_is_adopted_in_order_with_its_own_socket(
        channel: tuple[socket.socket, socket.socket]) -> None:
    old, new = channel
    pairs = [socket.socketpair() for _ in range(300)]
    adopted: list[tuple[int, socket.socket]] = []
    try:
        moves = [(move(n), pairs[n][0].fileno()) for n in range(300)]
        send_move(old, MoveHello())
        for batch, fds in batches(moves):  # 250 + 50: two messages
            send_move(old, batch, fds)
        send_move(old, DONE)
        result, adopted = receive(new)
        assert result == DONE
        assert [sessid for sessid, _ in adopted] == list(range(300))
        for n in (0, 299):
            adopted[n][1].sendall(b"to %d" % n)
            assert pairs[n][1].recv(10) == b"to %d" % n
    finally:
        for sock in [*(s for pair in pairs for s in pair), *(s for _, s in adopted)]:
            sock.close()


def test_web_sessions_are_adopted_after_the_connections(
        channel: tuple[socket.socket, socket.socket]) -> None:
    """A WebBatch has no descriptors; its records go to `adopt_web`, in order."""
    old, new = channel
    order: list[str] = []
    records = [WebRecord(protocol_key="webclient/ajax", session=SessionData(
        sessid=n, protocol_key="webclient/ajax", address="127.0.0.1"), csessid=f"p{n}",
        cuid="c") for n in (3, 4)]
    a, b = socket.socketpair()
    with a, b:
        send_move(old, MoveHello())
        send_move(old, SessionBatch(moves=[move(2)]), [a.fileno()])
        send_move(old, WebBatch(records=records))
        done = MoveDone(run_id="r", next_sessid=5, next_seq=1, next_mode="crash", sessions=1,
                        web=2)
        send_move(old, done)

        async def run() -> MoveDone:
            def adopt(m: SessionMove, sock: socket.socket) -> None:
                order.append(f"telnet {m.session.sessid}")
                sock.close()

            receiver = MoveReceiver(new, adopt, lambda r: order.append(f"web {r.session.sessid}"))
            return await receiver.receive(5.0)

        assert asyncio.run(run()) == done
    assert order == ["telnet 2", "web 3", "web 4"]
    takes_none = MoveReceiver(new, lambda m, sock: None)
    takes_none.hello = True
    with pytest.raises(ValueError, match="web sessions"):
        takes_none._frame(WebBatch(records=records), [])


def test_a_version_1_portal_sends_one_connection_a_message(
        channel: tuple[socket.socket, socket.socket]) -> None:
    old, new = channel
    a, b = socket.socketpair()
    with a, b:
        send_move(old, MoveHello(version=1))
        send_move(old, move(7), [a.fileno()])
        send_move(old, DONE)
        result, adopted = receive(new)
        assert result == DONE and [sessid for sessid, _ in adopted] == [7]
        adopted[0][1].close()


@pytest.mark.parametrize("frames", [
    [DONE],  # no hello
    [MoveHello(), Taken(ok=True)],  # a frame that has no place here
    [MoveHello(), LetGo()],
])
def test_anything_out_of_place_is_refused(channel: tuple[socket.socket, socket.socket],
                                          frames: list[Move]) -> None:
    old, new = channel
    for frame in frames:
        send_move(old, frame)
    result, adopted = receive(new)
    assert isinstance(result, ValueError) and not adopted


def test_an_old_portal_that_goes_away_or_stalls_ends_it(
        channel: tuple[socket.socket, socket.socket]) -> None:
    old, new = channel
    send_move(old, MoveHello())
    result, _ = receive(new, timeout=0.3)
    assert isinstance(result, TimeoutError) and "sent 0 connections" in str(result)
    old.close()
    result, _ = receive(new)
    assert isinstance(result, ConnectionError)


def test_descriptors_that_do_not_match_the_batch_are_closed(
        channel: tuple[socket.socket, socket.socket]) -> None:
    old, new = channel
    a, b = socket.socketpair()
    with a, b:
        before = open_fds()
        send_move(old, MoveHello())
        # two connections, one descriptor: a hostile or broken sender
        socket.send_fds(old, [encode_move(SessionBatch(moves=[move(1), move(2)]))],
                        [a.fileno()])
        result, adopted = receive(new)
        assert isinstance(result, ValueError) and not adopted
        assert open_fds() == before


@settings(max_examples=50, deadline=None)
@given(st.lists(st.sampled_from(["hello", "batch", "done", "taken", "garbage"]),
                min_size=1, max_size=6))
def test_any_sequence_of_messages_ends_cleanly(kinds: list[str]) -> None:
    """Whatever comes, the receiver returns MoveDone or raises a ValueError /
    ConnectionError, and no descriptor is left open that nobody adopted."""
    old, new = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    a, b = socket.socketpair()
    with old, new, a, b:
        before = open_fds()
        for kind in kinds:
            if kind == "hello":
                send_move(old, MoveHello())
            elif kind == "batch":
                send_move(old, SessionBatch(moves=[move(1)]), [a.fileno()])
            elif kind == "done":
                send_move(old, DONE)
            elif kind == "taken":
                send_move(old, Taken(ok=True))
            else:
                old.send(b"\xc1 not msgpack")
        old.shutdown(socket.SHUT_WR)
        result, adopted = receive(new)
        assert isinstance(result, (MoveDone, ValueError, ConnectionError))
        for _, sock in adopted:
            sock.close()
        assert open_fds() == before
