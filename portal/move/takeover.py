"""The new portal's side of a live hand-over: read the old portal's connections on the
event loop and adopt each as soon as its message is in; make their transports once the
move is bound (portal/handover_frames has the exchange, portal/move/handover the old
portal's side).

Reading on the loop, not in a worker thread, lets adoption overlap the old portal's
sending: each message is adopted while the next is on its way, and there is no thread
to wake for every message.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Protocol

from portal.handover_frames import (
    MoveDone,
    MoveHello,
    SessionBatch,
    SessionMove,
    WebBatch,
    WebRecord,
    receive_move,
)
from portal.sessions import PortalSessionHandler
from portal.telnet.session import TelnetSession

log = logging.getLogger("portal")

Adopt = Callable[[SessionMove, socket.socket], None]


class WebTaker(Protocol):
    """The web door's part of a take-over (`portal.web.move.WebTakeOver`)."""

    @property
    def adopted(self) -> int: ...
    def adopt(self, record: WebRecord) -> None: ...
    def replay_delayed(self) -> None: ...


class TakeOver:
    """Adopt the old portal's connections: `new_session(protocol_key)` makes (and
    remembers) a session; `refuse` (a test hook) takes nothing and says so."""

    def __init__(self, handler: PortalSessionHandler,
                 new_session: Callable[[str], TelnetSession], refuse: bool = False,
                 web: WebTaker | None = None) -> None:
        self.handler = handler
        self.new_session = new_session
        self.refuse = refuse
        self.web = web
        self.adopted: list[tuple[TelnetSession, socket.socket]] = []

    async def receive(self, channel: socket.socket, timeout: float) -> str:
        """Every connection's state, adopted as it comes; "" or why they are refused.
        No transport is made yet: a transport reads at once (uvloop starts reading after
        `connection_made`, whatever it paused), and bytes read here would die with this
        portal if the hand-over still failed."""
        self.handler.taking_over()
        done = await MoveReceiver(channel, self._adopt, self._adopt_web).receive(timeout)
        if self.refuse:
            return "test: this portal refuses the connections"
        if len(self.adopted) != done.sessions:
            return f"{len(self.adopted)} connections came of {done.sessions}"
        web = self.web.adopted if self.web is not None else 0
        if web != done.web:
            return f"{web} web sessions came of {done.web}"
        self.handler.adopt_run(done.run_id, done.next_sessid, done.next_seq, done.next_mode)
        for session, _ in self.adopted:
            session.replay_delayed()
        if self.web is not None:
            self.web.replay_delayed()
        self.handler.adopted()
        return ""

    def _adopt_web(self, record: WebRecord) -> None:
        if self.web is None:
            raise ValueError("web sessions came to a portal that cannot take them")
        if not self.refuse:
            self.web.adopt(record)

    def _adopt(self, move: SessionMove, sock: socket.socket) -> None:
        if self.refuse:
            sock.close()
            return
        session = self.new_session(move.protocol_key)
        session.adopt(move)
        self.adopted.append((session, sock))

    async def go_live(self) -> None:
        """The move is bound: read and write every adopted connection."""
        loop = asyncio.get_running_loop()

        async def connect(session: TelnetSession, sock: socket.socket) -> None:
            try:
                await loop.connect_accepted_socket(lambda: session, sock)
            except OSError as exc:  # closed by the client meanwhile
                log.info("session %d left during the hand-over: %s", session.sessid, exc)
                sock.close()
                session.connection_lost(exc)
                return
            session.go_live()

        await asyncio.gather(*(connect(session, sock) for session, sock in self.adopted))


class MoveReceiver:
    """Receive `MoveHello`, the connections (`SessionBatch`, or one `SessionMove` a message
    from a version-1 portal), the web sessions (`WebBatch`, to `adopt_web`), then
    `MoveDone`. `adopt(move, sock)` owns each socket it is given; a socket received with
    a message that fails is closed here."""

    PER_TURN = 4  # messages read per loop turn: the loop goes on heartbeating

    def __init__(self, channel: socket.socket, adopt: Adopt,
                 adopt_web: Callable[[WebRecord], None] | None = None) -> None:
        self.channel = channel
        self.adopt = adopt
        self.adopt_web = adopt_web
        self.hello = False
        self.moved = 0  # connections handed to `adopt`
        self._done: asyncio.Future[MoveDone] | None = None

    async def receive(self, timeout: float) -> MoveDone:
        """Every connection, adopted; the counters. TimeoutError past `timeout`,
        ConnectionError / ValueError for a channel that closes or sends nonsense."""
        loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        self.channel.setblocking(False)
        fd = self.channel.fileno()
        loop.add_reader(fd, self._readable)
        try:
            async with asyncio.timeout(timeout):
                return await self._done
        except TimeoutError:
            raise TimeoutError(f"the old portal sent {self.moved} connections in "
                               f"{timeout:.0f}s and stopped") from None
        finally:
            loop.remove_reader(fd)
            self.channel.setblocking(True)

    def _readable(self) -> None:
        done = self._done
        assert done is not None
        if done.done():
            return
        try:
            for _ in range(self.PER_TURN):
                try:
                    frame, fds = receive_move(self.channel)  # fds match the frame
                except BlockingIOError:
                    return
                finished = self._frame(frame, fds)
                if finished is not None:
                    done.set_result(finished)
                    return
        except Exception as exc:  # ConnectionError, ValueError, or adopt's own error
            done.set_exception(exc)

    def _frame(self, frame: object, fds: list[int]) -> MoveDone | None:
        if not self.hello:
            if not isinstance(frame, MoveHello):
                close_all(fds)
                raise ValueError(f"expected MoveHello, got {type(frame).__name__}")
            self.hello = True
            return None
        match frame:
            case MoveDone():
                return frame
            case SessionMove():
                moves = [frame]
            case SessionBatch(moves=moves):
                pass
            case WebBatch(records=records):
                if self.adopt_web is None:
                    raise ValueError("web sessions in a hand-over that takes none")
                for record in records:
                    self.adopt_web(record)
                return None
            case _:
                close_all(fds)
                raise ValueError(f"unexpected {type(frame).__name__} in a hand-over")
        if len(moves) != len(fds):
            close_all(fds)
            raise ValueError(f"{len(moves)} connections came with {len(fds)} descriptors")
        for index, move in enumerate(moves):
            try:
                self.adopt(move, socket.socket(fileno=fds[index]))
            except BaseException:
                close_all(fds[index + 1:])
                raise
            self.moved += 1
        return None


def close_all(fds: list[int]) -> None:
    for fd in fds:
        socket.close(fd)
