"""`portal.link.Link` driven without sockets or sleeps: every row of its table, every
hand-over failure path, and a state machine that interleaves everything at random."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ipc.frames import (
    Ack,
    DataIn,
    DataOut,
    Frame,
    OutputItem,
    PConn,
    PDisconn,
    PSync,
    SDisconn,
    ServerStopped,
    SessionData,
    SSync,
    StopServer,
    SyncDone,
    Welcome,
)
from ipc.settings import PortalSettings
from portal.link import (
    MSG_BACK,
    MSG_FULL,
    MSG_RESTARTING,
    TRANSITIONS,
    CloseConn,
    CloseSession,
    CommandDone,
    Effect,
    HandoverDone,
    Link,
    LinkEvent,
    LinkState,
    LocalProtocolError,
    Pause,
    PumpSoon,
    Resume,
    Send,
    ServerGone,
    SetTimer,
    Tell,
)

OLD, NEW, OTHER = 1, 2, 3  # connection ids
OLD_PID, NEW_PID = 100, 200


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def snapshot(sessid: int) -> SessionData:
    return SessionData(sessid=sessid, protocol_key="telnet", address="127.0.0.1")


def make(**settings: Any) -> tuple[Link, Clock]:
    clock = Clock()
    return Link(PortalSettings(**settings), "run1", snapshot, clock), clock


def frames(effects: list[Effect], conn: int) -> list[Frame]:
    return [e.frame for e in effects if isinstance(e, Send) and e.conn == conn]


def inputs(effects: list[Effect], conn: int) -> list[Any]:
    return [i.args[0] for f in frames(effects, conn) if isinstance(f, DataIn) for i in f.items]


def told(effects: list[Effect], sessid: int) -> list[str]:
    return [e.text for e in effects if isinstance(e, Tell) and e.sessid == sessid]


def of(effects: list[Effect], kind: type) -> list[Any]:
    return [e for e in effects if isinstance(e, kind)]


def attached(link: Link, conn: int = OLD, pid: int = OLD_PID) -> list[Effect]:
    """A server attaches, and greets every session announced to it (as a real one does)."""
    effects = link.server_hello(conn, pid, False) + link.receive_frame(conn, SyncDone())
    return effects + greeted(link, conn, *link.peers)


def greeted(link: Link, conn: int, *sessids: int) -> list[Effect]:
    """The server's first output to `sessids`: it has handled their PConn."""
    if not sessids:
        return []
    return link.receive_frame(conn, DataOut(items=[OutputItem(sessid, "text", ["Welcome"], {})
                                                   for sessid in sessids]))


def handing_over(link: Link) -> list[Effect]:
    """ATTACHED with a standby, then the supervisor's Handover."""
    return attached(link) + link.server_hello(NEW, NEW_PID, True) + link.handover("reload", NEW_PID)


def attaching_standby(link: Link) -> list[Effect]:
    return (handing_over(link) + link.receive_frame(OLD, ServerStopped(mode="reload"))
            + link.server_closed(OLD, "stopped"))


# ---------------------------------------------------------------- every row of the table

SETUPS: dict[LinkState, Callable[[Link], object]] = {
    LinkState.NONE: lambda link: None,
    LinkState.ATTACHING: lambda link: link.server_hello(OLD, OLD_PID, False),
    LinkState.ATTACHED: attached,
    LinkState.HANDING_OVER: handing_over,
    LinkState.ATTACHING_STANDBY: attaching_standby,
    LinkState.STOPPING: lambda link: (attached(link), link.stop("shutdown", 5.0)),
}


def fire(link: Link, clock: Clock, event: LinkEvent) -> list[Effect]:
    server = link.server.conn if link.server is not None else OTHER
    match event:
        case LinkEvent.SERVER_HELLO:
            return link.server_hello(OTHER, 300, False)
        case LinkEvent.SYNC_DONE:
            return link.receive_frame(server, SyncDone())
        case LinkEvent.HANDOVER:
            return link.server_hello(OTHER, 300, True) + link.handover("reset", 300)
        case LinkEvent.OLD_STOPPED:
            return link.server_closed(server, "stopped")
        case LinkEvent.SERVER_LOST:
            first = link.server_closed(NEW, "standby died") if link.standby else []
            return first + link.server_closed(server, "killed")
        case LinkEvent.TIMEOUT:
            clock.now += 3600
            return link.tick()
        case LinkEvent.STOP:
            return link.stop("shutdown", 5.0)
    raise AssertionError(event)


