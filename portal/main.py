"""The portal process: holds every player's socket; servers dial in on the ipc socket."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from typing import Any

import asyncssh

from ipc.child import ChildEnv, ChildProcess, run_child
from ipc.connection import ForeignPeer, FrameConnection, check_hello, check_peer, connect_unix
from ipc.frames import (
    Announce,
    ChildStatus,
    Command,
    ControlFrame,
    GameFrame,
    Handover,
    HandoverResult,
    Hello,
    LossReason,
    PortalMove,
    PortalRequest,
    Ready,
    Refused,
    ServerLost,
    Shutdown,
)
from ipc.settings import Settings, runtime_paths
from portal.handover_frames import (
    Bound,
    LetGo,
    Taken,
    dial_channel,
    listen_channel,
    receive_move,
    send_move,
)
from portal.link import LinkState
from portal.move.handover import HandOut, MoveFailed, Stopwatch, gc_paused
from portal.move.takeover import TakeOver
from portal.sessions import MSG_DOWN, PortalSessionHandler
from portal.ssh import server as ssh
from portal.telnet.session import TelnetSession
from portal.tls import certificate_paths, server_context
from portal.web.move import WebHandOut, WebTakeOver
from portal.web.server import WebServer

log = logging.getLogger("portal")

GOODBYE = "The game is shutting down. Goodbye!"
# Test hook: "fail-start" makes a taking-over portal exit before ready, "fail-take" makes
# it refuse the connections once it has them, "fail-bind" makes it fail after the old
# portal let go of its ipc socket, FAIL_BIND_DELAY seconds later (each must leave the old
# portal serving).
TEST_TAKEOVER = "HEARTH_TEST_PORTAL_TAKEOVER"
EXIT_TAKEOVER_FAILED = 5
FAIL_BIND_DELAY = 0.5


class PortalProcess(ChildProcess):
    def __init__(self, env: ChildEnv, settings: Settings) -> None:
        super().__init__()
        self.env = env
        self.settings = settings
        self.started = time.time()
        self.control: FrameConnection | None = None
        self.handler = PortalSessionHandler(
            settings.portal, env.secret, self.on_request, self.on_handover
        )
        self.ports: dict[str, int] = {}
        self.listeners: list[asyncio.AbstractServer | asyncssh.SSHAcceptor] = []  # players' ports
        self.web: WebServer | None = None
        self.ipc_listener: asyncio.AbstractServer | None = None
        self.connections: set[TelnetSession] = set()  # every open telnet connection
        self.handler.compact_hooks.append(self.compact_connections)
        self.moving = False

    async def main(self) -> int:
        env = self.env
        self.control = await connect_unix(
            str(env.control_socket), ControlFrame, self.on_control, self.on_control_closed,
            name="portal-control", heartbeat=self.settings.supervisor.heartbeat_interval,
        )
        self.control.send(Hello(role="portal", pid=os.getpid(), secret=env.secret))
        if env.takeover:
            return await self.take_over(env.takeover)
        await self.listen_ipc()
        await self.listen_telnet()
        await self.listen_web()
        self.control.send(Ready(info={"ports": self.ports, "run_id": self.handler.run_id}))
        log.info("portal ready: %s", self.ports)
        return await self.done

    # ------------------------------------------------------------ listeners

    async def listen_ipc(self) -> None:
        path = self.env.portal_socket
        path.unlink(missing_ok=True)
        loop = asyncio.get_running_loop()
        server = await loop.create_unix_server(self.ipc_connection, str(path))
        path.chmod(0o600)
        self.ipc_listener = server

    def ipc_connection(self) -> FrameConnection:
        return FrameConnection(GameFrame, self.on_ipc_frame, self.on_ipc_closed,
                               name="portal-ipc", on_writable=self.handler.server_writable)

    def listening_socket(self, key: str, port: int) -> socket.socket | dict[str, Any]:
        """What `create_server` needs to listen for `key`: the socket the supervisor holds
        (inherited), or, when it passed none, the address to bind here."""
        sock = inherited_socket(self.env.listeners, key)
        if sock is not None:
            return sock
        portal = self.settings.portal
        return {"host": portal.interface, "port": port, "backlog": portal.listen_backlog}

    async def serve(self, key: str, port: int, factory: Any, **kwargs: Any) -> None:
        """Listen for protocol `key` (on the inherited socket when there is one)."""
        where = self.listening_socket(key, port)
        loop = asyncio.get_running_loop()
        if isinstance(where, socket.socket):
            # `create_server` calls listen() again, with its own default backlog (100)
            # unless told: a burst of connections would overflow the accept queue
            server = await loop.create_server(factory, sock=where,
                                              backlog=self.settings.portal.listen_backlog,
                                              **kwargs)
        else:
            server = await loop.create_server(factory, **where, **kwargs)
        self.listeners.append(server)
        self.ports[key] = server.sockets[0].getsockname()[1]

    async def listen_telnet(self) -> None:
        portal = self.settings.portal

        await self.serve("telnet", portal.telnet_port, lambda: self.telnet_session("telnet"))
        if portal.telnet_ssl_port is not None:
            await self.listen_telnet_ssl(portal.telnet_ssl_port)
        if portal.ssh_port is not None:
            await self.listen_ssh(portal.ssh_port)

    async def listen_telnet_ssl(self, port: int) -> None:
        portal = self.settings.portal
        cert, key = certificate_paths(self.env.game_dir, runtime_paths(self.env.game_dir).keys,
                                      portal.tls_cert, portal.tls_key, portal.interface)
        context = server_context(cert, key)

        await self.serve("telnet/ssl", port, lambda: self.telnet_session("telnet/ssl"),
                         ssl=context, ssl_handshake_timeout=10.0)

    def telnet_session(self, key: str) -> TelnetSession:
        """A new telnet session, remembered while its socket is open (for a hand-over)."""
        session = TelnetSession(self.handler, key, self.mssp,
                                self.settings.portal.negotiation_timeout,
                                on_closed=self.connection_closed)
        self.connections.add(session)
        return session

    def connection_closed(self, session: TelnetSession) -> None:
        self.connections.discard(session)

    def compact_connections(self) -> None:
        """After a storm: a set keeps its largest table until it is rebuilt."""
        self.connections = set(self.connections)

    async def listen_ssh(self, port: int) -> None:
        portal = self.settings.portal
        key = ssh.host_key(self.env.game_dir, runtime_paths(self.env.game_dir).keys,
                           portal.ssh_host_key)
        acceptor = await ssh.listen(self.handler, portal, key,
                                    self.listening_socket("ssh", port))
        self.listeners.append(acceptor)
        self.ports["ssh"] = acceptor.get_port()

    async def listen_web(self) -> None:
        """The web client: page, websocket and ajax on one port (off without `web_port`)."""
        portal = self.settings.portal
        if portal.web_port is None:
            return
        tls: dict[str, Any] = {}
        if portal.web_tls:
            cert, key = certificate_paths(self.env.game_dir,
                                          runtime_paths(self.env.game_dir).keys,
                                          portal.tls_cert, portal.tls_key, portal.interface)
            tls = {"ssl": server_context(cert, key), "ssl_handshake_timeout": 10.0}
        await self.serve("web", portal.web_port, self.web_server().connection, **tls)

    def web_server(self) -> WebServer:
        """The web door's shared state, made once: a portal that resumes after a failed
        move keeps its pages, and one that takes over adopts web sessions before it
        listens."""
        if self.web is None:
            self.web = WebServer.create(self.handler, self.settings.portal,
                                        self.settings.game.name)
        return self.web

    def mssp(self) -> dict[str, str]:
        return {
            "NAME": self.settings.game.name,
            "PLAYERS": str(sum(1 for s in self.handler.sessions.values() if s.logged_in)),
            "UPTIME": str(int(self.started)),
            "PORT": str(self.ports.get("telnet", 0)),
            "CODEBASE": "Hearth",
            **({"SSL": str(self.ports["telnet/ssl"])} if "telnet/ssl" in self.ports else {}),
        }

    # ------------------------------------------------------------ ipc (servers)

    def on_ipc_frame(self, conn: FrameConnection, frame: Any) -> None:
        if conn.state.get("role") == "server":
            self.handler.server_frame(conn, frame)
            return
        reason = "first frame is not a hello"
        if isinstance(frame, Hello):
            reason = check_hello(frame, secret=self.env.secret, roles=("server",)) or ""
        if reason:
            conn.refuse(reason)
            return
        assert isinstance(frame, Hello)
        self.handler.server_connected(conn, frame)

    def on_ipc_closed(self, conn: FrameConnection, reason: str) -> None:
        if conn.state.get("role") == "server":
            self.handler.server_closed(conn, reason)

    # ------------------------------------------------------------ control (supervisor)

    def on_control(self, conn: FrameConnection, frame: Any) -> None:
        match frame:
            case PortalMove(path=path):
                self.spawn(self.hand_out(path))
            case Handover(mode=mode, standby_pid=pid):
                self.handler.handover(mode, pid)
            case ServerLost(reason=reason, poison_seq=seq, message=message):
                self.server_lost(reason, seq, message)
            case Command(name="status"):
                conn.send(ChildStatus(info=self.status()))
            case Announce(text=text, sessid=sessid):
                self.announce(text, sessid)
            case Shutdown(reason=reason):
                self.spawn(self.shutdown(reason or GOODBYE))
            case Refused(reason=reason):
                log.error("supervisor refused the portal: %s", reason)
                self.finish(4)
            case _:
                pass

    def on_control_closed(self, conn: FrameConnection, reason: str) -> None:
        if not self.done.done():
            log.error("supervisor link lost (%s); shutting down", reason)
            self.spawn(self.shutdown(GOODBYE))

    def server_lost(self, reason: LossReason, poison_seq: int, message: str) -> None:
        if poison_seq:
            why = "made the game hang" if reason == "hang" else "crashed the game twice"
            self.handler.drop_input(poison_seq, why)
        if reason == "fatal":
            self.announce(MSG_DOWN, 0)

    def announce(self, text: str, sessid: int) -> None:
        """Tell session `sessid`, or everyone when it is 0 (nobody if that session left)."""
        sessions = self.handler.sessions
        if sessid:
            targets = [sessions[sessid]] if sessid in sessions else []
        else:
            targets = list(sessions.values())
        for session in targets:
            session.send_text(text)

    def on_request(self, action: str, sessid: int) -> None:
        if self.control is not None:
            self.control.send(PortalRequest(action=action, sessid=sessid))

    def on_handover(self, ok: bool, message: str) -> None:
        log.info("hand-over %s: %s", "done" if ok else "failed", message)
        if self.control is not None:
            self.control.send(HandoverResult(ok=ok, message=message), urgent=True)

    def status(self) -> dict[str, Any]:
        return {"ports": self.ports, **self.handler.status()}

    # ------------------------------------------------------------ hand-over: old portal

    async def hand_out(self, path: str) -> None:
        """Move every plain telnet connection and every web session to the new portal at
        `path` (see portal/move/handover); tell the supervisor how it went; exit once it is done.
        On any failure before the new portal is bound, go on serving as before."""
        if self.moving:
            return
        self.moving = True
        try:
            with gc_paused():
                ok, message = await self.move_all(path)
        except Exception as exc:  # a bug must not leave players frozen
            log.exception("hand-over to the new portal failed")
            ok, message = False, f"the old portal failed: {exc!r}"
        self.moving = False
        self.on_handover(ok, message)
        if ok:
            self.finish(0)

    async def move_all(self, path: str) -> tuple[bool, str]:
        if self.handler.state not in (LinkState.ATTACHED, LinkState.NONE):
            return False, f"the server link is busy ({self.handler.state}); try again"
        timeout = self.settings.supervisor.reload_timeout
        try:
            channel = await asyncio.to_thread(dial_channel, path, timeout)
        except OSError as exc:
            return False, f"cannot reach the new portal: {exc}"
        try:
            check_peer(channel, path)  # players' sockets go only to a portal of ours
        except ForeignPeer as exc:
            channel.close()
            return False, str(exc)
        out = HandOut(self.handler, self.connections, timeout,
                      WebHandOut(self.web) if self.web is not None else None)
        with channel:
            self.stop_accepting()
            try:
                await out.freeze()
                self.close_ipc_listener()
                await out.detach_server()
                out.stop_sessions()
                await out.send_while_draining(channel)
                out.commit()
                await asyncio.to_thread(out.let_go, channel)
            except Exception as exc:  # whatever went wrong, the old portal serves on
                if not isinstance(exc, (MoveFailed, OSError, ValueError)):
                    log.exception("moving the connections failed")
                out.undo()
                await self.resume_serving()
                return False, str(exc) or type(exc).__name__
        self.handler.close_servers("the portal handed over to a new portal")
        return True, out.report()

    def stop_accepting(self) -> None:
        """Close our copies of the players' listeners: new connections wait in the
        supervisor's backlog for the new portal."""
        for listener in self.listeners:
            listener.close()
        self.listeners = []

    def close_ipc_listener(self) -> None:
        if self.ipc_listener is not None:
            self.ipc_listener.close()
            self.ipc_listener = None

    async def resume_serving(self) -> None:
        if self.ipc_listener is None:
            await self.listen_ipc()
        if not self.listeners:
            await self.listen_telnet()
            await self.listen_web()

    # ------------------------------------------------------------ hand-over: new portal

    async def take_over(self, path: str) -> int:
        """Start as the successor of a running portal: take its connections, then its
        ipc socket once it let go, then listen for players."""
        if os.environ.get(TEST_TAKEOVER) == "fail-start":
            print("test: this portal fails before it is ready", flush=True)
            return EXIT_TAKEOVER_FAILED
        listener = listen_channel(path)
        assert self.control is not None
        self.control.send(Ready(info={"takeover": True}))
        loop = asyncio.get_running_loop()
        listener.setblocking(False)
        timeout = self.settings.supervisor.reload_timeout
        try:
            channel, _ = await asyncio.wait_for(loop.sock_accept(listener), timeout)
        except TimeoutError:
            log.error("the old portal did not dial in within %.0fs; exiting", timeout)
            return EXIT_TAKEOVER_FAILED
        finally:
            listener.close()
            os.unlink(path)
        try:
            check_peer(channel, path)
        except ForeignPeer as exc:
            log.error("%s; exiting", exc)
            channel.close()
            return EXIT_TAKEOVER_FAILED
        with gc_paused():
            takeover = await self.take_connections(channel)
        if takeover is None:
            return EXIT_TAKEOVER_FAILED
        self.control.send(Ready(info={"ports": self.ports, "run_id": self.handler.run_id}))
        return await self.done

    async def take_connections(self, channel: socket.socket) -> TakeOver | None:
        """Adopt the old portal's connections, bind once it let go, go live; None if the
        hand-over failed (the old portal goes on serving)."""
        clock = Stopwatch()
        timeout = self.settings.supervisor.reload_timeout
        takeover = TakeOver(self.handler, self.telnet_session,
                            refuse=os.environ.get(TEST_TAKEOVER) == "fail-take",
                            web=WebTakeOver(self.web_server()))
        with channel:
            try:
                refusal = await takeover.receive(channel, timeout)
                clock.lap("received and adopted")
                channel.settimeout(timeout)
                if not await self.bind_after_old(channel, refusal):
                    return None
            except (OSError, ValueError) as exc:  # TimeoutError is an OSError
                log.error("the hand-over failed: %s", exc)
                return None
            clock.lap("let go and bound")
        await takeover.go_live()
        clock.lap("live")
        log.info("portal took over %d connections and %d web sessions (%s); ready: %s",
                 len(takeover.adopted), takeover.web.adopted if takeover.web else 0, clock,
                 self.ports)
        return takeover

    async def bind_after_old(self, channel: socket.socket, refusal: str) -> bool:
        """Tell the old portal we hold the connections (or `refusal`); once it let go of
        the ipc socket, listen on it and for players. Whether the hand-over is done."""
        await asyncio.to_thread(send_move, channel, Taken(ok=not refusal, message=refusal))
        if refusal:
            return False
        frame, _ = await asyncio.to_thread(receive_move, channel)
        if not isinstance(frame, LetGo):
            log.error("the old portal did not let go (%s); exiting", type(frame).__name__)
            return False
        if os.environ.get(TEST_TAKEOVER) == "fail-bind":
            await asyncio.sleep(FAIL_BIND_DELAY)  # players type on meanwhile
            await asyncio.to_thread(send_move, channel, Bound(
                ok=False, message="test: this portal cannot listen for the server"))
            return False
        await self.listen_ipc()
        await self.listen_telnet()
        await self.listen_web()
        await asyncio.to_thread(send_move, channel, Bound(ok=True))
        return True

    # ------------------------------------------------------------ stopping

    async def shutdown(self, reason: str) -> None:
        handler = self.handler
        if handler.shutting_down:
            return
        for listener in [*self.listeners, *filter(None, [self.ipc_listener])]:
            listener.close()
        await handler.stop_server("shutdown", self.settings.supervisor.stop_timeout / 2)
        sessions = list(handler.sessions.values())
        for session in sessions:
            session.disconnect(reason)
        self.env.portal_socket.unlink(missing_ok=True)
        # let every goodbye be written (bounded: a client that reads nothing is not waited for)
        gone = [s.gone for s in sessions if s.gone is not None]
        if gone:
            await asyncio.wait(gone, timeout=2.0)
        self.finish(0)



def inherited_socket(fds: dict[str, int], key: str) -> socket.socket | None:
    """The listening socket for `key` that the supervisor passed down, if any. It is this
    process's own copy of the descriptor: closing it leaves the supervisor's open."""
    fd = fds.get(key)
    if fd is None:
        return None
    try:
        sock = socket.socket(fileno=os.dup(fd))  # ours stays open to listen again
    except OSError as exc:
        log.error("inherited listener %s (fd %d) is unusable: %s; binding here", key, fd, exc)
        return None
    sock.setblocking(False)
    return sock


def main() -> None:
    run_child(PortalProcess)


if __name__ == "__main__":
    main()
