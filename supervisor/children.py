"""The supervisor's records of its children: one `Child` per process, one `Slot` per role.

A slot ("portal", "server") outlives its processes: a reload puts a new server process
into the same slot, and the slot's lifecycle and restart policy count across them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any

from ipc.connection import FrameConnection
from ipc.frames import ChildRole, Mode
from supervisor.lifecycle import Event, Lifecycle, LocalProtocolError, State
from supervisor.logs import LogFile
from supervisor.policy import RestartPolicy

log = logging.getLogger(__name__)


class StartError(RuntimeError):
    """A child did not become ready; the message carries its traceback or last output."""


class Child:
    def __init__(self, role: ChildRole, proc: asyncio.subprocess.Process, logfile: LogFile,
                 *, standby: bool = False, mode: Mode = "start") -> None:
        loop = asyncio.get_running_loop()
        self.role = role
        self.proc = proc
        self.pid = proc.pid
        self.logfile = logfile
        self.standby = standby
        self.mode = mode
        self.started = time.time()
        self.ready: asyncio.Future[dict[str, Any]] = loop.create_future()
        self.exited: asyncio.Future[int] = loop.create_future()
        self.conn: FrameConnection | None = None
        self.failure = ""  # traceback sent by the child before it exited
        self.stop_requested = False
        self.killed_for_hang = False
        self.poison_seq = 0
        self.running_seq = 0  # the input it was running when it exited (0: none)
        self.health_reported = False  # a passed health limit was acted on or reported
        self.info: dict[str, Any] = {}

    @property
    def alive(self) -> bool:
        return not self.exited.done()

    def describe_failure(self) -> str:
        """The child's own traceback, or the tail of its output."""
        if self.failure:
            return self.failure.rstrip()
        tail = "\n".join(self.logfile.tail[-30:])
        return tail or "(no output)"


class Slot:
    def __init__(self, role: ChildRole, policy: RestartPolicy) -> None:
        self.role = role
        self.lifecycle = Lifecycle()
        self.policy = policy
        self.child: Child | None = None
        self.restarts = 0
        self.last_exit = ""
        self.history: deque[dict[str, Any]] = deque(maxlen=20)
        self.restart_timer: asyncio.TimerHandle | None = None
        self.last_crash_seq = 0  # input the last crashed server was running

    @property
    def state(self) -> State:
        return self.lifecycle.state

    def event(self, event: Event) -> None:
        """Advance the lifecycle; an illegal step is a supervisor bug, logged loudly."""
        try:
            self.lifecycle.handle(event, time.time())
        except LocalProtocolError:
            log.exception("%s: lifecycle bug", self.role)

    def adopt(self) -> None:
        """A new process took over this slot after a hand-over: make the slot RUNNING."""
        self.cancel_restart()
        steps = {
            State.FATAL: (Event.RESET, Event.SPAWN, Event.READY),
            State.STOPPED: (Event.SPAWN, Event.READY),
            State.EXITED: (Event.SPAWN, Event.READY),
            State.BACKOFF: (Event.BACKOFF_ELAPSED, Event.READY),
            State.STARTING: (Event.READY,),
        }
        for event in steps.get(self.state, ()):
            self.event(event)

    def record_exit(self, child: Child, code: int, kind: str) -> None:
        self.last_exit = f"pid {child.pid} {kind} (exit code {code})"
        self.history.append({"at": time.time(), "pid": child.pid, "code": code, "kind": kind})

    def record_event(self, pid: int, kind: str, reason: str) -> None:
        """Something other than an exit worth keeping in the history (a health recycle)."""
        self.history.append({"at": time.time(), "pid": pid, "kind": kind, "reason": reason})

    def cancel_restart(self) -> None:
        if self.restart_timer is not None:
            self.restart_timer.cancel()
            self.restart_timer = None
