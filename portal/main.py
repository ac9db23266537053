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
from ipc.connection import FrameConnection, check_hello, connect_unix
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
    PortalRequest,
    Ready,
    Refused,
    ServerLost,
    Shutdown,
)
from ipc.settings import Settings, runtime_paths
from portal import ssh
from portal.sessions import MSG_DOWN, PortalSessionHandler
from portal.telnet_session import TelnetSession
from portal.tls import certificate_paths, server_context
from portal.web.server import WebServer

log = logging.getLogger("portal")

GOODBYE = "The game is shutting down. Goodbye!"


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
        self.listeners: list[asyncio.AbstractServer | asyncssh.SSHAcceptor] = []
        self.web: WebServer | None = None

    async def main(self) -> int:
        env = self.env
        self.control = await connect_unix(
            str(env.control_socket), ControlFrame, self.on_control, self.on_control_closed,
            name="portal-control", heartbeat=self.settings.supervisor.heartbeat_interval,
        )
        self.control.send(Hello(role="portal", pid=os.getpid(), secret=env.secret))
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
        self.listeners.append(server)

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
            server = await loop.create_server(factory, sock=where, **kwargs)
        else:
            server = await loop.create_server(factory, **where, **kwargs)
        self.listeners.append(server)
        self.ports[key] = server.sockets[0].getsockname()[1]

    async def listen_telnet(self) -> None:
        portal = self.settings.portal

        def factory() -> TelnetSession:
            return TelnetSession(self.handler, "telnet", self.mssp, portal.negotiation_timeout)

        await self.serve("telnet", portal.telnet_port, factory)
        if portal.telnet_ssl_port is not None:
            await self.listen_telnet_ssl(portal.telnet_ssl_port)
        if portal.ssh_port is not None:
            await self.listen_ssh(portal.ssh_port)

    async def listen_telnet_ssl(self, port: int) -> None:
        portal = self.settings.portal
        cert, key = certificate_paths(self.env.game_dir, runtime_paths(self.env.game_dir).keys,
                                      portal.tls_cert, portal.tls_key, portal.interface)
        context = server_context(cert, key)

        def factory() -> TelnetSession:
            return TelnetSession(self.handler, "telnet/ssl", self.mssp, portal.negotiation_timeout)

        await self.serve("telnet/ssl", port, factory, ssl=context, ssl_handshake_timeout=10.0)

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
        self.web = WebServer.create(self.handler, portal, self.settings.game.name)
        await self.serve("web", portal.web_port, self.web.connection, **tls)

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

    # ------------------------------------------------------------ stopping

    async def shutdown(self, reason: str) -> None:
        handler = self.handler
        if handler.shutting_down:
            return
        for listener in self.listeners:
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
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        log.error("inherited listener %s (fd %d) is unusable: %s; binding here", key, fd, exc)
        return None
    sock.setblocking(False)
    return sock


def main() -> None:
    run_child(PortalProcess)


if __name__ == "__main__":
    main()
