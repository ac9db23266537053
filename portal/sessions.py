"""The portal's sessions and the asyncio shell around its link to the game server.

Every decision about input, servers and hand-overs is made by `portal.link.Link`
(sans-I/O); this handler registers sessions, feeds the link the sessions' events and the
servers' frames, and carries out the effects it returns: writing frames, telling players,
pausing their reading, and running the link's one timer.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from ipc.connection import FrameConnection
from ipc.frames import (
    AuthResult,
    CommandCount,
    DataOut,
    Frame,
    Hello,
    InputItem,
    Mode,
    PSync,
    SessionData,
    SLogin,
    SSync,
)
from ipc.settings import PortalSettings
from portal import link_input as fx  # the effects the link returns
from portal import memory
from portal.auth import AuthRequests
from portal.guard import PortalGuard
from portal.link import Link, LinkState
from portal.session import PortalSession

log = logging.getLogger(__name__)

MSG_DOWN = "|rThe game could not be restarted; an admin has been told. You stay connected.|n"


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
        self.link = Link(settings, self.run_id, self._snapshot, counts=self._counts)
        self._conns: dict[int, FrameConnection] = {}
        self._next_conn = 1
        self._next_sessid = 1
        self._to_write: list[PortalSession] = []
        self._write_scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._server_gone = asyncio.Event()
        self._drained = asyncio.Event()  # set while frozen with nothing in flight
        self._detached = asyncio.Event()  # set when no server is attached any more
        self._on_request = on_request
        self._on_handover = on_handover
        self.handed_over = False  # old portal: its telnet sessions went to a new portal
        self.auth = AuthRequests()  # SSH logins waiting for the attached server's answer
        self._auth_conn: int | None = None  # the server `auth` sends to
        self.guard = PortalGuard(settings, self.data_in, lambda: list(self.sessions.values()),
                                 release_memory=self.release_memory)
        # tables of other parts (by connection) to rebuild with ours: see `release_memory`
        self.compact_hooks: list[Callable[[], None]] = []
        self._effect_table = self._make_effect_table()
        self._loop: asyncio.AbstractEventLoop | None = None  # see `_soon`

    @property
    def state(self) -> LinkState:
        return self.link.state

    @property
    def shutting_down(self) -> bool:
        return self.link.state in (LinkState.STOPPING, LinkState.CLOSED)

    @property
    def coming_back(self) -> bool:
        """Whether a session closed now may reconnect at once (this portal stops, or hands
        over to a new one): a web page that is told so reconnects by itself."""
        return self.shutting_down or self.handed_over

    def _snapshot(self, sessid: int) -> SessionData:
        return self.sessions[sessid].get_sync_data()

    def _counts(self, sessid: int) -> CommandCount:
        s = self.sessions[sessid]
        return CommandCount(sessid, s.cmd_total, s.cmd_last, s.cmd_last_visible)

    # ------------------------------------------------------------ carrying out effects

    def _apply(self, effects: Iterable[fx.Effect]) -> None:
        """Carry out the link's effects in order. The link's own state is already updated
        (an ack is never lost here); one failing effect is logged, and the rest go on."""
        for effect in effects:
            try:
                self._carry_out(effect)
            except Exception:
                log.exception("portal: carrying out %r failed", effect)
        self._follow_attached()

    def _follow_attached(self) -> None:
        """SSH logins go to the attached server only; while none is attached they wait,
        and what a server that went away did not answer is sent to the next one."""
        server = self.link.server
        attached = server.conn if server is not None and self.link.attached else None
        if attached == self._auth_conn:
            return
        self._auth_conn = attached
        conn = self._conns.get(attached) if attached is not None else None
        if conn is None:
            self.auth.detach()
        else:
            self.auth.attach(conn.send)

    def _carry_out(self, effect: fx.Effect) -> None:
        """One effect, dispatched by its type (one dict lookup: this runs for every line)."""
        self._effect_table[type(effect)](effect)

    def _make_effect_table(self) -> dict[type, Callable[[Any], object]]:
        call = self._session_call
        return {
            fx.Send: lambda e: self._write_frame(e.conn, e.frame, e.urgent, e.flush),
            fx.Tell: lambda e: call(e.sessid, "send_text", e.text),
            fx.Pause: lambda e: call(e.sessid, "pause_input"),
            fx.Resume: lambda e: call(e.sessid, "resume_input"),
            fx.Deliver: lambda e: self._deliver(e.frame),
            fx.CommandDone: lambda e: self._count(e.sessids, e.when),
            fx.CloseSession: lambda e: call(e.sessid, "disconnect", e.reason),
            fx.PumpSoon: lambda e: self._soon(self._pump),
            fx.SetTimer: lambda e: self._set_timer(e.delay),
            fx.CloseConn: lambda e: self._close_conn(e.conn, e.reason, e.refuse, e.abort),
            fx.HandoverDone: lambda e: self._on_handover(e.ok, e.message),
            fx.Request: lambda e: self._on_request(e.action, e.sessid),
            fx.ServerGone: lambda e: self._server_gone.set(),
        }

    def _write_frame(self, conn_id: int, frame: Frame, urgent: bool, flush: bool) -> None:
        conn = self._conns.get(conn_id)
        if isinstance(frame, PSync) and conn is not None and not frame.presync \
                and not conn.state.get("psync"):
            conn.state["psync"] = True  # the first of its PSync frames: log the attach once
            synced = sum(1 for peer in self.link.peers.values() if peer.announced)
            log.info("attaching server %s in mode %s (%d sessions, %d sent)",
                     conn.state.get("pid"), frame.mode, synced, len(frame.sessions))
        if conn is None:
            return
        if flush and not urgent:  # we already run at the end of the turn: don't wait
            conn.send_now(frame)
        else:
            conn.send(frame, urgent=urgent)
            if flush:
                conn.flush()

    def _session_call(self, sessid: int, method: str, *args: Any) -> None:
        session = self.sessions.get(sessid)
        if session is not None:
            getattr(session, method)(*args)

    def _count(self, sessids: list[int], when: float) -> None:
        sessions = self.sessions
        for sessid in sessids:
            session = sessions.get(sessid)
            if session is not None:
                session.cmd_total += 1
                session.cmd_last = session.cmd_last_visible = when
                if session.hears_answers:  # (most doors: a no-op not to call)
                    session.input_answered()

    def _close_conn(self, conn_id: int, reason: str, refuse: bool, abort: bool) -> None:
        conn = self._conns.get(conn_id)
        if conn is None:
            return
        if refuse:
            conn.refuse(reason)
        elif abort:
            log.warning("server %s: %s; dropping it", conn.state.get("pid"), reason)
            conn.abort(reason)
        else:
            conn.close(reason)

    def _set_timer(self, delay: float | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if delay is not None:
            self._timer = asyncio.get_running_loop().call_later(delay, self._tick)

    def _tick(self) -> None:
        self._timer = None
        self._apply(self.link.tick())

    def _pump(self) -> None:
        self._apply(self.link.pump())

    def _deliver(self, frame: Frame) -> None:
        sessions = self.sessions
        match frame:
            case DataOut(items=items):
                self._write_scheduled = True  # `_write_all` below: nothing to schedule
                try:
                    for item in items:
                        session = sessions.get(item.sessid)
                        if session is not None:
                            session.send_output(item.cmdname, item.args, item.kwargs)
                finally:
                    self._write_all()  # one write per player for the whole batch, now
            case SSync(sessions=changed):
                for data in changed:
                    session = sessions.get(data.sessid)
                    if session is not None:
                        session.load_sync_data(data)
                        session.at_sync()
            case SLogin(sessid=sessid, uid=uid, uname=uname):
                session = sessions.get(sessid)
                if session is not None:
                    session.uid, session.uname, session.logged_in = uid, uname, True

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
        self._apply(self.link.connect(session.sessid))

    def disconnect(self, session: PortalSession, reason: str = "") -> None:
        """The client went away (or we closed it): forget it and tell the server."""
        if self.sessions.pop(session.sessid, None) is not None:
            self.guard.session_closed(session)
            self._apply(self.link.disconnect(session.sessid, reason))

    def write_soon(self, session: PortalSession) -> None:
        """Call `session.flush_output()` at the end of this loop turn (one write per turn)."""
        self._to_write.append(session)
        if not self._write_scheduled:
            self._write_scheduled = True
            self._soon(self._write_all)

    def _soon(self, callback: Callable[[], None]) -> None:
        """`call_soon` on the running loop, kept: `asyncio.get_running_loop()` costs a
        getpid() system call on Python 3.11, and this runs a few times every loop turn."""
        loop = self._loop
        if loop is None or loop.is_closed():
            loop = self._loop = asyncio.get_running_loop()
        loop.call_soon(callback)

    def _write_all(self) -> None:
        self._write_scheduled = False
        sessions, self._to_write = self._to_write, []
        for session in sessions:
            session.flush_output()

    def flags_changed(self, session: PortalSession) -> None:
        self._apply(self.link.flags_changed(session.sessid, session.protocol_flags))

    def data_in(self, session: PortalSession, cmdname: str, args: list[Any],
                kwargs: dict[str, Any]) -> None:
        """Queue one input; it reaches the server in order, now or after a restart.
        Protocols call `session.data_in`, which passes it through `self.guard` first."""
        effects = self.link.data_in(session.sessid, cmdname, args, kwargs)
        if effects:  # (most lines: none, the pump is already wanted this turn)
            self._apply(effects)

    def drop_input(self, seq: int, why: str) -> None:
        """Forget one input (it hung or crashed servers) and tell its player, naming the
        input by its size only: it may be a password typed at a hidden prompt."""
        link = self.link
        item = link.inflight.get(seq) or next((i for i in link.pending if i.seq == seq), None)
        effects = link.drop_input(seq, why)
        if item is not None:
            text = item.cmdname == "text" and item.args
            what = (f"({len(str(item.args[0]).encode())} bytes)" if text
                    else f"'{item.cmdname}'")  # an out-of-band function's name is no secret
            told = f"|rYour command {what} {why} and was dropped.|n"
            effects = [fx.Tell(e.sessid, told) if isinstance(e, fx.Tell) and e.sessid == item.sessid
                       else e for e in effects]
        self._apply(effects)

    # ------------------------------------------------------------ servers

    def server_connected(self, conn: FrameConnection, hello: Hello) -> None:
        """A server said hello on the ipc socket (already authenticated)."""
        conn_id = self._next_conn
        self._next_conn += 1
        self._conns[conn_id] = conn
        conn.state.update(role="server", pid=hello.pid, link_id=conn_id)
        conn.trusted = True
        log.info("%s server %d said hello", "standby" if hello.standby else "new", hello.pid)
        self._apply(self.link.server_hello(conn_id, hello.pid, hello.standby))

    def server_writable(self, conn: FrameConnection, writable: bool) -> None:
        """Flow control on a server's connection (its `on_writable`)."""
        if "link_id" in conn.state:
            log.info("server %s %s", conn.state.get("pid"),
                     "reads again" if writable else "stopped reading; input waits")
            self._apply(self.link.server_writable(conn.state["link_id"], writable))

    def server_frame(self, conn: FrameConnection, frame: Frame) -> None:
        if isinstance(frame, AuthResult):  # SSH logins are not the link's business
            self.auth.receive_result(frame)
            return
        self._apply(self.link.receive_frame(conn.state["link_id"], frame))
        if self.link.frozen and not self.link.inflight:
            self._drained.set()

    def server_closed(self, conn: FrameConnection, reason: str) -> None:
        conn_id = conn.state.get("link_id", 0)
        if self._conns.pop(conn_id, None) is not None:
            log.info("server %s closed: %s", conn.state.get("pid"), reason)
            self._apply(self.link.server_closed(conn_id, reason))
            if self.link.server is None:
                self._detached.set()

    def handover(self, mode: Mode, standby_pid: int) -> None:
        """Supervisor: stop the attached server with `mode`, then attach the standby."""
        self._apply(self.link.handover(mode, standby_pid))

    async def stop_server(self, mode: Mode, timeout: float) -> None:
        """Stop the attached server and wait until it has gone: an orderly stop first, an
        abort at `timeout`, and a second `timeout` at most for the abort to land."""
        self._apply(self.link.stop(mode, timeout))
        try:
            await asyncio.wait_for(self._server_gone.wait(), 2 * timeout)
        except TimeoutError:
            log.error("the server did not go within %.1fs", 2 * timeout)

    # ------------------------------------------------------------ portal hand-over

    async def freeze_input(self, timeout: float) -> bool:
        """Old portal: send the server no more input and wait (bounded) until every input
        in flight is acknowledged. False on timeout (then call `thaw_input`)."""
        self._drained.clear()
        self._apply(self.link.freeze(True))
        if not self.link.inflight:
            return True
        try:
            await asyncio.wait_for(self._drained.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def detach_server(self, timeout: float) -> bool:
        """Old portal, input frozen and answered: have the attached server send all it
        has and close its link (it holds its output and redials); True once it closed,
        False if it did not within `timeout`."""
        if self.link.server is None:
            return True
        if self.link.state is not LinkState.ATTACHED:  # attaching: not now
            return False
        self._detached.clear()
        self._apply(self.link.detach())
        try:
            await asyncio.wait_for(self._detached.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def thaw_input(self) -> None:
        """The hand-over failed: input flows to the server again."""
        self.handed_over = False
        self._apply(self.link.freeze(False))

    def moved(self, sessions: list[PortalSession]) -> None:
        """Old portal: these sessions now belong to the new portal; forget them silently."""
        self.handed_over = True
        sessids = {s.sessid for s in sessions if self.sessions.pop(s.sessid, None) is not None}
        self.link.moved(sessids)

    def held_input(self) -> dict[int, list[InputItem]]:
        """Every session's held input, by sessid (for a hand-over)."""
        return self.link.held_input()

    def take_delayed(self, session: PortalSession) -> list[tuple[str, list[Any], dict[str, Any]]]:
        """The input the rate limit holds back for `session`, taken out (for a hand-over)."""
        return self.guard.take_delayed(session)

    def announced(self, session: PortalSession) -> bool:
        """Whether the server knows `session` (it is in the server's sync)."""
        return session.sessid in self.sessions and self.link.announced(session.sessid)

    def next_ids(self) -> tuple[int, int, Mode]:
        """(next sessid, next input seq, next attach mode), for the new portal."""
        seq, mode = self.link.counters()
        return self._next_sessid, seq, mode

    def taking_over(self) -> None:
        """New portal, before the first connection is adopted: tell no player that the
        game restarts while the server is on its way."""
        self.link.quiet = True

    def adopt_run(self, run_id: str, next_sessid: int, next_seq: int, mode: Mode) -> None:
        """New portal: be the old portal's run, so the server keeps its sessions."""
        self.run_id = self.link.run_id = run_id
        self._next_sessid = max(self._next_sessid, next_sessid)
        self.link.adopt_counters(next_seq, mode)

    def adopt(self, session: PortalSession, announced: bool, items: list[InputItem]) -> None:
        """New portal: a moved session keeps its sessid and held input."""
        self.sessions[session.sessid] = session
        self._apply(self.link.adopt(session.sessid, announced, items))

    def adopted(self) -> None:
        """New portal: every moved session is in (held input back in seq order)."""
        self.link.adopted()

    def close_servers(self, reason: str) -> None:
        """Old portal, hand-over done: close every server link (the server redials)."""
        for conn in list(self._conns.values()):
            conn.close(reason)

    # ------------------------------------------------------------ memory

    def release_memory(self, why: str) -> None:
        """After a storm of connections closed (the guard's sweep decides): rebuild every
        table by session or address at the size of what it holds now, then hand freed
        memory back to the system (portal/memory.py)."""
        self.sessions = memory.compact(self.sessions)
        self.link.compact()
        self.guard.addresses.compact()
        for hook in self.compact_hooks:
            hook()
        memory.release(f"portal: {why}")

    # ------------------------------------------------------------ figures

    def status(self) -> dict[str, Any]:
        return {
            **self.link.status(),
            "sessions": len(self.sessions),
            "logged_in": sum(1 for s in self.sessions.values() if s.logged_in),
            "ipc_buffered": sum(conn.buffered() for conn in self._conns.values()),
        }
