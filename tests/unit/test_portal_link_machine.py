"""A hypothesis state machine around `portal.link.Link`: players type, servers answer,
attach, hand over, crash, hang and time out in any order; every input is answered exactly
once, in order, per session."""

from __future__ import annotations

from collections import deque

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from ipc.frames import (
    Ack,
    DataIn,
    Detach,
    InputItem,
    PConn,
    PDisconn,
    PSync,
    ServerStopped,
    SessionData,
    SyncDone,
)
from ipc.settings import PortalSettings
from portal.link import (
    CloseConn,
    Effect,
    Link,
    LinkState,
    PumpSoon,
    RemoteProtocolError,
    Send,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeServer:
    """What a server does with the frames it gets: runs each session's input in order."""

    def __init__(self, conn: int, pid: int) -> None:
        self.conn, self.pid = conn, pid
        self.received: dict[int, deque[InputItem]] = {}
        self.known: set[int] = set()  # the sessions it has been told of

    def take(self, items: list[InputItem]) -> None:
        for item in items:
            self.received.setdefault(item.sessid, deque()).append(item)


class LinkMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.link = Link(PortalSettings(inflight_window=3, input_buffer_per_session=4,
                                        handover_timeout=5.0),
                         "run", self.snapshot, self.clock)
        self.servers: dict[int, FakeServer] = {}
        self.next_conn = 1
        self.sessions: set[int] = set()
        self.next_sessid = 1
        self.typed: dict[int, list[int]] = {}  # sessid -> seqs in the order typed
        self.answered: dict[int, list[int]] = {}
        self.next_seq = 1
        self.pump_due = False

    def snapshot(self, sessid: int) -> SessionData:
        return SessionData(sessid=sessid, protocol_key="telnet", address="x")

    # ------------------------------------------------------------ carrying out effects

    def apply(self, effects: list[Effect]) -> None:
        queue = deque(effects)
        while queue:
            effect = queue.popleft()
            match effect:
                case Send(conn=conn, frame=DataIn(items=items)):
                    if conn in self.servers:
                        self.servers[conn].take(items)
                case Send(conn=conn, frame=PSync(sessions=sessions, gone=gone)):
                    if conn in self.servers:
                        known = self.servers[conn].known
                        known.update(data.sessid for data in sessions)
                        known.difference_update(gone)
                case Send(conn=conn, frame=PConn(session=data)):
                    if conn in self.servers:
                        self.servers[conn].known.add(data.sessid)
                case Send(conn=conn, frame=PDisconn(sessid=sessid)):
                    if conn in self.servers:
                        self.servers[conn].known.discard(sessid)
                case CloseConn(conn=conn):
                    if self.servers.pop(conn, None) is not None:  # on_close follows close
                        queue.extend(self.link.server_closed(conn, effect.reason))
                case PumpSoon():
                    self.pump_due = True

    def attached_server(self) -> FakeServer | None:
        server = self.link.server
        return self.servers.get(server.conn) if server is not None else None

    def new_conn(self, pid: int) -> int:
        conn = self.next_conn
        self.next_conn += 1
        self.servers[conn] = FakeServer(conn, pid)
        return conn

    # ------------------------------------------------------------ players

    @initialize()
    def two_players_and_a_server(self) -> None:
        self.connect()
        self.connect()
        self.server_says_hello(standby=False)
        self.server_syncs()

    @rule()
    def connect(self) -> None:
        sessid = self.next_sessid
        self.next_sessid += 1
        self.sessions.add(sessid)
        self.typed[sessid], self.answered[sessid] = [], []
        self.apply(self.link.connect(sessid))

    @precondition(lambda self: self.sessions)
    @rule(data=st.data(), lines=st.integers(1, 5))
    def type_lines(self, data: st.DataObject, lines: int) -> None:
        sessid = data.draw(st.sampled_from(sorted(self.sessions)))
        for _ in range(lines):
            self.typed[sessid].append(self.next_seq)
            self.next_seq += 1
            self.apply(self.link.data_in(sessid, "text", [f"line {self.next_seq - 1}"], {}))

    @precondition(lambda self: len(self.sessions) > 1)
    @rule(data=st.data())
    def leave(self, data: st.DataObject) -> None:
        sessid = data.draw(st.sampled_from(sorted(self.sessions)))
        self.sessions.discard(sessid)
        del self.typed[sessid], self.answered[sessid]
        self.apply(self.link.disconnect(sessid, "quit"))

    @precondition(lambda self: self.pump_due)
    @rule()
    def end_of_loop_turn(self) -> None:
        self.pump_due = False
        self.apply(self.link.pump())

    # ------------------------------------------------------------ servers

    @rule(data=st.data())
    def server_answers(self, data: st.DataObject) -> None:
        server = self.attached_server()
        if server is None:
            return
        busy = sorted(s for s, q in server.received.items() if q)
        if not busy:
            return
        sessid = data.draw(st.sampled_from(busy))
        item = server.received[sessid].popleft()
        if sessid in self.answered:
            self.answered[sessid].append(item.seq)  # output, then the ack, in one write
        self.apply(self.link.receive_frame(server.conn, Ack(seqs=[item.seq])))

    @rule(standby=st.booleans())
    def server_says_hello(self, standby: bool) -> None:
        conn = self.new_conn(1000 + self.next_conn)
        self.apply(self.link.server_hello(conn, 1000 + conn, standby))

    @rule()
    def server_syncs(self) -> None:
        server = self.attached_server()
        if server is None:
            return
        state = self.link.state
        try:
            self.apply(self.link.receive_frame(server.conn, SyncDone()))
        except RemoteProtocolError:  # a second SyncDone: the server's error, nothing changes
            assert self.link.state is state
            assert state not in (LinkState.ATTACHING, LinkState.ATTACHING_STANDBY)

    @rule()
    def server_crashes(self) -> None:
        server = self.attached_server()
        if server is not None:
            del self.servers[server.conn]
            self.apply(self.link.server_closed(server.conn, "killed"))

    @rule(full=st.booleans())
    def server_socket_fills_or_drains(self, full: bool) -> None:
        server = self.attached_server()
        if server is not None:
            self.apply(self.link.server_writable(server.conn, not full))

    @rule()
    def standby_dies(self) -> None:
        standby = self.link.standby
        if standby is not None:
            del self.servers[standby.conn]
            self.apply(self.link.server_closed(standby.conn, "killed"))

    @rule(right_pid=st.booleans())
    def supervisor_hands_over(self, right_pid: bool) -> None:
        standby = self.link.standby
        pid = standby.pid if standby is not None and right_pid else 1
        self.apply(self.link.handover("reload", pid))

    @precondition(lambda self: self.link.state is LinkState.HANDING_OVER)
    @rule()
    def old_server_stops(self) -> None:
        server = self.attached_server()
        assert server is not None
        self.apply(self.link.receive_frame(server.conn, ServerStopped(mode="reload")))
        del self.servers[server.conn]
        self.apply(self.link.server_closed(server.conn, "stopped"))

    @precondition(lambda self: not self.link.inflight)
    @rule()
    def portal_move_detaches_then_fails(self) -> None:
        """reload-portal on this (old) portal: input frozen and answered, the server is
        asked to detach and closes; the move fails and input flows again (the server
        dials back through `server_says_hello`)."""
        self.apply(self.link.freeze(True))
        server = self.attached_server()
        effects = self.link.detach()
        assert self.link.quiet
        self.apply(effects)
        asked = [e for e in effects if isinstance(e, Send) and isinstance(e.frame, Detach)]
        assert bool(asked) == (server is not None and self.link.state is LinkState.ATTACHED)
        if asked and server is not None:
            del self.servers[server.conn]
            self.apply(self.link.server_closed(server.conn, "detached"))
            assert self.link.state is LinkState.NONE
        self.apply(self.link.freeze(False))

    @rule(seconds=st.sampled_from([0.5, 5.0, 60.0]))
    def time_passes(self, seconds: float) -> None:
        self.clock.now += seconds
        self.apply(self.link.tick())

    # ------------------------------------------------------------ the promise

    @invariant()
    def answers_are_a_prefix_of_the_input_in_order(self) -> None:
        for sessid, answered in self.answered.items():
            assert answered == self.typed[sessid][: len(answered)], (sessid, answered)

    @invariant()
    def an_attached_server_knows_exactly_the_sessions(self) -> None:
        server = self.attached_server()
        if server is not None and self.link.state is LinkState.ATTACHED:
            announced = {s for s, peer in self.link.peers.items() if peer.announced}
            assert server.known == announced == self.sessions

    @invariant()
    def the_attached_flag_follows_the_state(self) -> None:
        assert self.link.attached == (self.link.state is LinkState.ATTACHED)

    @invariant()
    def held_input_is_counted_right(self) -> None:
        link = self.link
        held = sum(peer.held for peer in link.peers.values())
        # a gone session's input in flight stays there until its ack, uncounted
        inflight = sum(1 for item in link.inflight.values() if item.sessid in link.peers)
        assert held == link.held_total == len(link.pending) + inflight

    def teardown(self) -> None:
        """Whatever happened, one good server answers everything that is left."""
        link = self.link
        if link.state is LinkState.HANDING_OVER:
            self.old_server_stops()
        if link.state is not LinkState.NONE:
            self.server_crashes()
        if link.state is not LinkState.NONE:  # a standby was attaching
            self.server_crashes()
        assert link.state is LinkState.NONE
        conn = self.new_conn(9999)
        self.apply(link.server_hello(conn, 9999, False))
        self.apply(link.receive_frame(conn, SyncDone()))
        server = self.servers[conn]
        for _ in range(10_000):
            self.apply(link.pump())
            pending = [q for q in server.received.values() if q]
            if not pending:
                break
            for queue in pending:
                item = queue.popleft()
                if item.sessid in self.answered:
                    self.answered[item.sessid].append(item.seq)
                self.apply(link.receive_frame(conn, Ack(seqs=[item.seq])))
        assert self.answered == self.typed
        assert link.held_total == 0


LinkMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=60,
                                         deadline=None,
                                         suppress_health_check=[HealthCheck.too_slow])
test_link_answers_every_input_once_in_order = LinkMachine.TestCase
