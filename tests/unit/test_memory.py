"""Memory comes back after a storm of connections (issue 23): nothing per connection stays,
the tables are rebuilt, and the guard's sweep hands freed memory back."""

from __future__ import annotations

import asyncio
import gc
import socket
import sys
import weakref
from pathlib import Path
from typing import Any

from ipc.child import ChildEnv
from ipc.settings import PortalSettings, Settings
from portal import memory
from portal.guard import PortalGuard
from portal.main import PortalProcess
from portal.sessions import PortalSessionHandler
from server.session import ServerSession
from tests.unit.test_guard import Clock, FakeSession


def test_trim_is_due_once_enough_connections_closed_since_the_most_open() -> None:
    policy = memory.TrimPolicy(drop=100)
    for count in range(1, 501):
        policy.opened(count)
    assert not policy.due(401)  # 99 closed
    assert policy.due(400)
    assert not policy.due(400)  # none closed since: no follow-up
    assert not policy.due(301)  # counting starts over at 400
    assert policy.due(300)
    assert policy.due(290)  # the sweep after a storm's trim: more closed, once more
    assert not policy.due(280)  # (only once)
    assert policy.due(0)
    assert not memory.TrimPolicy(drop=0, high=10_000).due(0)  # 0: never


def make_guard(**settings: Any) -> tuple[PortalGuard, Clock, list[str]]:
    clock, released = Clock(), []

    def call_later(delay: float, callback: Any) -> object:
        clock.call_later(delay, callback)
        return object()  # a handle: the guard arms one sweep at a time

    guard = PortalGuard(PortalSettings(**settings), lambda *a: None, lambda: [],
                        clock=clock, wall=clock, call_later=call_later,
                        release_memory=released.append)
    return guard, clock, released


def test_the_sweep_releases_memory_after_a_storm_and_not_before() -> None:
    guard, clock, released = make_guard(memory_trim_after=1000,
                                        unlimited_addresses=["10.0.0.0/8"])
    addresses = [f"10.0.{n // 250}.{n % 250}" for n in range(3000)]
    for address in addresses:
        assert guard.admit(address) is None
    clock.advance(30.0)
    assert released == []  # all still open
    for address in addresses[:999]:
        guard.release(address)
    clock.advance(30.0)
    assert released == []  # 999 closed: not yet
    for address in addresses[999:]:
        guard.release(address)
    clock.advance(30.0)
    assert released == ["3000 connections closed since 3000 were open"]
    assert guard.addresses.open == 0
    clock.advance(60.0)
    assert len(released) == 1  # once per storm, not per sweep


def test_a_closed_address_is_counted_once() -> None:
    guard, _, _ = make_guard(unlimited_addresses=[])
    assert guard.admit("10.0.0.1") is None
    guard.release("10.0.0.1")
    guard.release("10.0.0.1")  # (a second release must not count twice)
    assert guard.addresses.open == 0


def test_release_memory_rebuilds_every_table_at_the_size_it_holds() -> None:
    handler = PortalSessionHandler(PortalSettings(unlimited_addresses=[]), "secret",
                                   lambda a, s: None, lambda ok, m: None)
    small = sys.getsizeof({1: None})
    rebuilt: list[bool] = []
    handler.compact_hooks.append(lambda: rebuilt.append(True))
    sessions = []
    for n in range(3000):
        session = FakeSession()
        session.address = f"10.1.{n // 250}.{n % 250}"
        assert handler.admit(session.address) is None
        handler.connect(session)
        sessions.append(session)
    for session in sessions[1:]:
        handler.disconnect(session)
        handler.release(session.address)
    tables = lambda: {"sessions": handler.sessions, "peers": handler.link.peers,  # noqa: E731
                      "counts": handler.guard.addresses.counts}
    assert all(sys.getsizeof(t) > 50 * small for t in tables().values())  # as at the peak
    handler.release_memory("test")
    sizes = {name: sys.getsizeof(t) for name, t in tables().items()}
    assert all(size < 4 * small for size in sizes.values()), sizes
    assert list(handler.sessions.values()) == sessions[:1] and rebuilt == [True]


