"""The portal's link to its game server, sans-I/O: everything that keeps input safe.

Theory of operation
-------------------
Every input a player sends gets a `seq`, unique within this portal run, and goes into
`pending`. While a server is attached, `pending` flows into it in order, at most
`inflight_window` inputs at a time; sent inputs wait in `inflight` until the server
acknowledges them (after the output they caused). When the server goes away, for any
reason, `inflight` goes back to the front of `pending`, so whatever it had not finished is
replayed, in order, into the next server: nothing is lost, and nothing the player has seen
an answer to is sent twice.

The link's view of its server is one table, `TRANSITIONS`; everything that affects it lives
in this module (h11's rule). Servers are named by an opaque connection id the shell picks;
the link never touches a socket. Every public method takes an event in and returns the
effects for the shell to carry out, in order (`Send`, `Tell`, `Pause`, ...). The clock is
injected, so tests drive timeouts without sleeping.

    NONE --hello--> ATTACHING --sync done--> ATTACHED --handover--> HANDING_OVER
     |                                          |                      | old server gone,
     +--handover (standby waiting)--> ATTACHING_STANDBY <--------------+ standby waiting
                                         |  sync done: ATTACHED, hand-over reported done
    any state with a server --stop--> STOPPING --server gone--> CLOSED

A server lost in any other way leads to NONE: players are told, input is held.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from ipc.frames import (
    IDLE_ARGS,
    Ack,
    AdminRequest,
    CommandCount,
    DataIn,
    DataOut,
    Detach,
    Frame,
    Heartbeat,
    InputItem,
    Mode,
    PConn,
    PConnSync,
    PDisconn,
    PSync,
    SDisconn,
    SDisconnAll,
    ServerStopped,
    SessionData,
    SLogin,
    SSync,
    StopServer,
    SyncDone,
    Welcome,
)
from ipc.settings import PortalSettings
from portal.link_input import (
    MSG_FULL,
    MSG_RESTARTING,
    CloseConn,
    CloseSession,
    CommandDone,
    Deliver,
    Effect,
    HandoverDone,
    LinkInput,
    Pause,
    Peer,
    PumpSoon,
    Request,
    Resume,
    Send,
    ServerConn,
    ServerGone,
    SetTimer,
    Tell,
)

__all__ = [  # the effects are part of the link's interface
    "MSG_BACK", "MSG_FULL", "MSG_RESTARTING", "TRANSITIONS", "CloseConn", "CloseSession",
    "CommandDone", "Deliver", "Effect", "HandoverDone", "Link", "LinkEvent", "LinkState",
    "LocalProtocolError", "Pause", "PumpSoon", "RemoteProtocolError", "Request", "Resume",
    "Send", "ServerGone", "SetTimer", "Tell",
]

MSG_BACK = "|g... The game is back.|n"

# Sessions per PSync frame: about 0.5 KB each, so a chunk stays far below the frame limit.
PSYNC_CHUNK = 500
# What `data_in` returns when it has nothing to do (most lines): one shared empty list,
# never appended to, instead of a new one per line.
_NO_EFFECTS: list[Effect] = []


class LinkState(StrEnum):
    NONE = "none"
    ATTACHING = "attaching"
    ATTACHED = "attached"
    HANDING_OVER = "handing_over"  # the old server is stopping; a standby waits
    ATTACHING_STANDBY = "attaching_standby"  # a hand-over's new server is syncing
    STOPPING = "stopping"  # the portal shuts down: the server is stopping for good
    CLOSED = "closed"


class LinkEvent(StrEnum):
    SERVER_HELLO = "server_hello"
    SYNC_DONE = "sync_done"
    HANDOVER = "handover"
    OLD_STOPPED = "old_stopped"  # the old server of a hand-over went, the standby is there
    SERVER_LOST = "server_lost"
    TIMEOUT = "timeout"
    STOP = "stop"


class LocalProtocolError(RuntimeError):
    """An illegal transition of the link's state: a bug in the portal."""


