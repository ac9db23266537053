"""Closed-loop latency and round trips/s of N telnet clients, against the raw two-hop chain.

Each client sends `ping <tag>-<n>`, waits for `pong <tag>-<n>`, and sends the next at once.
For every N the raw chain (`benchmarks.baseline`) and Hearth are measured one after the
other in the same run, and Hearth's figures are printed as ratios to the chain's. Up to
`--login-max` of Hearth's clients log in (create an account); the rest ping from the
connection screen, where `ping` runs through the same command path.

A second part, `logins`, has 10 logged-in players ping (closed loop) while 100 new clients
create accounts at once: how long until all 100 are in, and the 10 players' p99 beside
their idle p99.

    python -m benchmarks.latency [--clients 1,10,100,1000] [--duration 3]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

import psutil
import uvloop

from benchmarks.baseline import RawChain
from benchmarks.client import (
    GameRunner,
    closed_loop,
    login_clients,
    open_clients,
    percentile,
    raise_fd_limit,
)
from benchmarks.report import Checks, add_targets_option, table, temp_dir, write_json


async def measure_raw(chain: RawChain, n: int, args: argparse.Namespace) -> dict[str, Any]:
    clients = await open_clients(chain.port, n, prefix=f"r{n}-", greeted=False)
    pids = {"A (relay)": chain.pids["relay"], "B (echo)": chain.pids["echo"],
            "bench": psutil.Process().pid}
    try:
        return await closed_loop(clients, args.duration, args.warmup, pids)
    finally:
        for client in clients:
            client.close()


async def measure_hearth(game: GameRunner, port: int, pids: dict[str, int], n: int,
                         args: argparse.Namespace) -> dict[str, Any]:
    clients = await open_clients(port, n, prefix=f"h{n}-")
    try:
        await asyncio.gather(*(c.expect("connect <username>") for c in clients))
        logged = clients[: args.login_max]
        login_s = await login_clients(logged, concurrency=args.login_concurrency)
        result = await closed_loop(clients, args.duration, args.warmup, pids)
        result.update(logged_in=len(logged), at_screen=n - len(logged), login_s=login_s)
        return result
    finally:
        for client in clients:
            client.close()
        await asyncio.sleep(0.2)  # let the portal see them go before the next round


async def login_storm(port: int, args: argparse.Namespace) -> dict[str, Any]:
    players = await open_clients(port, 10, prefix="obs")
    newcomers = await open_clients(port, args.storm, prefix="new")
    try:
        await asyncio.gather(*(c.expect("connect <username>") for c in players + newcomers))
        await login_clients(players)
        idle = await closed_loop(players, args.duration, args.warmup, {})
        for client in players:
            client.rtts = []
            client.closed_loop, client.running = True, True
            client.send_ping()
        await asyncio.sleep(0.2)
        for client in players:
            client.rtts = []
        took = await login_clients(newcomers, concurrency=len(newcomers), timeout=60)
        during = [rtt for client in players for rtt in client.rtts]
        for client in players:
            client.running = False
        deadline = time.monotonic() + 10
        while any(c.outstanding() for c in players) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        idle_p99 = idle["p99_us"]
        storm_p99 = percentile(during, 99) * 1e6
        lost_dup = [c.lost_and_duplicated(0, c.sent) for c in players]
        return {"logins": len(newcomers), "all_in_s": took, "idle_p99_us": idle_p99,
                "unanswered": sum(c.outstanding() for c in players),
                "lost": sum(lost for lost, _ in lost_dup),
                "duplicated": sum(dup for _, dup in lost_dup),
                "wrong_number": sum(c.wrong for c in players),
                "storm_p99_us": storm_p99, "p99_ratio": storm_p99 / idle_p99 if idle_p99 else 0}
    finally:
        for client in players + newcomers:
            client.close()


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    raise_fd_limit()
    sizes = [int(x) for x in args.clients.split(",")]
    rows: list[dict[str, Any]] = []
    root = Path(temp_dir("hearth-bench-"))
    # A closed-loop client sends thousands of commands a second: lift the per-session
    # command rate and input CPU share (issue 9), which would otherwise measure themselves.
    game = GameRunner(root, {"portal": {"negotiation_timeout": 0.3, "commands_per_second": 0,
                                        "read_cpu_share": 0}})
    chain = RawChain()
    try:
        game.start()
        status = game.status()
        port = int(status["ports"]["telnet"])
        pids = {"portal": int(status["portal"]["pid"]), "server": int(status["server"]["pid"]),
                "bench": psutil.Process().pid}
        chain.start()
        for n in sizes:
            raw = await measure_raw(chain, n, args)
            hearth = await measure_hearth(game, port, pids, n, args)
            rows.append({"clients": n, "raw": raw, "hearth": hearth})
            print(f"  {n} clients: raw {raw['per_s']:,.0f}/s, hearth {hearth['per_s']:,.0f}/s",
                  flush=True)
        storm = await login_storm(port, args) if args.storm else None
    finally:
        chain.stop()
        leftovers = game.cleanup()
    return {"rows": rows, "login_storm": storm, "leftovers": leftovers,
            "settings": vars(args)}


def report(data: dict[str, Any]) -> None:
    out = []
    for row in data["rows"]:
        raw, hearth = row["raw"], row["hearth"]
        out.append([row["clients"], "round trips/s", hearth["per_s"], raw["per_s"],
                    hearth["per_s"] / raw["per_s"], "≥ 0.50"])
        for key in ("p50_us", "p95_us", "p99_us"):
            target = "≤ 2.0" if key == "p50_us" and row["clients"] == 1 else ""
            out.append([row["clients"], key.replace("_us", " µs"), hearth[key], raw[key],
                        hearth[key] / raw[key] if raw[key] else 0.0, target])
    print(table("latency: Hearth vs the raw two-hop chain (closed loop)",
                ["clients", "figure", "hearth", "raw", "ratio", "target"], out))
    cpu = []
    for row in data["rows"]:
        h, r = row["hearth"]["cpu_us_per_rt"], row["raw"]["cpu_us_per_rt"]
        cpu.append([row["clients"], h["portal"], r["A (relay)"], h["server"], r["B (echo)"],
                    h["bench"], r["bench"]])
    print(table("CPU µs per round trip", ["clients", "portal", "raw A", "server", "raw B",
                                           "client (hearth)", "client (raw)"], cpu))
    logins = [[row["clients"], row["hearth"]["logged_in"], row["hearth"]["at_screen"],
               row["hearth"]["login_s"]] for row in data["rows"]]
    print(table("Hearth clients: logged in (create) vs pinging at the connection screen",
                ["clients", "logged in", "at screen", "login s"], logins))
    storm = data.get("login_storm")
    if storm:
        print(table("simultaneous logins while 10 players ping",
                    ["logins", "all in (s)", "target", "idle p99 µs", "during p99 µs",
                     "ratio", "target"],
                    [[storm["logins"], storm["all_in_s"], "≤ 2 s", storm["idle_p99_us"],
                      storm["storm_p99_us"], storm["p99_ratio"], "< 2.0"]]))


def checks(data: dict[str, Any]) -> Checks:
    out = Checks()
    for row in data["rows"]:
        n, raw, hearth = row["clients"], row["raw"], row["hearth"]
        for side, figures in (("hearth", hearth), ("raw", raw)):
            for key in ("unanswered", "lost", "duplicated", "wrong_number"):
                out.correct(f"{n} clients, {side}: {key.replace('_', ' ')}",
                            figures[key] == 0, figures[key])
        ratio = hearth["per_s"] / raw["per_s"] if raw["per_s"] else 0.0
        out.target(f"{n} clients: round trips/s ratio >= 0.50", ratio >= 0.5, f"{ratio:.2f}")
        if n == 1:
            p50 = hearth["p50_us"] / raw["p50_us"] if raw["p50_us"] else 0.0
            out.target("1 client: p50 ratio <= 2.0", p50 <= 2.0, f"{p50:.2f}")
    storm = data.get("login_storm")
    if storm:
        for key in ("unanswered", "lost", "duplicated", "wrong_number"):
            out.correct(f"login storm: {key.replace('_', ' ')}", storm[key] == 0, storm[key])
        out.target("login storm: all in <= 2 s", storm["all_in_s"] <= 2.0,
                   f"{storm['all_in_s']:.2f}")
        out.target("login storm: p99 ratio < 2.0", storm["p99_ratio"] < 2.0,
                   f"{storm['p99_ratio']:.2f}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", default="1,10,100,1000")
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--login-max", type=int, default=100,
                        help="log in at most this many clients per round (scrypt is slow)")
    parser.add_argument("--login-concurrency", type=int, default=32)
    parser.add_argument("--storm", type=int, default=100,
                        help="simultaneous logins in the login part (0: skip it)")
    add_targets_option(parser)
    args = parser.parse_args()
    data = uvloop.run(amain(args))
    report(data)
    path = write_json("latency", data)
    print(f"\nJSON: {path}")
    if data["leftovers"]:
        print(f"killed leftover processes: {data['leftovers']}")
    found = checks(data)
    found.correct("no process left behind", not data["leftovers"], len(data["leftovers"]))
    found.finish(args.targets)


if __name__ == "__main__":
    main()
