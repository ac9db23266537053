"""Connection churn: does the portal's memory come back after a storm of connections?

`--connections` (20,000) telnet connections are opened from `--addresses` (1,000) loopback
addresses (127.0.x.y, so each address stays within `max_connections_per_address`, with the
per-address limits applied to loopback as to a stranger), each waiting for the portal's
greeting, in waves of `--hold` (9,000: this machine's hard limit is 20,000 descriptors a
process) held at once, then all closed. The portal's RSS is printed before the
storm, at its peak (sampled every 50 ms) and `--settle` (25) seconds after the last
connection closed (long enough for the guard to forget the storm's per-address buckets:
they refill in `connection_burst / connection_rate` seconds and go at the next sweep, every
10 s; until then they pin pymalloc arenas, see portal/memory.py), with the after/before
ratio, and each time the portal handed memory back to the system (from its log:
`memory_trim_after`, portal/memory.py). A witness
connection, opened before, pings once a second throughout and must stay connected.
A connection that got no greeting is counted by why: no answer within
`--greeting-timeout`, a connect error, or the portal's refusal (too many, too fast).

Exits non-zero when a check fails: a connection that did not get its greeting, the
witness lost, the portal restarted, or (unless `--targets report`) the portal's RSS after
the storm more than `--max-after` (1.5) times its RSS before.

    python -m benchmarks.churn [--connections 20000] [--addresses 1000] [--settle 25]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil
import uvloop

from benchmarks.client import GameRunner, PingClient, raise_fd_limit, rss_of
from benchmarks.report import Checks, add_targets_option, table, temp_dir, write_json

MB = 2 ** 20
# The first words of the portal's refusals (portal/guard.py MSG_TOO_MANY, MSG_TOO_FAST)
REFUSALS = ("Too many connections", "You are connecting too fast")


def source(index: int, addresses: int) -> str:
    n = index % addresses + 2  # 127.0.0.2 onwards (127.0.0.1 is the witness's)
    return f"127.0.{n // 250}.{n % 250 + 1}"


async def watch_peak(pid: int, stop: asyncio.Event) -> int:
    peak = 0
    with contextlib.suppress(psutil.Error):
        proc = psutil.Process(pid)
        while not stop.is_set():
            peak = max(peak, proc.memory_info().rss)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.05)
    return peak


async def storm(port: int, args: argparse.Namespace) -> tuple[int, Counter[str]]:
    """Every wave of connections opened (greeted), then closed; (greeted, why the others
    were not, counted by reason)."""
    greeted, failed = 0, Counter[str]()
    for first in range(0, args.connections, args.hold):
        wave = await one_wave(port, range(first, min(first + args.hold, args.connections)),
                              args)
        greeted += wave[0]
        failed.update(wave[1])
    return greeted, failed


def failure(exc: BaseException) -> str:
    """A short name for why a connection got no greeting."""
    if isinstance(exc, TimeoutError):
        return "no greeting within the timeout"
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"{type(exc).__name__} {errno.errorcode.get(exc.errno, exc.errno)}"
    return f"{type(exc).__name__}: {exc}"


async def one_wave(port: int, indexes: range,
                   args: argparse.Namespace) -> tuple[int, Counter[str]]:
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(args.concurrency)
    clients: list[PingClient] = []
    failed = Counter[str]()

    async def one(index: int) -> None:
        async with gate:
            client = PingClient(f"c{index}")
            try:
                await loop.create_connection(lambda: client, "127.0.0.1", port,
                                             local_addr=(source(index, args.addresses), 0))
                await asyncio.wait_for(client.first_data, args.greeting_timeout)
                clients.append(client)
            except (OSError, TimeoutError) as exc:
                failed[failure(exc)] += 1
                if client.transport is not None:
                    client.transport.close()

    await asyncio.gather(*(one(i) for i in indexes))
    greeted = 0
    for client in clients:  # a refusal is data too: tell it apart from a greeting
        refusal = next((line for _, line in client.other if line.startswith(REFUSALS)), None)
        if refusal is not None:
            failed[f"refused: {refusal}"] += 1
        elif client.closed_at is not None:
            failed["closed by the portal while the wave was open"] += 1
        else:
            greeted += 1
        client.close()
    return greeted, failed


RELEASED = re.compile(r"gave (-?[0-9.]+) MB back to the system in ([0-9.]+) ms")


def releases(log: Path) -> list[tuple[float, float]]:
    """(MB, ms) of each time the portal handed memory back (portal/memory.py), from its log."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return []
    return [(float(mb), float(ms)) for mb, ms in RELEASED.findall(text)]


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    raise_fd_limit()
    game = GameRunner(Path(temp_dir("hearth-churn-")),
                      {"portal": {"negotiation_timeout": 0.3, "unlimited_addresses": [],
                                  "connection_burst": 40, "listen_backlog": 4096}})
    try:
        game.start()
        status = game.status()
        port = int(status["ports"]["telnet"])
        pids = {role: int(status[role]["pid"]) for role in ("portal", "server")}
        loop = asyncio.get_running_loop()
        witness = PingClient("witness")
        await loop.create_connection(lambda: witness, "127.0.0.1", port)
        await witness.first_data
        await asyncio.sleep(1.0)
        before = rss_of(pids["portal"])
        stop = asyncio.Event()
        peak_task = asyncio.create_task(watch_peak(pids["portal"], stop))
        start = time.monotonic()
        greeted, failed = await storm(port, args)
        took = time.monotonic() - start
        await asyncio.sleep(args.settle)
        stop.set()
        peak = await peak_task
        after = rss_of(pids["portal"])
        released = releases(game.dir / ".hearth" / "logs" / "portal.log")
        later = game.status()
        restarted = [r for r, pid in pids.items() if later[r].get("pid") != pid]
        connected = witness.closed_at is None
        witness.close()
    finally:
        leftovers = game.cleanup()
    return {"connections": args.connections, "addresses": args.addresses, "greeted": greeted,
            "failed": sum(failed.values()), "failures": dict(failed), "storm_s": took,
            "before_mb": before / MB, "peak_mb": peak / MB, "released": released,
            "after_mb": after / MB, "after_ratio": after / before if before else 0.0,
            "restarted": restarted, "witness_connected": connected, "leftovers": leftovers,
            "settings": vars(args)}