@pytest.mark.parametrize(("start", "event"), sorted(TRANSITIONS))
def test_every_transition_of_the_table(start: LinkState, event: LinkEvent) -> None:
    link, clock = make()
    SETUPS[start](link)
    assert link.state is start
    fire(link, clock, event)
    assert link.state is TRANSITIONS[(start, event)]


def test_an_event_outside_the_table_is_a_local_error() -> None:
    link, _ = make()
    with pytest.raises(LocalProtocolError):
        link._step(LinkEvent.SYNC_DONE)


def test_the_table_names_every_state() -> None:
    reached = {state for state, _ in TRANSITIONS} | set(TRANSITIONS.values())
    assert reached == set(LinkState)


# ---------------------------------------------------------------- input, acks, outages


def test_input_held_while_no_server_is_replayed_in_order() -> None:
    link, _ = make()
    effects = link.connect(1)
    effects += [e for n in range(3) for e in link.data_in(1, "text", [f"l{n}"], {})]
    assert told(effects, 1) == [MSG_RESTARTING]  # told once per gap, not per line
    effects = attached(link)
    psync = frames(effects, OLD)
    assert isinstance(psync[0], Welcome) and isinstance(psync[1], PSync)
    assert psync[1].mode == "start" and isinstance(psync[2], PConn)
    assert told(effects, 1) == [MSG_BACK] and of(effects, PumpSoon)
    assert inputs(link.pump(), OLD) == ["l0", "l1", "l2"]


def test_unacked_input_goes_back_in_front_after_a_crash() -> None:
    link, clock = make()
    link.connect(1)
    attached(link)
    for n in range(4):
        link.data_in(1, "text", [f"l{n}"], {})
    link.pump()
    done = link.receive_frame(OLD, Ack(seqs=[1]))
    assert of(done, CommandDone) == [CommandDone([1], clock.now)]
    lost = link.server_closed(OLD, "killed")
    assert told(lost, 1) == [MSG_RESTARTING] and link.state is LinkState.NONE
    link.data_in(1, "text", ["l4"], {})
    assert "'l2' crashed the game twice" in told(link.drop_input(3, "crashed the game twice"), 1)[0]
    effects = attached(link, NEW, NEW_PID)
    assert frames(effects, NEW)[1].mode == "crash"  # type: ignore[attr-defined]
    assert inputs(link.pump(), NEW) == ["l1", "l3", "l4"]


def test_a_full_buffer_pauses_the_player_says_so_once_and_resumes() -> None:
    link, _ = make(input_buffer_per_session=4, inflight_window=2)
    link.connect(1)
    attached(link)
    effects = [e for n in range(4) for e in link.data_in(1, "text", [f"l{n}"], {})]
    assert of(effects, Pause) == [Pause(1)] and told(effects, 1) == [MSG_FULL]
    assert inputs(link.pump(), OLD) == ["l0", "l1"]  # the in-flight window
    assert of(link.receive_frame(OLD, Ack(seqs=[1])), Resume) == []
    assert of(link.receive_frame(OLD, Ack(seqs=[2, 99])), Resume) == [Resume(1)]
    assert inputs(link.pump(), OLD) == ["l2", "l3"]


def test_a_player_who_leaves_is_forgotten_and_never_replayed() -> None:
    link, _ = make()
    attached(link)
    link.connect(1)
    link.connect(2)
    for n in range(3):
        link.data_in(1, "text", [f"l{n}"], {})
    link.data_in(2, "text", ["s0"], {})
    link.pump()
    assert frames(link.disconnect(1, "quit"), OLD) == [PDisconn(sessid=1, reason="quit")]
    assert link.held_total == 1
    assert of(link.receive_frame(OLD, Ack(seqs=[1, 2, 3, 4])), CommandDone) == [
        CommandDone([2], 1000.0)]
    assert link.held_total == 0
    link.data_in(2, "text", ["s1"], {})
    link.server_closed(OLD, "killed")
    assert [i.args for i in link.pending] == [["s1"]]


