"""The supervisor's control protocol: who may speak on the control socket, and what each
frame means.

Theory of operation
-------------------
Every connection opens with `Hello`. A CLI is accepted without the secret (the socket is
0600 in a private folder); a child must give the run's secret and a pid this supervisor
started, with the role it was started for. After that:

- a CLI's `status` is answered at once; `stop`, `reload`, `reset` and `reboot` join the
  command queue (so two reloads never overlap and none is rejected) and are answered with
  `Progress` lines, then one `Reply`;
- a child's frames report on it: `Ready`, `StartFailed`, `HandoverResult`, `ChildStatus`,
  and the portal's `PortalRequest` (an admin's in-game command), which joins the same queue;
- a child whose connection goes silent past the heartbeat timeout hangs: the supervisor
  dumps its stacks and kills it.

Signals, health limits and `run.py dev` enqueue commands through `enqueue`/`submit`, the
same way; the queue's worker runs them one at a time on the supervisor (`ControlHost`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from ipc.connection import CloseCause, FrameConnection, check_hello
from ipc.frames import (
    ChildStatus,
    Command,
    ControlFrame,
    HandoverResult,
    Heartbeat,
    Hello,
    PortalRequest,
    Progress,
    Ready,
    Reply,
    StartFailed,
    Welcome,
)
from supervisor.children import Child

log = logging.getLogger("supervisor")

QUEUED_COMMANDS = ("stop", "reload", "reset", "reboot", "reload-portal")


class Requester(Protocol):
    """Who waits for a queued command: hears its progress, then gets one reply."""

    def progress(self, line: str) -> None: ...

    def reply(self, reply: Reply) -> None: ...


class ConnRequester:
    """A CLI on the control socket."""

    def __init__(self, conn: FrameConnection) -> None:
        self.conn = conn

    def progress(self, line: str) -> None:
        self.conn.send(Progress(message=line))

    def reply(self, reply: Reply) -> None:
        self.conn.send(reply)


class FutureRequester:
    """An in-process caller (`run.py dev`): the reply resolves `future`."""

    def __init__(self, on_progress: Callable[[str], None] = lambda line: None) -> None:
        self.future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._on_progress = on_progress

    def progress(self, line: str) -> None:
        self._on_progress(line)

    def reply(self, reply: Reply) -> None:
        if not self.future.done():
            self.future.set_result(reply)


class ControlHost(Protocol):
    """What the control protocol needs of the supervisor."""

    secret: str
    children: dict[int, Child]

    def spawn_task(self, coro: Coroutine[Any, Any, Any]) -> None: ...

    def child_ready(self, child: Child, info: dict[str, Any], conn: FrameConnection) -> None: ...

    def child_hangs(self, child: Child) -> None: ...

    def reopen_logs(self) -> None: ...

    async def status(self) -> dict[str, Any]: ...

    async def run_command(self, command: Command, report: Callable[[str], None]) -> Reply: ...

    def command_done(self, command: Command, reply: Reply, took: float) -> None: ...


class ControlProtocol:
    """See the module docstring. `connection` is the control socket's protocol factory."""

    def __init__(self, host: ControlHost, heartbeat: float) -> None:
        self.host = host
        self.heartbeat = heartbeat
        self.queue: asyncio.Queue[tuple[Command, Requester | None]] = asyncio.Queue()
        self.handover: asyncio.Future[tuple[bool, str]] | None = None
        # `status` callers waiting for the portal's figures (all answered by one reply)
        self.status_waiters: list[asyncio.Future[dict[str, Any]]] = []
        self.finished = asyncio.Event()  # set once a stop command has run

    def connection(self) -> FrameConnection:
        return FrameConnection(ControlFrame, self.on_frame, self.on_closed,
                               name="supervisor-control", heartbeat=self.heartbeat)

    # ------------------------------------------------------------ frames

    def on_frame(self, conn: FrameConnection, frame: Any) -> None:
        role = conn.state.get("role")
        if role is None:
            self.greet(conn, frame)
        elif role == "cli":
            self.cli_frame(conn, frame)
        else:
            self.child_frame(conn, frame)

    def greet(self, conn: FrameConnection, frame: Any) -> None:
        reason = "first frame is not a hello"
        child = None
        if isinstance(frame, Hello):
            if frame.role == "cli":
                reason = check_hello(frame, secret="", roles=("cli",)) or ""
            else:
                reason = check_hello(frame, secret=self.host.secret,
                                     roles=("portal", "server")) or ""
                child = self.host.children.get(frame.pid)
                if not reason and (child is None or child.role != frame.role):
                    reason = f"pid {frame.pid} is not a {frame.role} this supervisor started"
        if reason:
            conn.refuse(reason)
            return
        assert isinstance(frame, Hello)
        conn.state.update(role=frame.role, pid=frame.pid)
        conn.trusted = True
        if child is not None:
            child.conn = conn
        conn.send(Welcome())

    def child_frame(self, conn: FrameConnection, frame: Any) -> None:
        child = self.host.children.get(conn.state["pid"])
        if child is None:
            return
        match frame:
            case Heartbeat():
                pass
            case Ready(info=info):
                self.host.child_ready(child, info, conn)
            case StartFailed(message=message):
                child.failure = message
            case HandoverResult(ok=ok, message=message):
                if self.handover is not None and not self.handover.done():
                    self.handover.set_result((ok, message))
            case ChildStatus(info=info):
                waiters, self.status_waiters = self.status_waiters, []
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result(info)
            case PortalRequest(action=action, sessid=sessid):
                self.enqueue(Command(name=action, args={"sessid": sessid}), None)
            case _:
                log.warning("unexpected %s from %s", type(frame).__name__, child.role)

    def on_closed(self, conn: FrameConnection, reason: str) -> None:
        child = self.host.children.get(conn.state.get("pid", 0))
        if child is not None and conn.state.get("role") != "cli" \
                and conn.cause is CloseCause.SILENT:
            self.host.child_hangs(child)

    def cli_frame(self, conn: FrameConnection, frame: Any) -> None:
        match frame:
            case Command(name="status"):
                self.host.spawn_task(self.reply_status(conn))
            case Command(name="reopen_logs"):
                self.host.reopen_logs()
                conn.send(Reply(ok=True, message="log files reopened"))
            case Command(name=name) if name in QUEUED_COMMANDS:
                self.enqueue(frame, ConnRequester(conn))
            case Command(name=name):
                conn.send(Reply(ok=False, message=f"unknown command {name!r}"))
            case Heartbeat():
                pass
            case _:
                conn.send(Reply(ok=False, message=f"unexpected {type(frame).__name__}"))

    async def reply_status(self, conn: FrameConnection) -> None:
        conn.send(Reply(ok=True, data=await self.host.status()))

    # ------------------------------------------------------------ the command queue

    def enqueue(self, command: Command, requester: Requester | None) -> None:
        """Queue a command (signal handlers call this too: it only enqueues)."""
        if command.name == "reopen_logs":
            self.host.reopen_logs()
            return
        if requester is not None and self.queue.qsize():
            requester.progress(f"queued behind {self.queue.qsize()} command(s)")
        self.queue.put_nowait((command, requester))

    def submit(self, command: Command,
               on_progress: Callable[[str], None] = lambda line: None) -> asyncio.Future[Reply]:
        """Queue a command from inside the supervisor's process; the future gets its reply."""
        requester = FutureRequester(on_progress)
        self.enqueue(command, requester)
        return requester.future

    async def worker(self) -> None:
        """Run queued commands one at a time, until a stop has run."""
        while True:
            command, requester = await self.queue.get()

            def report(line: str, requester: Requester | None = requester) -> None:
                log.info("%s", line)
                if requester is not None:
                    requester.progress(line)

            began = time.monotonic()
            try:
                reply = await self.host.run_command(command, report)
            except Exception as exc:
                log.exception("command %s failed", command.name)
                reply = Reply(ok=False, message=f"{command.name} failed: {exc}")
            log.info("%s: %s", command.name, reply.message.splitlines()[0] if reply.message else "")
            if requester is not None:
                requester.reply(reply)
            else:
                self.host.command_done(command, reply, time.monotonic() - began)
            if command.name in ("stop", "shutdown") and reply.ok:
                self.finished.set()
                return
