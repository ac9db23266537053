"""Idle capacity: memory per idle telnet session, and the time to sync them all on reload.

Opens `--sessions` (10,000) idle telnet connections to Hearth (raising this process's fd
soft limit; the game's processes inherit it), measures the portal's and the server's RSS
before and after, then runs `run.py reload` and reads from the portal's log how long the
new server took from the portal's PSync (every session) to its SyncDone. The same number
of connections to the raw chain's relay (a bare uvloop process holding one small protocol
object per socket) is the baseline for memory.

    python -m benchmarks.capacity [--sessions 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import uvloop

from benchmarks.baseline import RawChain
from benchmarks.client import GameRunner, acli, open_clients, raise_fd_limit, rss_of
from benchmarks.report import Checks, add_targets_option, table, temp_dir, write_json

ATTACH = re.compile(r"^(\S+ \S+) .*attaching server (\d+) in mode (\w+) \((\d+) sessions")
DONE = re.compile(r"^(\S+ \S+) .*hand-over done: server (\d+) attached")


def stamp(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f").timestamp()


def sync_time(log: Path) -> dict[str, Any]:
    """The last reload's PSync -> SyncDone interval, as the portal logged it."""
    attach: tuple[float, int, int] | None = None
    result: dict[str, Any] = {}
    for line in log.read_text(errors="replace").splitlines():
        if m := ATTACH.match(line):
            if m.group(3) != "start":  # the new server (mode reload, or crash if the old
                attach = (stamp(m.group(1)), int(m.group(2)), int(m.group(4)))  # one died)
                result["mode"] = m.group(3)
        elif (m := DONE.match(line)) and attach and int(m.group(2)) == attach[1]:
            result.update(sync_ms=(stamp(m.group(1)) - attach[0]) * 1000,
                          sessions_synced=attach[2])
    return result


async def measure_raw(n: int) -> dict[str, Any]:
    with RawChain() as chain:
        pid = chain.pids["relay"]
        await asyncio.sleep(0.2)
        before = rss_of(pid)
        clients = await open_clients(chain.port, n, prefix="r", greeted=False)
        await asyncio.sleep(0.5)
        after = rss_of(pid)
        for client in clients:
            client.close()
    return {"rss_before": before, "rss_after": after, "per_session": (after - before) / n}


async def measure_hearth(n: int, args: argparse.Namespace) -> dict[str, Any]:
    game = GameRunner(Path(temp_dir("hearth-capacity-")))
    clients = []
    try:
        game.start()
        status = game.status()
        port = int(status["ports"]["telnet"])
        portal, server = int(status["portal"]["pid"]), int(status["server"]["pid"])
        before = {"portal": rss_of(portal), "server": rss_of(server)}
        start = time.monotonic()
        clients = await open_clients(port, n, prefix="i", concurrency=args.concurrency)
        await asyncio.gather(*(c.expect("connect <username>", 120) for c in clients))
        opened = time.monotonic() - start
        await asyncio.sleep(1.0)  # telnet negotiation settles (0.3 s) on every session
        after = {"portal": rss_of(portal), "server": rss_of(server)}
        code, out, reload_s = await acli(game, "reload", timeout=120)
        new_server = game.pid_of("server")
        probe = clients[:10]
        for client in probe:
            client.send_ping()
        t = time.monotonic()
        while any(c.answered < 1 for c in probe) and time.monotonic() - t < 30:
            await asyncio.sleep(0.01)
        answered = sum(1 for c in probe if c.answered)
        sync = sync_time(game.dir / ".hearth" / "logs" / "portal.log")
        after_reload = {"portal": rss_of(portal), "server": rss_of(new_server)}
        dropped = sum(1 for c in clients if c.closed_at is not None)
        return {
            "sessions": n, "open_s": opened, "rss_before": before, "rss_after": after,
            "rss_after_reload": after_reload,
            "per_session": {role: (after[role] - before[role]) / n for role in before},
            "new_server_per_session": (after_reload["server"] - before["server"]) / n,
            "reload_exit": code, "reload_output": out[-2000:], "reload_s": reload_s,
            "probe_answered": answered,
            "dropped_during_reload": dropped, **sync,
        }
    finally:
        for client in clients:
            client.close()
        game.cleanup()


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    limit = raise_fd_limit()
    n = min(args.sessions, limit - 200)  # our clients' fds; the portal has its own limit
    raw = await measure_raw(n)
    hearth = await measure_hearth(n, args)
    return {"fd_limit": limit, "raw": raw, "hearth": hearth, "settings": vars(args)}


def _ratio(value: float, baseline: float) -> float | str:
    """value / baseline; with a handful of sessions the baseline's RSS may not move at all."""
    return value / baseline if baseline else "n/a"


def report(data: dict[str, Any]) -> None:
    h, raw = data["hearth"], data["raw"]
    per = h["per_session"]
    both = per["portal"] + per["server"]
    rows = [
        ["RSS/session, portal (bytes)", per["portal"], raw["per_session"],
         _ratio(per["portal"], raw["per_session"]), ""],
        ["RSS/session, server (bytes)", per["server"], "", "", ""],
        ["RSS/session, portal + server", both, raw["per_session"],
         _ratio(both, raw["per_session"]), "≤ 16 KB"],
        ["RSS/session, new server after reload", h["new_server_per_session"], "", "", ""],
        [f"sync of {h.get('sessions_synced', '?')} sessions (ms)", h.get("sync_ms", "failed"),
         "", "", f"< 250 ms; attached in mode {h.get('mode', '?')}"],
        ["run.py reload (s)", h["reload_s"], "", "", f"exit {h['reload_exit']}"],
        ["open + connection screen (s)", h["open_s"], "", "", ""],
        ["dropped during reload", h["dropped_during_reload"], "", "", "0"],
    ]
    print(table(f"capacity: {h['sessions']:,} idle telnet sessions "
                f"(baseline: bare uvloop relay process)",
                ["figure", "hearth", "raw", "ratio", "target / note"], rows))
    if h["reload_exit"]:
        print(f"\nreload failed:\n{h['reload_output']}")


def checks(data: dict[str, Any]) -> Checks:
    h = data["hearth"]
    per = h["per_session"]
    both = per["portal"] + per["server"]
    out = Checks()
    out.correct("run.py reload exits 0", h["reload_exit"] == 0, h["reload_exit"])
    out.correct("no session dropped during the reload", h["dropped_during_reload"] == 0,
                h["dropped_during_reload"])
    out.correct("the new server attached", "sync_ms" in h, h.get("mode", "?"))
    out.target("RSS/session, portal + server <= 16 KB", both <= 16 * 1024, f"{both:,.0f}")
    sync_ms = h.get("sync_ms", float("inf"))
    out.target("sync of every session < 250 ms", sync_ms < 250, f"{sync_ms:.0f}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    add_targets_option(parser)
    args = parser.parse_args()
    data = uvloop.run(amain(args))
    report(data)
    path = write_json("capacity", data)
    print(f"\nJSON: {path}")
    checks(data).finish(args.targets)


if __name__ == "__main__":
    main()
