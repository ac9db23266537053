"""The portal's sessions and its link to the game server.

Theory of operation
-------------------
Every line a player sends gets a `seq`, unique within this portal run, and goes into
`pending`. While a server is attached, `pending` flows into it in order, at most
`inflight_window` inputs at a time; sent inputs wait in `inflight` until the server
acknowledges them (after the output they caused). When the server goes away, for any
reason, `inflight` goes back to the front of `pending`, so whatever it had not finished
is replayed, in order, into the next server: nothing is lost, and nothing the player
has seen an answer to is sent twice.

The portal's view of its server is a small state machine (`LINK_TRANSITIONS`):

    NONE --server hello--> ATTACHING --SyncDone--> ATTACHED --Handover--> HANDING_OVER
      ^                                                                      |
      +------------- server lost (from any state) ------- old server stopped-+--> ATTACHING

A standby server (started for a reload) waits beside the attached one until the
supervisor's `Handover`; the old server then stops, pushes its final session data, and
the standby is attached with the same sessions. Players never lose their socket.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from ipc.connection import FrameConnection
from ipc.frames import (
    Ack,
    AdminRequest,
    DataIn,
    DataOut,
    Frame,
    Heartbeat,
    Hello,
    InputItem,
    PConn,
    PConnSync,
    PDisconn,
    PSync,
    SDisconn,
    SDisconnAll,
    ServerStopped,
    SLogin,
    SSync,
    StopServer,
    SyncDone,
    Welcome,
)
from ipc.settings import PortalSettings
from portal.guard import PortalGuard
from portal.session import PortalSession

log = logging.getLogger(__name__)

MSG_RESTARTING = "|yThe game is restarting; your input will be answered in a moment.|n"
MSG_BACK = "|g... The game is back.|n"
MSG_FULL = ("|yYou are typing faster than the game can answer; "
            "your input is held until it catches up.|n")
MSG_DOWN = "|rThe game could not be restarted; an admin has been told. You stay connected.|n"


# Sessions per PSync frame: about 0.5 KB each, so a chunk stays far below the frame limit.
PSYNC_CHUNK = 500


class LinkState(StrEnum):
    NONE = "none"
    ATTACHING = "attaching"
    ATTACHED = "attached"
    HANDING_OVER = "handing_over"


class LinkEvent(StrEnum):
    SERVER_HELLO = "server_hello"
    SYNC_DONE = "sync_done"
    HANDOVER = "handover"
    OLD_STOPPED = "old_stopped"
    SERVER_LOST = "server_lost"


class LocalProtocolError(RuntimeError):
    """An illegal transition of the portal's link state: a bug in the portal."""


LINK_TRANSITIONS: dict[tuple[LinkState, LinkEvent], LinkState] = {
    (LinkState.NONE, LinkEvent.SERVER_HELLO): LinkState.ATTACHING,
    (LinkState.ATTACHING, LinkEvent.SYNC_DONE): LinkState.ATTACHED,
    (LinkState.ATTACHED, LinkEvent.HANDOVER): LinkState.HANDING_OVER,
    (LinkState.HANDING_OVER, LinkEvent.OLD_STOPPED): LinkState.ATTACHING,
    (LinkState.NONE, LinkEvent.HANDOVER): LinkState.ATTACHING,
    (LinkState.ATTACHING, LinkEvent.SERVER_LOST): LinkState.NONE,
    (LinkState.ATTACHED, LinkEvent.SERVER_LOST): LinkState.NONE,
    (LinkState.HANDING_OVER, LinkEvent.SERVER_LOST): LinkState.NONE,
    (LinkState.NONE, LinkEvent.SERVER_LOST): LinkState.NONE,
}


