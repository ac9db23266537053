"""What every child process (portal, server) does the same way at start.

The supervisor passes a child everything it needs in environment variables; `ChildEnv`
reads them back. A child dies with its supervisor: the kernel sends it SIGTERM when the
parent goes (PR_SET_PDEATHSIG), and it also exits when its control link closes.

Python's cyclic garbage collector is tuned for what a child is (`tune_gc`): a heap of
long-lived objects (modules, sessions, the world) and a stream of small objects per line
that live for one round trip. At CPython's default (a young collection every 700
allocations) the objects of the inputs in flight outlive two young collections, are
promoted, and soon set off full collections, each of which walks the whole heap: at 300
closed-loop clients that cost the portal as much CPU as its own work. So the heap made
at start is frozen out of every collection, and young collections are rarer.
"""

from __future__ import annotations

import asyncio
import ctypes
import faulthandler
import gc
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import uvloop

from ipc.settings import Settings, load_settings

T = TypeVar("T")
PR_SET_PDEATHSIG = 1
GC_YOUNG = 50_000  # allocations between young collections (CPython's default: 700)
LOG_FORMAT = "%(asctime)s.%(msecs)03d %(levelname)s %(name)s: %(message)s"
LOG_DATEFMT = "%Y-%m-%d %H:%M:%S"
# Children's lines are stamped by the supervisor as it writes them to the log files.
CHILD_LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


class ChildEnv(msgspec.Struct, frozen=True, kw_only=True):
    game_dir: Path
    secret: str
    control_socket: Path
    portal_socket: Path
    state_dir: Path
    parent_pid: int
    mode: str = "start"  # server: "start", "reload", "reset", "crash"
    standby: bool = False
    # portal: protocol key -> inherited listening descriptor (held by the supervisor)
    listeners: dict[str, int] = msgspec.field(default_factory=dict)
    # portal: taking over from a running portal, whose connections arrive on this socket
    # (empty: a normal start). It binds portal.sock only once the old one let go.
    takeover: str = ""

    def to_environ(self) -> dict[str, str]:
        return {"HEARTH_CHILD": msgspec.json.encode(self, enc_hook=str).decode()}

    @classmethod
    def from_environ(cls) -> ChildEnv:
        raw = os.environ.get("HEARTH_CHILD")
        if not raw:
            raise SystemExit("this process is started by the Hearth supervisor (run.py start)")
        return msgspec.json.decode(raw, type=cls, dec_hook=_decode_path)


def _decode_path(kind: type, value: Any) -> Any:
    if kind is Path:
        return Path(value)
    raise NotImplementedError(kind)


def die_with_parent(parent_pid: int) -> None:
    """Ask the kernel for SIGTERM when our parent exits; exit now if it already has."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the control link closing still ends us
    if os.getppid() != parent_pid:
        raise SystemExit("supervisor is gone")


def setup_child() -> None:
    """Logging to stderr (the supervisor captures it) and stack dumps on SIGUSR1."""
    logging.basicConfig(
        level=logging.INFO, format=CHILD_LOG_FORMAT, stream=sys.stderr
    )
    faulthandler.enable()
    faulthandler.register(signal.SIGUSR1, all_threads=True)


def tune_gc() -> None:
    """Freeze what exists now out of every collection; young collections every
    `GC_YOUNG` allocations (see the module docstring). Garbage without cycles is freed
    at once as always; only cycles wait a little longer."""
    gc.freeze()
    gc.set_threshold(GC_YOUNG, 10, 10)


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` on uvloop."""
    return uvloop.run(main)


def run_child(make: Callable[[ChildEnv, Settings], ChildProcess]) -> None:
    """The whole life of a child process: set up, run `make(env, settings).main()`, exit."""
    env = ChildEnv.from_environ()
    die_with_parent(env.parent_pid)
    setup_child()
    tune_gc()

    async def main() -> int:
        return await make(env, load_settings(env.game_dir)).main()

    sys.exit(run(main()))


class ChildProcess:
    """What the portal and the server processes share: an exit code to wait for, and
    background tasks kept referenced until they are done. Subclasses define `main()`."""

    def __init__(self) -> None:
        self.done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run `coro` as a task that is kept until it is done."""
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def main(self) -> int:
        raise NotImplementedError

    def finish(self, code: int) -> None:
        """End the process's main coroutine with `code` (the first call wins)."""
        if not self.done.done():
            self.done.set_result(code)
