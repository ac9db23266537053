"""Starting and signalling the supervisor's children (the daemon itself is started by
`supervisor.cli`, which detaches it; nothing else starts a process)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from pathlib import Path

import psutil

REPO_ROOT = Path(__file__).resolve().parent.parent


async def spawn_child(module: str, env: dict[str, str],
                      pass_fds: tuple[int, ...] = ()) -> asyncio.subprocess.Process:
    """Start `python -m module` in its own session and process group, output piped;
    `pass_fds` are inherited under the same numbers."""
    full_env = dict(os.environ)
    full_env.update(env)
    full_env["PYTHONUNBUFFERED"] = "1"
    full_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT), full_env.get("PYTHONPATH", "")) if p
    )
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", module,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
        env=full_env,
        cwd=str(REPO_ROOT),
        pass_fds=pass_fds,
    )


def signal_group(pid: int, sig: int) -> None:
    """Signal the process group led by `pid` (children run in their own group)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def signal_process(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def sweep_descendants(root_pid: int, exclude: set[int] | None = None) -> list[int]:
    """SIGKILL every remaining descendant of `root_pid`; return their pids."""
    try:
        children = psutil.Process(root_pid).children(recursive=True)
    except psutil.Error:
        return []
    killed = []
    for child in children:
        if exclude and child.pid in exclude:
            continue
        with contextlib.suppress(psutil.Error):
            child.kill()
            killed.append(child.pid)
    return killed


def descendants(pid: int) -> list[psutil.Process]:
    """A snapshot of `pid`'s descendants, to be swept after it exits.

    Take it *before* stopping the child: once the child is gone its children are
    re-parented and no longer found under it (a grandchild that left the group, e.g.
    with setsid, would otherwise outlive a group-wide SIGKILL).
    """
    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.Error:
        return []


def kill_survivors(procs: list[psutil.Process]) -> list[int]:
    """SIGKILL those of `procs` still running (psutil checks pid *and* start time)."""
    killed = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            if proc.is_running():
                proc.kill()
                killed.append(proc.pid)
    return killed
