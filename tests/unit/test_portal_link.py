"""The portal's input pipeline and link state machine, driven without sockets."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ipc.frames import Ack, DataIn, Hello, PConn, PSync, ServerStopped, StopServer, SyncDone
from ipc.settings import PortalSettings
from portal.session import PortalSession
from portal.sessions import LinkState, LocalProtocolError, PortalSessionHandler


class FakeConn:
    """Stands in for a FrameConnection: records what the portal sends."""

    def __init__(self, pid: int) -> None:
        self.state: dict[str, Any] = {}
        self.sent: list[Any] = []
        self.closed = ""
        self.trusted = False

    def send(self, frame: Any, urgent: bool = False) -> None:
        self.sent.append(frame)

    def close(self, reason: str) -> None:
        self.closed = reason

    abort = close

    def refuse(self, reason: str) -> None:
        self.closed = f"refused: {reason}"

    def is_closing(self) -> bool:
        return bool(self.closed)

    def inputs(self) -> list[str]:
        return [i.args[0] for f in self.sent if isinstance(f, DataIn) for i in f.items]


class FakeSession(PortalSession):
    def __init__(self) -> None:
        super().__init__()
        self.out: list[str] = []
        self.paused = False

    def send_text(self, text: str, **kwargs: Any) -> None:
        self.out.append(text)

    def disconnect(self, reason: str = "") -> None:
        pass

    def pause_input(self) -> None:
        self.paused = True

    def resume_input(self) -> None:
        self.paused = False


def make(**settings: Any) -> tuple[PortalSessionHandler, list[tuple[bool, str]]]:
    results: list[tuple[bool, str]] = []
    handler = PortalSessionHandler(PortalSettings(**settings), "s", lambda a, s: None,
                                   lambda ok, msg: results.append((ok, msg)))
    return handler, results


def join(handler: PortalSessionHandler) -> FakeSession:
    session = FakeSession()
    session.init_session("telnet", "127.0.0.1", handler)
    handler.connect(session)
    return session


def attach(handler: PortalSessionHandler, pid: int, standby: bool = False) -> FakeConn:
    conn = FakeConn(pid)
    handler.server_connected(conn, Hello(role="server", pid=pid, standby=standby))  # type: ignore[arg-type]
    if not standby:
        handler.server_frame(conn, SyncDone())  # type: ignore[arg-type]
    return conn


async def turn() -> None:
    await asyncio.sleep(0)
    await asyncio.sleep(0)


def test_input_held_while_no_server_is_replayed_in_order() -> None:
    async def scenario() -> None:
        handler, _ = make()
        session = join(handler)
        for n in range(3):
            session.data_in("text", [f"l{n}"], {})
        assert any("restarting" in line for line in session.out)
        server = attach(handler, 10)
        await turn()
        assert isinstance(server.sent[1], PSync) and isinstance(server.sent[2], PConn)
        assert server.inputs() == ["l0", "l1", "l2"]

    asyncio.run(scenario())


def test_unacked_input_goes_back_in_front_after_a_crash() -> None:
    async def scenario() -> None:
        handler, _ = make()
        session = join(handler)
        first = attach(handler, 10)
        for n in range(4):
            session.data_in("text", [f"l{n}"], {})
        await turn()
        handler.server_frame(first, Ack(seqs=[1]))  # type: ignore[arg-type]
        handler.server_closed(first, "killed")  # type: ignore[arg-type]
        session.data_in("text", ["l4"], {})
        handler.drop_input(3, "made the game hang")
        second = attach(handler, 11)
        await turn()
        assert second.inputs() == ["l1", "l3", "l4"]
        assert session.cmd_total == 1
        assert any("'l2' made the game hang" in line for line in session.out)

    asyncio.run(scenario())


def test_a_full_buffer_pauses_the_player_and_says_so() -> None:
    async def scenario() -> None:
        handler, _ = make(input_buffer_per_session=4, inflight_window=2)
        session = join(handler)
        server = attach(handler, 10)
        for n in range(4):
            session.data_in("text", [f"l{n}"], {})
        assert session.paused and any("typing faster" in line for line in session.out)
        await turn()
        assert server.inputs() == ["l0", "l1"]  # the in-flight window
        handler.server_frame(server, Ack(seqs=[1, 2, 3]))  # type: ignore[arg-type]
        assert not session.paused
        await turn()
        assert server.inputs() == ["l0", "l1", "l2", "l3"]

    asyncio.run(scenario())


def test_handover_stops_the_old_server_and_attaches_the_standby() -> None:
    async def scenario() -> None:
        handler, results = make()
        old = attach(handler, 10)
        session = join(handler)
        new = attach(handler, 11, standby=True)
        handler.handover("reload", 11)
        assert handler.state is LinkState.HANDING_OVER
        assert isinstance(old.sent[-1], StopServer)
        session.data_in("text", ["during"], {})
        assert not any("restarting" in line for line in session.out)  # a hand-over is silent
        handler.server_frame(old, ServerStopped(mode="reload"))  # type: ignore[arg-type]
        handler.server_closed(old, "stopped")  # type: ignore[arg-type]
        psync = [f for f in new.sent if isinstance(f, PSync)]
        assert psync and psync[0].mode == "reload" and psync[0].sessions[0].sessid == 1
        handler.server_frame(new, SyncDone())  # type: ignore[arg-type]
        await turn()
        assert new.inputs() == ["during"] and results == [(True, "server 11 attached")]

    asyncio.run(scenario())


def test_a_second_server_is_refused_and_illegal_steps_raise() -> None:
    async def scenario() -> None:
        handler, _ = make()
        attach(handler, 10)
        intruder = FakeConn(12)
        handler.server_connected(intruder, Hello(role="server", pid=12))  # type: ignore[arg-type]
        assert "already attached" in intruder.closed
        with pytest.raises(LocalProtocolError):
            handler._attached()

    asyncio.run(scenario())


def test_thousands_of_sessions_reach_a_new_server_in_several_psync_frames() -> None:
    async def scenario() -> None:
        handler, _ = make()
        attach(handler, 10)
        for _ in range(1200):
            join(handler)
        handler.server_closed(handler.server, "killed")  # type: ignore[arg-type]
        second = FakeConn(11)
        handler.server_connected(second, Hello(role="server", pid=11))  # type: ignore[arg-type]
        parts = [f for f in second.sent if isinstance(f, PSync)]
        assert [len(p.sessions) for p in parts] == [500, 500, 200]
        assert [p.more for p in parts] == [True, True, False]
        assert {s.sessid for p in parts for s in p.sessions} == set(range(1, 1201))

    asyncio.run(scenario())


def test_a_player_who_leaves_with_input_in_flight_is_not_counted_twice() -> None:
    async def scenario() -> None:
        handler, _ = make()
        server = attach(handler, 10)
        leaver, stayer = join(handler), join(handler)
        for n in range(3):
            leaver.data_in("text", [f"l{n}"], {})
        stayer.data_in("text", ["s0"], {})
        await turn()
        handler.disconnect(leaver)
        assert handler.held_total == 1
        handler.server_frame(server, Ack(seqs=[1, 2, 3, 4]))  # type: ignore[arg-type]
        assert handler.held_total == 0 and handler.held == {}
        leaver2 = join(handler)
        leaver2.data_in("text", ["x"], {})
        await turn()
        handler.disconnect(leaver2)
        handler.server_closed(server, "killed")  # type: ignore[arg-type]
        assert list(handler.pending) == []  # a gone player's input is not replayed

    asyncio.run(scenario())