class FakeTransport:
    def __init__(self, address: str) -> None:
        self.address, self.closing = address, False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return (self.address, 4000) if name == "peername" else default

    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def test_the_portal_forgets_each_telnet_connection_as_it_closes(tmp_path: Path) -> None:
    """It kept every one (about 12 KB each) until a hand-over: a storm of 20,000 short
    connections left 250 MB. A closed session is freed by reference counting alone."""
    env = ChildEnv(game_dir=tmp_path, secret="s", control_socket=tmp_path / "c.sock",
                   portal_socket=tmp_path / "p.sock", state_dir=tmp_path, parent_pid=1)

    settings = Settings(portal=PortalSettings(max_connections_per_address=1,
                                              unlimited_addresses=[]))

    async def storm() -> tuple[PortalProcess, list[weakref.ref[Any]], Any]:
        portal = PortalProcess(env, settings)
        refs = []
        for n in range(50):
            session = portal.telnet_session("telnet")
            session.connection_made(FakeTransport(f"10.2.0.{n}"))  # type: ignore[arg-type]
            session.connection_lost(None)
            refs.append(weakref.ref(session))
        stays = portal.telnet_session("telnet")
        stays.connection_made(FakeTransport("10.3.0.1"))  # type: ignore[arg-type]
        refused = portal.telnet_session("telnet")  # the guard turns this one away
        refused.connection_made(FakeTransport("10.3.0.1"))  # type: ignore[arg-type]
        assert refused.transport is not None and refused.transport.is_closing()
        refused.connection_lost(None)
        refs.append(weakref.ref(refused))
        del session, refused
        return portal, refs, stays

    gc.disable()  # a cycle would keep them until a full collection: there must be none
    try:
        portal, refs, stays = asyncio.run(storm())
        alive = sum(1 for ref in refs if ref() is not None)
    finally:
        gc.enable()
    assert alive == 0, f"{alive} closed sessions are still referenced"
    assert portal.connections == {stays}
    assert portal.handler.guard.addresses.open == 1
    del stays
    old = portal.connections
    portal.handler.release_memory("test")
    assert portal.connections is not old  # rebuilt, and still the one closing sessions use


def test_a_connection_s_state_lives_in_slots(tmp_path: Path) -> None:
    """Issue 24: the player path reads a session and its telnet parser on every line, and
    a dict per object scattered that state (in-process, the portal's CPU per round trip at
    1,000 players fell by a third with the parser in slots). An attribute added without
    its slot would go to `__dict__` unseen: this names it."""
    env = ChildEnv(game_dir=tmp_path, secret="s", control_socket=tmp_path / "c.sock",
                   portal_socket=tmp_path / "p.sock", state_dir=tmp_path, parent_pid=1)

    async def connect() -> Any:
        portal = PortalProcess(env, Settings(portal=PortalSettings(negotiation_timeout=0.01)))
        session = portal.telnet_session("telnet")
        session.connection_made(FakeTransport("10.4.0.1"))  # type: ignore[arg-type]
        await asyncio.sleep(0.05)  # the client answers nothing: negotiation times out
        session.data_received(b"look\r\n")
        session.send_text("You see a hearth.")
        session.flush_output()
        return session

    session = asyncio.run(connect())
    assert session._announced_to_handler
    assert vars(session) == {"protocol_key": "telnet"}  # (a class attribute, set per door)
    assert vars(session.telnet) == {}
    server_side = ServerSession()
    server_side.msg("hi")  # (no handler: nothing sent)
    assert vars(server_side) == {}


def test_an_inherited_listener_keeps_the_listen_backlog(tmp_path: Path) -> None:
    """`create_server(sock=...)` calls listen() again with its default backlog (100)
    unless told: in a burst about 1% of the connections overflowed the accept queue and
    waited 30 s for a greeting."""
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen(4096)
    env = ChildEnv(game_dir=tmp_path, secret="s", control_socket=tmp_path / "c.sock",
                   portal_socket=tmp_path / "p.sock", state_dir=tmp_path, parent_pid=1,
                   listeners={"telnet": held.fileno()})
    seen: dict[str, Any] = {}

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        create_server = loop.create_server

        async def spy(*args: Any, **kwargs: Any) -> Any:
            seen.update(kwargs)
            return await create_server(*args, **kwargs)

        loop.create_server = spy  # type: ignore[method-assign]
        portal = PortalProcess(env, Settings(portal=PortalSettings(listen_backlog=3000)))
        await portal.serve("telnet", 0, lambda: asyncio.Protocol())
        for listener in portal.listeners:
            listener.close()

    with held:
        asyncio.run(serve())
    assert isinstance(seen.get("sock"), socket.socket) and seen.get("backlog") == 3000