class PortalSessionHandler:
    def __init__(
        self,
        settings: PortalSettings,
        secret: str,
        on_request: Callable[[str, int], None],
        on_handover: Callable[[bool, str], None],
    ) -> None:
        self.settings = settings
        self.secret = secret
        self.run_id = uuid.uuid4().hex
        self.sessions: dict[int, PortalSession] = {}
        self.state = LinkState.NONE
        self.server: FrameConnection | None = None
        self.standby: FrameConnection | None = None
        self.pending: deque[InputItem] = deque()
        self.inflight: dict[int, InputItem] = {}
        self.held: dict[int, int] = {}  # sessid -> inputs pending or in flight
        self.held_total = 0
        self.next_mode = "start"
        self.shutting_down = False
        self._next_sessid = 1
        self._next_seq = 1
        self._pump_scheduled = False
        self._to_write: list[PortalSession] = []
        self._write_scheduled = False
        self._paused: set[int] = set()
        self._handover_mode = ""
        self._handover_timer: asyncio.TimerHandle | None = None
        self._on_request = on_request
        self._on_handover = on_handover
        self._server_gone = asyncio.Event()
        self._server_gone.set()
        self.guard = PortalGuard(settings, self.data_in, lambda: list(self.sessions.values()))

    # ------------------------------------------------------------ link state

    def _transition(self, event: LinkEvent) -> None:
        try:
            self.state = LINK_TRANSITIONS[(self.state, event)]
        except KeyError:
            raise LocalProtocolError(f"link event {event} in state {self.state}") from None

    # ------------------------------------------------------------ sessions

    def admit(self, address: str) -> str | None:
        """A connection from `address` was accepted. Every protocol calls this first, before
        any negotiation; a returned string is the refusal to send before closing it (and
        then `release` is not called). Otherwise call `release(address)` once it closes."""
        return self.guard.admit(address)

    def release(self, address: str) -> None:
        """The connection `admit` let in has closed."""
        self.guard.release(address)

    def connect(self, session: PortalSession) -> None:
        """Register a new connection; the server hears of it now or when it attaches."""
        session.sessid = self._next_sessid
        self._next_sessid += 1
        self.sessions[session.sessid] = session
        if self.state is LinkState.ATTACHED and self.server is not None:
            session.announced = True
            self.server.send(PConn(session=session.get_sync_data()))
        elif self.state is LinkState.NONE:
            self._tell_waiting(session)

    def disconnect(self, session: PortalSession, reason: str = "") -> None:
        """The client went away (or we closed it): forget it and tell the server."""
        if self.sessions.pop(session.sessid, None) is None:
            return
        self.guard.session_closed(session)
        self._paused.discard(session.sessid)
        count = self.held.pop(session.sessid, 0)
        if count:
            self.held_total -= count
            self.pending = deque(i for i in self.pending if i.sessid != session.sessid)
        if session.announced and self.state is LinkState.ATTACHED and self.server is not None:
            self.server.send(PDisconn(sessid=session.sessid, reason=reason))

    def write_soon(self, session: PortalSession) -> None:
        """Call `session.flush_output()` at the end of this loop turn (one write per turn)."""
        self._to_write.append(session)
        if not self._write_scheduled:
            self._write_scheduled = True
            asyncio.get_running_loop().call_soon(self._write_all)

    def _write_all(self) -> None:
        self._write_scheduled = False
        sessions, self._to_write = self._to_write, []
        for session in sessions:
            session.flush_output()

    def flags_changed(self, session: PortalSession) -> None:
        if session.announced and self.state is LinkState.ATTACHED and self.server is not None:
            self.server.send(PConnSync(sessid=session.sessid,
                                       protocol_flags=session.protocol_flags))

    def data_in(self, session: PortalSession, cmdname: str, args: list[Any],
                kwargs: dict[str, Any]) -> None:
        """Queue one input; it reaches the server in order, now or after a restart.
        Protocols call `session.data_in`, which passes it through `self.guard` first."""
        seq = self._next_seq
        self._next_seq += 1
        self.pending.append(InputItem(seq, session.sessid, cmdname, args, kwargs))
        count = self.held.get(session.sessid, 0) + 1
        self.held[session.sessid] = count
        self.held_total += 1
        if (count >= self.settings.input_buffer_per_session
                or self.held_total >= self.settings.input_buffer_total):
            self._pause(session)
        if self.state is LinkState.ATTACHED:
            self._schedule_pump()
        elif self.state is LinkState.NONE:  # an outage; a hand-over is silent
            self._tell_waiting(session)

    def _tell_waiting(self, session: PortalSession) -> None:
        if not session.told_waiting and not self.shutting_down:
            session.told_waiting = True
            session.send_text(MSG_RESTARTING)

    def _pause(self, session: PortalSession) -> None:
        if session.sessid not in self._paused:
            self._paused.add(session.sessid)
            session.pause_input()
            if not session.told_full:
                session.told_full = True
                session.send_text(MSG_FULL)

    def _release(self, sessid: int) -> None:
        """One input of `sessid` is done: count it down, and read again when room is back."""
        if sessid not in self.held:
            return  # the session went away; its inputs were uncounted then
        count = self.held[sessid] - 1
        self.held_total -= 1
        if count > 0:
            self.held[sessid] = count
        else:
            self.held.pop(sessid, None)
        if sessid in self._paused and count <= self.settings.input_buffer_per_session // 2 \
                and self.held_total < self.settings.input_buffer_total:
            self._paused.discard(sessid)
            session = self.sessions.get(sessid)
            if session is not None:
                session.told_full = False
                session.resume_input()

    def _schedule_pump(self) -> None:
        if not self._pump_scheduled:
            self._pump_scheduled = True
            asyncio.get_running_loop().call_soon(self._pump)

    def _pump(self) -> None:
        """Send pending input to the attached server, within the in-flight window."""
        self._pump_scheduled = False
        server = self.server
        if self.state is not LinkState.ATTACHED or server is None:
            return
        room = self.settings.inflight_window - len(self.inflight)
        if room <= 0 or not self.pending:
            return
        batch: list[InputItem] = []
        pending, inflight = self.pending, self.inflight
        while pending and room > 0:
            item = pending.popleft()
            inflight[item.seq] = item
            batch.append(item)
            room -= 1
        server.send(DataIn(items=batch))
        server.flush()  # we already run at the end of the turn: don't wait for another

    def _requeue_inflight(self) -> None:
        if self.inflight:
            sessions = self.sessions
            alive = [item for item in self.inflight.values() if item.sessid in sessions]
            self.pending.extendleft(reversed(alive))
            self.inflight = {}

    def drop_input(self, seq: int, reason: str) -> None:
        """Forget one input (it hung the server) and tell its player."""
        item = self.inflight.pop(seq, None)
        if item is None:
            for queued in self.pending:
                if queued.seq == seq:
                    item = queued
                    self.pending.remove(queued)
                    break
        if item is None:
            return
        self._release(item.sessid)
        session = self.sessions.get(item.sessid)
        if session is not None:
            line = item.args[0] if item.cmdname == "text" and item.args else item.cmdname
            session.send_text(f"|rYour command '{line}' {reason} and was dropped.|n")

    # ------------------------------------------------------------ servers dialling in

    def server_connected(self, conn: FrameConnection, hello: Hello) -> None:
        """A server said hello on the ipc socket (already authenticated)."""
        conn.state.update(role="server", pid=hello.pid)
        conn.trusted = True
        if hello.standby:
            if self.standby is not None:
                self.standby.close("replaced by a newer standby")
            self.standby = conn
            conn.send(Welcome(run_id=self.run_id))
            log.info("standby server %d is waiting", hello.pid)
            return
        if self.state is not LinkState.NONE:
            conn.refuse(f"a server is already attached (link is {self.state})")
            return
        conn.send(Welcome(run_id=self.run_id))
        self._transition(LinkEvent.SERVER_HELLO)
        self._attach(conn, self.next_mode)

    def _attach(self, conn: FrameConnection, mode: str) -> None:
        self.server = conn
        self._server_gone.clear()
        announced = [s for s in self.sessions.values() if s.announced]
        for start in range(0, max(len(announced), 1), PSYNC_CHUNK):
            chunk = announced[start : start + PSYNC_CHUNK]
            more = start + PSYNC_CHUNK < len(announced)
            conn.send(PSync(mode=mode, run_id=self.run_id, more=more,
                            sessions=[s.get_sync_data() for s in chunk]))
        log.info("attaching server %s in mode %s (%d sessions)",
                 conn.state.get("pid"), mode, len(announced))

    def _attached(self) -> None:
        self._transition(LinkEvent.SYNC_DONE)
        server = self.server
        assert server is not None
        self.next_mode = "crash"
        for session in self.sessions.values():
            if not session.announced:
                session.announced = True
                server.send(PConn(session=session.get_sync_data()))
            if session.told_waiting:
                session.told_waiting = False
                session.send_text(MSG_BACK)
        self._schedule_pump()
        if self._handover_mode:
            self._handover_mode = ""
            self._cancel_handover_timer()
            self._on_handover(True, f"server {server.state.get('pid')} attached")

    def handover(self, mode: str, standby_pid: int) -> None:
        """Supervisor: stop the attached server with `mode`, then attach the standby."""
        standby = self.standby
        if standby is None or standby.state.get("pid") != standby_pid:
            self._on_handover(False, f"standby server {standby_pid} is not connected")
            return
        self._handover_mode = mode
        loop = asyncio.get_running_loop()
        self._handover_timer = loop.call_later(self.settings.handover_timeout,
                                               self._handover_timed_out)
        if self.state is LinkState.ATTACHED and self.server is not None:
            self._transition(LinkEvent.HANDOVER)
            self.server.send(StopServer(mode=mode), urgent=True)
        elif self.state is LinkState.NONE:
            self._attach_standby(mode)
        else:
            self._on_handover(False, f"cannot hand over while the link is {self.state}")
            self._handover_mode = ""
            self._cancel_handover_timer()

    def _attach_standby(self, mode: str) -> None:
        standby, self.standby = self.standby, None
        if standby is None or standby.is_closing():
            self._handover_mode = ""
            self._cancel_handover_timer()
            self._on_handover(False, "the standby server went away")
            return
        self._transition(LinkEvent.HANDOVER if self.state is LinkState.NONE
                         else LinkEvent.OLD_STOPPED)
        self._attach(standby, mode)

    def _handover_timed_out(self) -> None:
        self._handover_timer = None
        if not self._handover_mode:
            return
        if self.state is LinkState.HANDING_OVER and self.server is not None:
            log.warning("old server did not stop within %.1fs; dropping it",
                        self.settings.handover_timeout)
            self.server.abort("did not stop in time for the hand-over")
        else:
            self._handover_mode = ""
            self._on_handover(False, "the new server did not attach in time")

    def _cancel_handover_timer(self) -> None:
        if self._handover_timer is not None:
            self._handover_timer.cancel()
            self._handover_timer = None

    def server_closed(self, conn: FrameConnection, reason: str) -> None:
        if conn is self.standby:
            self.standby = None
            log.info("standby server closed: %s", reason)
            if self._handover_mode and self.state is not LinkState.HANDING_OVER:
                self._handover_mode = ""
                self._cancel_handover_timer()
                self._on_handover(False, f"the standby server went away: {reason}")
            return
        if conn is not self.server:
            return
        self.server = None
        self._server_gone.set()
        handing_over = self.state is LinkState.HANDING_OVER
        self._transition(LinkEvent.SERVER_LOST)
        self._requeue_inflight()
        if handing_over:
            mode = conn.state.get("stopped_mode") or "crash"
            self._attach_standby(mode)
            return
        if conn.state.get("stopped_mode"):
            self.next_mode = str(conn.state["stopped_mode"])
            return
        log.warning("server %s lost: %s", conn.state.get("pid"), reason)
        self.next_mode = "crash"
        for session in self.sessions.values():
            self._tell_waiting(session)
        if self._handover_mode:
            self._handover_mode = ""
            self._cancel_handover_timer()
            self._on_handover(False, f"the new server went away before it attached: {reason}")

    async def stop_server(self, mode: str, timeout: float) -> None:
        """Ask the attached server to stop and wait (bounded) until it has gone."""
        server = self.server
        if server is not None and self.state is LinkState.ATTACHED:
            server.send(StopServer(mode=mode), urgent=True)
        if server is not None:
            try:
                await asyncio.wait_for(self._server_gone.wait(), timeout)
            except TimeoutError:
                server.abort(f"did not stop within {timeout:.1f}s")

    # ------------------------------------------------------------ frames from the server

    def server_frame(self, conn: FrameConnection, frame: Frame) -> None:
        if conn is not self.server:
            if not isinstance(frame, Heartbeat):
                log.warning("frame %s from a server that is not attached", type(frame).__name__)
            return
        match frame:
            case DataOut(items=items):
                sessions = self.sessions
                for item in items:
                    session = sessions.get(item.sessid)
                    if session is not None:
                        session.send_output(item.cmdname, item.args, item.kwargs)
                self._write_all()  # one write per player for the whole batch, now
            case Ack(seqs=seqs):
                self._acked(seqs)
            case SSync(sessions=changed):
                for data in changed:
                    session = self.sessions.get(data.sessid)
                    if session is not None:
                        session.load_sync_data(data)
                        session.at_sync()
            case SLogin(sessid=sessid, uid=uid, uname=uname):
                session = self.sessions.get(sessid)
                if session is not None:
                    session.uid, session.uname, session.logged_in = uid, uname, True
            case SDisconn(sessid=sessid, reason=reason):
                session = self.sessions.get(sessid)
                if session is not None:
                    session.announced = False  # the server has already forgotten it
                    session.disconnect(reason)
            case SDisconnAll(reason=reason):
                for session in list(self.sessions.values()):
                    session.announced = False
                    session.disconnect(reason)
            case SyncDone():
                self._attached()
            case ServerStopped(mode=mode):
                conn.state["stopped_mode"] = mode
            case AdminRequest(action=action, sessid=sessid):
                self._on_request(action, sessid)
            case Heartbeat():
                pass
            case _:
                log.warning("unexpected frame from the server: %s", type(frame).__name__)

    def _acked(self, seqs: list[int]) -> None:
        inflight, sessions = self.inflight, self.sessions
        now = time.time()
        for seq in seqs:
            item = inflight.pop(seq, None)
            if item is None:
                continue
            session = sessions.get(item.sessid)
            if session is not None and item.cmdname == "text":
                session.cmd_total += 1
                session.cmd_last = session.cmd_last_visible = now
            self._release(item.sessid)
        if self.pending:
            self._schedule_pump()

    # ------------------------------------------------------------ figures

    def status(self) -> dict[str, Any]:
        return {
            "link": str(self.state),
            "run_id": self.run_id,
            "sessions": len(self.sessions),
            "logged_in": sum(1 for s in self.sessions.values() if s.logged_in),
            "input_held": self.held_total,
            "input_inflight": len(self.inflight),
            "standby": self.standby is not None,
        }