def test_the_server_closing_a_session_forgets_its_announcement() -> None:
    link, _ = make()
    attached(link)
    link.connect(1)
    effects = link.receive_frame(OLD, SDisconn(sessid=1, reason="quit"))
    assert of(effects, CloseSession) == [CloseSession(1, "quit")]
    assert frames(link.disconnect(1, "quit"), OLD) == []  # no PDisconn for a known goodbye


def test_a_connection_the_server_died_before_greeting_is_new_to_the_next_server() -> None:
    """A PConn the server never answered (it was killed first) is not trusted to have
    reached it: the next server gets that session as a new connection (and greets it),
    not in its sync; one it did answer (output, an ack) comes back in the sync."""
    link, _ = make()
    attached(link)
    link.connect(1)
    link.connect(2)
    link.receive_frame(OLD, DataOut(items=[OutputItem(2, "text", ["Welcome"], {})]))
    link.server_closed(OLD, "killed")
    effects = link.server_hello(NEW, NEW_PID, False)
    (psync,) = [f for f in frames(effects, NEW) if isinstance(f, PSync)]
    assert [data.sessid for data in psync.sessions] == [2]
    after = link.receive_frame(NEW, SyncDone())
    assert [f.session.sessid for f in frames(after, NEW) if isinstance(f, PConn)] == [1]
    link.server_closed(NEW, "killed again")  # unanswered again: still new to the next
    effects = attached(link, OTHER, 300)
    assert [f.session.sessid for f in frames(effects, OTHER) if isinstance(f, PConn)] == [1]


def test_frames_from_a_server_that_is_not_attached_are_ignored() -> None:
    link, _ = make()
    attached(link)
    link.server_hello(NEW, NEW_PID, True)
    assert link.receive_frame(NEW, SyncDone()) == []
    refused = of(link.server_hello(OTHER, 300, False), CloseConn)
    assert refused and refused[0].refuse and "already attached" in refused[0].reason


def test_thousands_of_sessions_reach_a_new_server_in_several_psync_frames() -> None:
    link, _ = make()
    attached(link)
    for sessid in range(1, 1201):
        link.connect(sessid)
    greeted(link, OLD, *range(1, 1201))
    link.server_closed(OLD, "killed")
    parts = [f for f in frames(link.server_hello(NEW, NEW_PID, False), NEW)
             if isinstance(f, PSync)]
    assert [len(p.sessions) for p in parts] == [500, 500, 200]
    assert [p.more for p in parts] == [True, True, False]


# ---------------------------------------------------------------- hand-over paths


def test_a_handover_stops_the_old_server_silently_and_attaches_the_standby() -> None:
    link, _ = make()
    link.connect(1)
    effects = handing_over(link)
    assert frames(effects, OLD)[-1] == StopServer(mode="reload")
    assert of(effects, SetTimer)[-1] == SetTimer(10.0)
    assert told(link.data_in(1, "text", ["during"], {}), 1) == []  # a hand-over is silent
    link.receive_frame(OLD, ServerStopped(mode="reload"))
    effects = link.server_closed(OLD, "stopped")
    psync = [f for f in frames(effects, NEW) if isinstance(f, PSync)]
    assert psync[0].mode == "reload" and psync[0].sessions == []  # sent ahead, unchanged
    assert [c.sessid for c in psync[0].counters] == [1]
    effects = link.receive_frame(NEW, SyncDone())
    assert of(effects, HandoverDone) == [HandoverDone(True, f"server {NEW_PID} attached")]
    assert of(effects, SetTimer) == [SetTimer(None)]
    assert inputs(link.pump(), NEW) == ["during"]


def test_handover_with_no_server_attached_attaches_the_standby_at_once() -> None:
    link, _ = make()
    link.server_hello(NEW, NEW_PID, True)
    effects = link.handover("reset", NEW_PID)
    assert link.state is LinkState.ATTACHING_STANDBY
    assert frames(effects, NEW)[-1].mode == "reset"  # type: ignore[attr-defined]