S, E = LinkState, LinkEvent
TRANSITIONS: dict[tuple[LinkState, LinkEvent], LinkState] = {
    (S.NONE, E.SERVER_HELLO): S.ATTACHING,
    (S.NONE, E.HANDOVER): S.ATTACHING_STANDBY,
    (S.NONE, E.STOP): S.CLOSED,
    (S.ATTACHING, E.SYNC_DONE): S.ATTACHED,
    (S.ATTACHING, E.SERVER_LOST): S.NONE,
    (S.ATTACHING, E.STOP): S.STOPPING,
    (S.ATTACHED, E.HANDOVER): S.HANDING_OVER,
    (S.ATTACHED, E.SERVER_LOST): S.NONE,
    (S.ATTACHED, E.STOP): S.STOPPING,
    (S.HANDING_OVER, E.OLD_STOPPED): S.ATTACHING_STANDBY,
    (S.HANDING_OVER, E.SERVER_LOST): S.NONE,  # the standby went first: hand-over failed
    (S.HANDING_OVER, E.TIMEOUT): S.HANDING_OVER,  # old server aborted; its loss follows
    (S.HANDING_OVER, E.STOP): S.STOPPING,
    (S.ATTACHING_STANDBY, E.SYNC_DONE): S.ATTACHED,  # hand-over done
    (S.ATTACHING_STANDBY, E.SERVER_LOST): S.NONE,  # hand-over failed
    (S.ATTACHING_STANDBY, E.TIMEOUT): S.ATTACHING,  # reported failed; may still attach
    (S.ATTACHING_STANDBY, E.STOP): S.STOPPING,
    (S.STOPPING, E.SERVER_LOST): S.CLOSED,
    (S.STOPPING, E.TIMEOUT): S.STOPPING,  # server aborted; its loss follows
}
del S, E

# States in which a hand-over is under way (one deadline covers all of it).
HANDOVER_STATES = frozenset({LinkState.HANDING_OVER, LinkState.ATTACHING_STANDBY})


