"""The old portal's side of a live hand-over (`run.py reload-portal`): stop every plain
telnet session, send each with its socket to the new portal, then forget them, or take
them back if the new portal fails (portal/handover_frames has the exchange,
portal/move/takeover the new portal's side). Web sessions move without their
connections: the web door does its part (`WebMover`, portal/web/move.py).

The order, driven by `PortalProcess.move_all`:

    freeze()          send the server no more input; wait until it answered what it has
    detach_server()   (ipc listener closed) the server sends all its output and closes its
                      link; it holds what comes next and redials: nothing it sends is lost
    stop_sessions()   take each session's state (reading stops, MCCP2 ends; web
                      sessions: their records, their input stops)
    send_while_draining(channel)
                      the sessions in batches, then the counters, until Taken (a worker
                      thread); meanwhile the output already rendered is written out (the
                      new portal writes nothing before Bound, so the bytes cannot mix)
    commit()          the new portal holds them: forget them, close what cannot move
    let_go(channel)   (worker thread) after the ipc listener is closed; Bound
    undo()            on any failure: every session reads and writes here again
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import socket
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol

from ipc.frames import InputItem
from portal.handover_frames import (
    Bound,
    LetGo,
    MoveDone,
    MoveHello,
    SessionMove,
    Taken,
    WebRecord,
    batches,
    receive_move,
    send_move,
    web_batches,
)
from portal.session import PortalSession
from portal.sessions import PortalSessionHandler
from portal.telnet.session import TelnetSession

log = logging.getLogger("portal")

RECONNECT = "The portal is being upgraded; please reconnect."
Moving = tuple[TelnetSession, SessionMove, int]  # the session, its state, its descriptor


class WebMover(Protocol):
    """The web door's part of a hand-over (`portal.web.move.WebHandOut`)."""

    def stop(self, held: dict[int, list[InputItem]]
             ) -> Sequence[tuple[PortalSession, WebRecord]]: ...
    def commit(self) -> None: ...
    def undo(self) -> None: ...


class MoveFailed(RuntimeError):
    """A portal hand-over could not go on; the old portal keeps serving."""


class HandOut:
    """One hand-over of `connections` (every open telnet connection; only plain telnet
    ones move) by the portal whose sessions `handler` holds."""

    def __init__(self, handler: PortalSessionHandler, connections: Iterable[TelnetSession],
                 timeout: float, web: WebMover | None = None) -> None:
        self.handler = handler
        self.connections = list(connections)
        self.timeout = timeout
        self.web = web
        self.moves: list[Moving] = []
        self.web_moves: list[tuple[PortalSession, WebRecord]] = []
        self.clock = Stopwatch()

    def report(self) -> str:
        web = f", {len(self.web_moves)} web sessions" if self.web_moves else ""
        return f"{len(self.moves)} connections{web} moved; {self.clock}"

    async def freeze(self) -> None:
        """Send the server no more input and wait until it answered what it has."""
        if not await self.handler.freeze_input(self.timeout / 4):
            raise MoveFailed("input sent to the server was not answered in time")
        self.clock.lap("in-flight input answered")

    async def detach_server(self) -> None:
        """(The ipc listener is closed.) The server sends what it has and closes its link;
        it holds later output for the portal that takes its sessions, new or this one."""
        if not await self.handler.detach_server(self.timeout / 4):
            raise MoveFailed("the server did not let go of its link in time")
        self.clock.lap("server detached")

    def stop_sessions(self) -> None:
        """Stop every plain telnet session and take its state."""
        held = self.handler.held_input()
        for session in self.connections:
            if session.protocol_key == "telnet":  # TLS stays until the move is confirmed
                taken = session.move_out(held)
                if taken is not None:
                    self.moves.append((session, *taken))
        if self.web is not None:
            self.web_moves = list(self.web.stop(held))
        self.clock.lap("sessions stopped")

    async def send_while_draining(self, channel: socket.socket) -> None:
        """`send` in a worker thread while the sessions' output is written out (bounded);
        both are done when this returns, or the first failure is raised."""
        results = await asyncio.gather(asyncio.to_thread(self.send, channel),
                                       self._drain_output(self.timeout / 4),
                                       return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        self.clock.lap("taken, output written")

    async def _drain_output(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while any(session.output_pending() for session, _, _ in self.moves):
            if loop.time() > deadline:
                raise MoveFailed("some players' output could not be written in time")
            await asyncio.sleep(0.002)

    def send(self, channel: socket.socket) -> None:
        """(worker thread) Every session with its descriptor, then the counters; the
        new portal's answer."""
        send_move(channel, MoveHello(pid=os.getpid()))
        for batch, fds in batches([(move, fd) for _, move, fd in self.moves]):
            send_move(channel, batch, fds)
        for web in web_batches([record for _, record in self.web_moves]):
            send_move(channel, web)
        next_sessid, next_seq, mode = self.handler.next_ids()
        send_move(channel, MoveDone(run_id=self.handler.run_id, next_sessid=next_sessid,
                                    next_seq=next_seq, next_mode=mode,
                                    sessions=len(self.moves), web=len(self.web_moves)))
        expect_ok(channel, Taken, "the new portal did not take the connections")

    def commit(self) -> None:
        """The new portal holds them: forget them here (web pages are sent there); tell
        the players whose connection cannot move (TLS here; SSH too) why, and close it."""
        for session, _, _ in self.moves:
            session.moved()
        self.handler.moved([*(session for session, _, _ in self.moves),
                            *(session for session, _ in self.web_moves)])
        if self.web is not None:
            self.web.commit()
        unmoved = {*self.handler.sessions.values(),
                   *(s for s in self.connections if not s.moved_out)}
        for left in unmoved:
            left.disconnect(RECONNECT)
        late = sum(session.late_output for session, _, _ in self.moves)
        if late:
            log.warning("%d bytes of output came while moving and were not written", late)

    def let_go(self, channel: socket.socket) -> None:
        """(worker thread) Our ipc listener is closed: the new portal may bind it."""
        send_move(channel, LetGo())
        expect_ok(channel, Bound, "the new portal could not listen for the server")
        self.clock.lap("ipc socket passed")

    def undo(self) -> None:
        """The hand-over failed: every session reads and writes here again, with its held
        input, as if nothing had happened."""
        for session, move, _ in self.moves:
            if session.moved_out:  # given away, then the new portal failed: take it back
                session.moved_out = False
                self.handler.adopt(session, move.announced, move.input)
            session.stay()
        if self.web is not None:
            self.web.undo()
        self.handler.adopted()
        self.handler.thaw_input()


def expect_ok(channel: socket.socket, kind: type[Taken] | type[Bound], failure: str) -> None:
    """(worker thread) The new portal's answer must be `kind` with ok; MoveFailed if not."""
    frame, _ = receive_move(channel)
    if not isinstance(frame, kind) or not frame.ok:
        why = frame.message if isinstance(frame, kind) else type(frame).__name__
        raise MoveFailed(f"{failure}: {why}")


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while players wait on a hand-over (a full collection
    in a portal with thousands of sessions takes tens of milliseconds); it runs after.
    Every step inside is bounded by a timeout."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class Stopwatch:
    """Milliseconds per named step, for a hand-over's report."""

    def __init__(self) -> None:
        self.last = time.monotonic()
        self.laps: list[str] = []

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.laps.append(f"{name} +{(now - self.last) * 1000:.0f} ms")
        self.last = now

    def __str__(self) -> str:
        return ", ".join(self.laps)