def test_handover_timeout_aborts_the_old_server_and_the_standby_takes_over() -> None:
    link, clock = make(handover_timeout=2.0)
    link.connect(1)
    handing_over(link)
    link.data_in(1, "text", ["a"], {})
    clock.now += 1.0
    assert link.tick() == [SetTimer(1.0)]  # woke early: nothing happens
    clock.now += 1.0
    effects = link.tick()
    assert of(effects, CloseConn) == [CloseConn(OLD, "did not stop in time", abort=True)]
    effects = link.server_closed(OLD, "aborted")
    assert link.state is LinkState.ATTACHING_STANDBY
    assert frames(effects, NEW)[-1].mode == "crash"  # type: ignore[attr-defined]
    assert told(effects, 1) == []
    assert of(link.receive_frame(NEW, SyncDone()), HandoverDone)[0].ok
    assert inputs(link.pump(), NEW) == ["a"]


def test_the_standby_dying_mid_handover_fails_it_when_the_old_server_goes() -> None:
    link, _ = make()
    link.connect(1)
    handing_over(link)
    link.data_in(1, "text", ["a"], {})
    assert link.server_closed(NEW, "killed") == []
    link.receive_frame(OLD, ServerStopped(mode="reload"))
    effects = link.server_closed(OLD, "stopped")
    assert link.state is LinkState.NONE
    assert of(effects, HandoverDone) == [HandoverDone(False, "the standby server went away")]
    assert told(effects, 1) == [MSG_RESTARTING]
    effects = attached(link, OTHER, 300)
    assert frames(effects, OTHER)[1].mode == "reload"  # type: ignore[attr-defined]
    assert inputs(link.pump(), OTHER) == ["a"]


def test_the_new_server_dying_before_it_attaches_fails_the_handover() -> None:
    link, _ = make()
    link.connect(1)
    attaching_standby(link)
    link.data_in(1, "text", ["a"], {})
    effects = link.server_closed(NEW, "exit 1")
    assert link.state is LinkState.NONE and link.next_mode == "crash"
    done = of(effects, HandoverDone)
    assert not done[0].ok and "before it attached: exit 1" in done[0].message
    assert told(effects, 1) == [MSG_RESTARTING]
    attached(link, OTHER, 300)
    assert inputs(link.pump(), OTHER) == ["a"]


def test_a_standby_that_does_not_sync_in_time_is_reported_but_may_still_attach() -> None:
    link, clock = make(handover_timeout=2.0)
    attaching_standby(link)
    clock.now += 2.0
    effects = link.tick()
    failed = HandoverDone(False, "the new server did not attach in time")
    assert of(effects, HandoverDone) == [failed]
    assert link.state is LinkState.ATTACHING
    assert of(link.receive_frame(NEW, SyncDone()), HandoverDone) == []
    assert link.state is LinkState.ATTACHED


def test_a_standby_pid_mismatch_changes_nothing() -> None:
    link, _ = make()
    attached(link)
    link.server_hello(NEW, NEW_PID, True)
    effects = link.handover("reload", 999)
    assert effects == [HandoverDone(False, "standby server 999 is not connected")]
    assert link.state is LinkState.ATTACHED and link.standby is not None


def test_a_handover_while_attaching_is_refused() -> None:
    link, _ = make()
    link.server_hello(OLD, OLD_PID, False)
    link.server_hello(NEW, NEW_PID, True)
    assert link.handover("reload", NEW_PID) == [
        HandoverDone(False, "cannot hand over while the link is attaching")]


def test_a_newer_standby_replaces_the_waiting_one() -> None:
    link, _ = make()
    link.server_hello(NEW, NEW_PID, True)
    assert of(link.server_hello(OTHER, 300, True), CloseConn) == [
        CloseConn(NEW, "replaced by a newer standby")]


# ---------------------------------------------------------------- stopping