class Link(LinkInput):
    """See the module docstring. `snapshot(sessid)` reads a session's synced data; the
    sessions' side of the bookkeeping (held input, pauses, the move's) is `LinkInput`."""

    def __init__(self, settings: PortalSettings, run_id: str,
                 snapshot: Callable[[int], SessionData],
                 clock: Callable[[], float] = time.time,
                 counts: Callable[[int], CommandCount] | None = None) -> None:
        super().__init__(settings, snapshot)
        self.run_id = run_id
        self.state = LinkState.NONE
        # `state is LinkState.ATTACHED`, kept by `_step`: the player path asks it per line,
        # and an enum member read through its class costs about 100 ns on Python 3.11
        # (EnumType has a __getattr__; see `portal.telnet.parser`)
        self.attached = False
        self.server: ServerConn | None = None
        self.standby: ServerConn | None = None
        self.deadline: float | None = None
        self._counts = counts or self._counts_from_snapshot
        self._clock = clock

    # ------------------------------------------------------------ plumbing

    def _step(self, event: LinkEvent) -> LinkState:
        """Move along the table; returns the state left. A missing row is our bug."""
        old = self.state
        try:
            self.state = TRANSITIONS[(old, event)]
            self.attached = self.state is LinkState.ATTACHED
        except KeyError:
            raise LocalProtocolError(f"link event {event} in state {old}") from None
        return old

    def _counts_from_snapshot(self, sessid: int) -> CommandCount:
        data = self._snapshot(sessid)
        return CommandCount(sessid, data.cmd_total, data.cmd_last, data.cmd_last_visible)

    def _changed(self, sessid: int) -> None:
        """A session's synced data changed: a standby's copy of it is stale now."""
        if self.standby is not None:
            self.standby.presynced.discard(sessid)

    def _set_deadline(self, delay: float | None) -> None:
        self.deadline = None if delay is None else self._clock() + delay
        self._emit(SetTimer(delay))

    # ------------------------------------------------------------ sessions

    def connect(self, sessid: int) -> list[Effect]:
        """A session is ready for the game: the server hears of it now or when it attaches."""
        peer = self.peers[sessid] = Peer()
        if self.state is LinkState.ATTACHED:
            self._announce(sessid, peer)
        elif self.state is LinkState.NONE:
            self._tell_waiting(sessid, peer)
        return self._take()

    def disconnect(self, sessid: int, reason: str) -> list[Effect]:
        """The client went away: forget its input, and tell the server if it knew it."""
        peer = self.peers.pop(sessid, None)
        if peer is None:
            return []
        self._changed(sessid)
        if peer.held:
            self.held_total -= peer.held
            self.pending = deque(i for i in self.pending if i.sessid != sessid)
        if peer.announced and self.server is not None:  # attaching too: it was in the PSync
            self._send(PDisconn(sessid=sessid, reason=reason))
        return self._take()

    def flags_changed(self, sessid: int, flags: dict[str, Any]) -> list[Effect]:
        peer = self.peers.get(sessid)
        self._changed(sessid)
        if peer is not None and peer.announced and self.server is not None:
            self._send(PConnSync(sessid=sessid, protocol_flags=flags))
        return self._take()

    def data_in(self, sessid: int, cmdname: str, args: list[Any],
                kwargs: dict[str, Any]) -> list[Effect]:
        """Hold one input; it reaches a server in order, now or after a restart."""
        peer = self.peers.get(sessid)
        if peer is None:
            return _NO_EFFECTS
        seq = self._next_seq
        self._next_seq = seq + 1
        self.pending.append(InputItem(seq, sessid, cmdname, args, kwargs))
        peer.held += 1
        self.held_total += 1
        settings = self.settings
        if (peer.held >= settings.input_buffer_per_session
                or self.held_total >= settings.input_buffer_total):
            self._pause(sessid, peer)
        if self.attached:
            if not self._pump_wanted:  # `_want_pump`, inline: most lines find it wanted
                self._want_pump()
        elif self.state is LinkState.NONE:  # an outage; a hand-over is silent
            self._tell_waiting(sessid, peer)
        return self._take() if self._effects else _NO_EFFECTS

    def pump(self) -> list[Effect]:
        """Send pending input to the attached server, within the in-flight window."""
        self._pump_wanted = False
        if not self.attached or self.server is None \
                or not self.server.writable or self.frozen:
            return []
        pending, inflight = self.pending, self.inflight
        room = self.settings.inflight_window - len(inflight)
        if len(pending) <= room:  # (most pumps: all of it fits, taken in one step)
            batch = list(pending)
            pending.clear()
        else:
            batch = [pending.popleft() for _ in range(max(room, 0))]
        for item in batch:
            inflight[item.seq] = item
        if batch:
            self._send(DataIn(items=batch), flush=True)
        return self._take()

    def _announce(self, sessid: int, peer: Peer) -> None:
        peer.announced = True
        assert self.server is not None
        self.server.unconfirmed.add(sessid)
        self._send(PConn(session=self._snapshot(sessid)))

    def _send(self, frame: Frame, *, urgent: bool = False, flush: bool = False) -> None:
        assert self.server is not None
        self._emit(Send(self.server.conn, frame, urgent, flush))

    # ------------------------------------------------------------ servers dialling in

    def server_hello(self, conn: int, pid: int, standby: bool) -> list[Effect]:
        """A server said an accepted hello on connection `conn`."""
        if standby:
            if self.standby is not None:
                self._emit(CloseConn(self.standby.conn, "replaced by a newer standby"))
            self.standby = ServerConn(conn, pid)
            self._emit(Send(conn, Welcome(run_id=self.run_id)))
            self._presync(self.standby)
        elif self.state is not LinkState.NONE:
            self._emit(CloseConn(conn, f"a server is already attached (link is {self.state})",
                                 refuse=True))
        else:
            self._step(LinkEvent.SERVER_HELLO)
            self._emit(Send(conn, Welcome(run_id=self.run_id)))
            self._attach(ServerConn(conn, pid), self.next_mode)
        return self._take()

    def _presync(self, standby: ServerConn) -> None:
        """Send a standby every session now, while the old server still serves, so that
        the hand-over itself carries only what changed since (see `_attach`)."""
        sessids = [sessid for sessid, peer in self.peers.items() if peer.announced]
        for start in range(0, len(sessids), PSYNC_CHUNK):
            chunk = sessids[start : start + PSYNC_CHUNK]
            self._emit(Send(standby.conn, PSync(
                mode=self.next_mode, run_id=self.run_id, presync=True,
                sessions=[self._snapshot(sessid) for sessid in chunk])))
        standby.presynced = set(sessids)
        standby.sent_ahead = set(sessids)

    def _attach(self, server: ServerConn, mode: Mode) -> None:
        """Sync `server`: every announced session, or for a presynced standby only those
        that changed since, the ones gone, and everyone's command counters."""
        self.server = server
        sessids = [sessid for sessid, peer in self.peers.items() if peer.announced]
        fresh = [sessid for sessid in sessids if sessid not in server.presynced]
        gone = sorted(server.sent_ahead.difference(sessids))
        counters = [self._counts(sessid) for sessid in sessids] if server.sent_ahead else []
        for start in range(0, max(len(fresh), 1), PSYNC_CHUNK):
            chunk = fresh[start : start + PSYNC_CHUNK]
            last = start + PSYNC_CHUNK >= len(fresh)
            self._send(PSync(mode=mode, run_id=self.run_id, more=not last,
                             sessions=[self._snapshot(sessid) for sessid in chunk],
                             gone=gone if last else [], counters=counters if last else []))

    def _attached(self) -> None:
        was = self._step(LinkEvent.SYNC_DONE)
        self.quiet = False
        self.next_mode = "crash"
        for sessid, peer in self.peers.items():
            if not peer.announced:
                self._announce(sessid, peer)
            if peer.told_waiting:
                peer.told_waiting = False
                self._emit(Tell(sessid, MSG_BACK))
        self._want_pump()
        if was is LinkState.ATTACHING_STANDBY:
            assert self.server is not None
            self._end_handover(True, f"server {self.server.pid} attached")

    def handover(self, mode: Mode, standby_pid: int) -> list[Effect]:
        """Supervisor: stop the attached server with `mode`, then attach the standby."""
        standby = self.standby
        if standby is None or standby.pid != standby_pid:
            self._emit(HandoverDone(False, f"standby server {standby_pid} is not connected"))
        elif (self.state, LinkEvent.HANDOVER) not in TRANSITIONS:
            self._emit(HandoverDone(False, f"cannot hand over while the link is {self.state}"))
        else:
            was = self._step(LinkEvent.HANDOVER)
            self._set_deadline(self.settings.handover_timeout)
            if was is LinkState.ATTACHED:
                self._send(StopServer(mode=mode), urgent=True)
            else:
                self._attach_standby(mode)
        return self._take()

    def _attach_standby(self, mode: Mode) -> None:
        standby, self.standby = self.standby, None
        assert standby is not None
        self._attach(standby, mode)

    def _end_handover(self, ok: bool, message: str) -> None:
        self._set_deadline(None)
        self._emit(HandoverDone(ok, message))

    def stop(self, mode: Mode, timeout: float) -> list[Effect]:
        """The portal shuts down: stop the server (bounded by `timeout`), hold no more.

        `ServerGone` is emitted once no server is left (at once if none was attached)."""
        if self.state in (LinkState.STOPPING, LinkState.CLOSED):
            return []
        was = self._step(LinkEvent.STOP)
        if self.standby is not None:
            self._emit(CloseConn(self.standby.conn, "the portal is shutting down"))
            self.standby = None
        if was in HANDOVER_STATES:
            self._end_handover(False, "the portal is shutting down")
        if was is LinkState.NONE:  # no server to stop
            self._emit(ServerGone())
        else:
            if was is not LinkState.HANDING_OVER:  # that one was already asked to stop
                self._send(StopServer(mode=mode), urgent=True)
            self._set_deadline(timeout)
        return self._take()

    def tick(self) -> list[Effect]:
        """The shell's timer fired: act on the deadline if it has passed."""
        if self.deadline is None:
            return []
        left = self.deadline - self._clock()
        if left > 0:
            self._emit(SetTimer(left))  # woke early: sleep again
            return self._take()
        self.deadline = None
        self._step(LinkEvent.TIMEOUT)
        if self.state is LinkState.ATTACHING:  # the standby did not sync in time
            self._emit(HandoverDone(False, "the new server did not attach in time"))
        else:  # HANDING_OVER or STOPPING: the server did not stop in time
            assert self.server is not None
            self._emit(CloseConn(self.server.conn, "did not stop in time", abort=True))
        return self._take()

    # ------------------------------------------------------------ server frames and losses

    def receive_frame(self, conn: int, frame: Frame) -> list[Effect]:
        """A frame from server connection `conn` (after its hello)."""
        if self.server is None or conn != self.server.conn:
            return []  # a standby speaks once attached; a stale server is ignored
        unconfirmed = self.server.unconfirmed
        if unconfirmed:  # (only just after a connection: empty on the player path)
            self._confirm(unconfirmed, frame)
        match frame:  # the player path's two first: a failed case costs an isinstance
            case DataOut():
                self._emit(Deliver(frame))
            case Ack(seqs=seqs):
                self._acked(seqs)
            case SyncDone() if (self.state, LinkEvent.SYNC_DONE) in TRANSITIONS:
                self._attached()
            case ServerStopped(mode=mode):
                self.server.stopped_mode = mode
            case SDisconn(sessid=sessid, reason=reason):
                self._server_closed_session(sessid, reason)
            case SDisconnAll(reason=reason):
                for sessid in list(self.peers):
                    self._server_closed_session(sessid, reason)
            case AdminRequest(action=action, sessid=sessid):
                self._emit(Request(action, sessid))
            case SSync(sessions=changed):
                for data in changed:
                    self._changed(data.sessid)
                self._emit(Deliver(frame))
            case SLogin(sessid=sessid):
                self._changed(sessid)
                self._emit(Deliver(frame))
            case Heartbeat():
                pass
            case _:  # a second SyncDone, or a frame only a portal sends
                raise RemoteProtocolError(
                    f"unexpected {type(frame).__name__} from the server (link {self.state})")
        return self._take()

    def _confirm(self, unconfirmed: set[int], frame: Frame) -> None:
        """The server has handled the PConn of every session `frame` names."""
        match frame:
            case DataOut(items=items):
                unconfirmed.difference_update(item.sessid for item in items)
            case Ack(seqs=seqs):
                inflight = self.inflight
                unconfirmed.difference_update(inflight[seq].sessid for seq in seqs
                                              if seq in inflight)
            case SSync(sessions=changed):
                unconfirmed.difference_update(data.sessid for data in changed)
            case SLogin(sessid=sessid) | SDisconn(sessid=sessid):
                unconfirmed.discard(sessid)

    def _server_closed_session(self, sessid: int, reason: str) -> None:
        peer = self.peers.get(sessid)
        if peer is not None:
            peer.announced = False  # the server has already forgotten it
            self._changed(sessid)
            self._emit(CloseSession(sessid, reason))

    def _acked(self, seqs: list[int]) -> None:
        done: list[int] = []  # one CommandDone for the whole frame
        inflight, peers = self.inflight, self.peers
        released = 0
        for seq in seqs:
            item = inflight.pop(seq, None)
            if item is None:
                continue
            peer = peers.get(item.sessid)
            if peer is None:
                continue  # the session went away; its inputs were uncounted then
            if item.cmdname == "text" and item.args != IDLE_ARGS:  # `counts_as_command`
                done.append(item.sessid)
            peer.held -= 1  # `_release_peer`, with the total counted down once
            released += 1
            if peer.paused:
                self.held_total -= released
                released = 0
                self._resume_if_room(item.sessid, peer)
        self.held_total -= released
        if done:
            self._emit(CommandDone(done, self._clock()))
        if self.pending:
            self._want_pump()

    def server_writable(self, conn: int, writable: bool) -> list[Effect]:
        """Flow control: the socket to server `conn` is full (False) or drained (True).
        Input stops flowing into a full one (it is held, within the players' limits)."""
        for server in (self.server, self.standby):
            if server is not None and server.conn == conn:
                server.writable = writable
        if writable and self.pending and self.state is LinkState.ATTACHED:
            self._want_pump()
        return self._take()

    def server_closed(self, conn: int, reason: str) -> list[Effect]:
        """Server connection `conn` closed, for any reason."""
        if self.standby is not None and conn == self.standby.conn:
            self.standby = None  # a hand-over under way finds it gone when the old one stops
        elif self.server is not None and conn == self.server.conn:
            self._server_lost(self.server, reason)
        return self._take()

    def _server_lost(self, server: ServerConn, reason: str) -> None:
        self.server = None
        for sessid in server.unconfirmed:  # it may have died before greeting them
            peer = self.peers.get(sessid)
            if peer is not None:
                peer.announced = False
        self._requeue_inflight()
        mode: Mode = server.stopped_mode or "crash"
        if self.state is LinkState.HANDING_OVER and self.standby is not None:
            self._step(LinkEvent.OLD_STOPPED)
            self._attach_standby(mode)
            return
        was = self._step(LinkEvent.SERVER_LOST)
        if was is LinkState.STOPPING:
            self._set_deadline(None)
            self._emit(ServerGone())
            return
        self.next_mode = mode
        if was in HANDOVER_STATES:
            why = ("the standby server went away" if was is LinkState.HANDING_OVER
                   else f"the new server went away before it attached: {reason}")
            self._end_handover(False, why)
        if server.stopped_mode is None or was in HANDOVER_STATES:
            # (a server that stopped on purpose has a successor on its way already)
            for sessid, peer in self.peers.items():
                self._tell_waiting(sessid, peer)

    # ------------------------------------------------------------ portal hand-over

    def freeze(self, frozen: bool) -> list[Effect]:
        """Old portal: stop (True) or resume (False) sending input to the server; in-flight
        input is still acknowledged, so `inflight` drains."""
        self.frozen = frozen
        if not frozen and self.pending and self.state is LinkState.ATTACHED:
            self._want_pump()
        return self._take()

    def detach(self) -> list[Effect]:
        """Old portal, input frozen and answered: ask the attached server to send what it
        has and close; its output waits in the server until it attaches again. Tell
        nobody the game restarts meanwhile. The link is NONE once the server closed."""
        self.quiet = True
        if self.server is not None and self.state is LinkState.ATTACHED:
            self._send(Detach(), urgent=True, flush=True)
        return self._take()

    # ------------------------------------------------------------ figures

    def status(self) -> dict[str, Any]:
        return {
            "link": str(self.state),
            "run_id": self.run_id,
            "input_held": self.held_total,
            "input_inflight": len(self.inflight),
            "standby": self.standby is not None,
        }


class RemoteProtocolError(ValueError):
    """The server sent something the link does not expect: its error, not ours."""