def checks(data: dict[str, Any], max_after: float) -> Checks:
    found = Checks()
    why = "; ".join(f"{n} {reason}" for reason, n in data["failures"].items())
    found.correct("every connection greeted", data["failed"] == 0,
                  f"{data['greeted']} of {data['connections']}" + (f" ({why})" if why else ""))
    found.correct("portal and server kept running", not data["restarted"],
                  ", ".join(data["restarted"]) or "yes")
    found.correct("witness stayed connected", data["witness_connected"])
    found.target(f"RSS after < {max_after:g}x before", data["after_ratio"] < max_after,
                 f"{data['after_ratio']:.2f}x")
    return found


def report(data: dict[str, Any]) -> None:
    print(table(f"churn: {data['connections']} telnet connections from {data['addresses']} "
                f"addresses, opened in {data['storm_s']:.1f} s, then closed",
                ["portal RSS before MB", "peak MB", f"after {data['settings']['settle']:g} s MB",
                 "after / before"],
                [[data["before_mb"], data["peak_mb"], data["after_mb"], data["after_ratio"]]]))
    released = data["released"]
    print(f"the portal handed memory back {len(released)} times: "
          + (", ".join(f"{mb:.1f} MB in {ms:.1f} ms" for mb, ms in released) or "never"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=20000)
    parser.add_argument("--addresses", type=int, default=1000)
    parser.add_argument("--hold", type=int, default=9000, help="connections open at once")
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--greeting-timeout", type=float, default=30.0,
                        help="seconds a connection waits for the portal's greeting")
    parser.add_argument("--settle", type=float, default=25.0,
                        help="seconds after the storm before RSS is read")
    parser.add_argument("--max-after", type=float, default=1.5)
    add_targets_option(parser)
    args = parser.parse_args()
    data = uvloop.run(amain(args))
    report(data)
    print(f"\nJSON: {write_json('churn', data)}")
    checks(data, args.max_after).finish(args.targets)


if __name__ == "__main__":
    main()