def test_stop_asks_the_server_and_reports_it_gone_without_telling_players() -> None:
    link, _ = make()
    link.connect(1)
    attached(link)
    effects = link.stop("shutdown", 5.0)
    assert frames(effects, OLD) == [StopServer(mode="shutdown")]
    assert told(link.data_in(1, "text", ["late"], {}), 1) == []
    effects = link.server_closed(OLD, "stopped")
    assert of(effects, ServerGone) and told(effects, 1) == []
    assert link.state is LinkState.CLOSED and link.stop("shutdown", 5.0) == []


def test_stop_timeout_aborts_the_server() -> None:
    link, clock = make()
    attached(link)
    link.stop("shutdown", 5.0)
    clock.now += 5.0
    assert of(link.tick(), CloseConn) == [CloseConn(OLD, "did not stop in time", abort=True)]
    assert of(link.server_closed(OLD, "aborted"), ServerGone)


def test_stop_during_a_handover_fails_it_and_closes_the_standby() -> None:
    link, _ = make()
    handing_over(link)
    effects = link.stop("shutdown", 5.0)
    assert of(effects, CloseConn) == [CloseConn(NEW, "the portal is shutting down")]
    assert of(effects, HandoverDone) == [HandoverDone(False, "the portal is shutting down")]
    assert frames(effects, OLD) == []  # already asked to stop


def test_stop_with_no_server_is_done_at_once() -> None:
    link, _ = make()
    assert of(link.stop("shutdown", 5.0), ServerGone)


def test_input_waits_while_the_servers_socket_is_full() -> None:
    link, _ = make()
    link.connect(1)
    attached(link)
    link.server_writable(OLD, False)
    link.data_in(1, "text", ["a"], {})
    assert link.pump() == [] and [i.args for i in link.pending] == [["a"]]
    assert of(link.server_writable(OLD, True), PumpSoon)
    assert inputs(link.pump(), OLD) == ["a"]


def test_a_standby_gets_the_sessions_ahead_and_the_switch_only_what_changed() -> None:
    link, _ = make()
    attached(link)
    for sessid in (1, 2, 3):
        link.connect(sessid)
    greeted(link, OLD, 1, 2, 3)
    ahead = frames(link.server_hello(NEW, NEW_PID, True), NEW)
    assert isinstance(ahead[0], Welcome) and isinstance(ahead[1], PSync)
    assert ahead[1].presync and [s.sessid for s in ahead[1].sessions] == [1, 2, 3]
    link.flags_changed(1, {"SCREENWIDTH": 100})
    link.disconnect(2, "quit")
    link.connect(4)
    greeted(link, OLD, 4)
    link.receive_frame(OLD, SSync(sessions=[snapshot(3)]))
    link.handover("reload", NEW_PID)
    link.receive_frame(OLD, ServerStopped(mode="reload"))
    switch = [f for f in frames(link.server_closed(OLD, "stopped"), NEW) if isinstance(f, PSync)]
    assert len(switch) == 1 and not switch[0].presync and not switch[0].more
    assert [s.sessid for s in switch[0].sessions] == [1, 3, 4]
    assert switch[0].gone == [2]
    assert [c.sessid for c in switch[0].counters] == [1, 3, 4]


def test_a_server_that_was_not_sent_anything_ahead_gets_everything() -> None:
    link, _ = make()
    attached(link)
    link.connect(1)
    greeted(link, OLD, 1)
    link.server_closed(OLD, "killed")
    psync = [f for f in frames(link.server_hello(NEW, NEW_PID, False), NEW)
             if isinstance(f, PSync)]
    assert [s.sessid for s in psync[0].sessions] == [1]
    assert psync[0].gone == [] and psync[0].counters == []


def test_a_player_who_leaves_while_a_server_attaches_is_forgotten_by_it_too() -> None:
    """Found by the state machine: the PSync named the player, so the attaching server
    must hear the PDisconn, or it keeps a session nobody holds."""
    link, _ = make()
    attached(link)
    link.connect(1)
    greeted(link, OLD, 1)
    link.server_closed(OLD, "killed")
    link.server_hello(NEW, NEW_PID, False)
    assert frames(link.disconnect(1, "quit"), NEW) == [PDisconn(sessid=1, reason="quit")]
