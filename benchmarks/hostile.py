"""Hostile load: a legitimate player's p99 round trip while one client attacks the portal.

A logged-in witness pings every 20 ms and times each answer. First it pings with nothing
else going on (the idle p99, the baseline of this run); then, for each attack pattern in
turn, an attacker process (this module with `--attack`, so its own CPU does not slow the
witness's loop) streams that pattern for `--duration` seconds while the witness pings.
`ssh_line` attacks the SSH port: one shell (a pty, as `new`) typing one line that never
ends, as fast as the portal's window takes it. Each pattern's p99 is printed as a ratio
to the idle p99 (target under 3x), beside the
portal's peak RSS during it (psutil, sampled every 50 ms), its RSS `AFTER` seconds after
the attacker closed and its CPU share in the last second of that wait (the work a closed
connection left behind). Per-address limits apply to loopback here
(`unlimited_addresses = []`), as they would to a stranger.

The web patterns (`benchmarks.web_attacks`) attack the web port: websocket floods of
empty non-final continuation frames, empty PINGs and tiny `[]` messages, and ajax
requests (`keepalive`, `input`) pipelined on one connection.

Exits non-zero when a check fails: the portal or server restarted, the witness was
disconnected or a ping went unanswered, or (unless `--max-ratio 0`) a ratio reached
`--max-ratio`.

    python -m benchmarks.hostile [--duration 10] [--patterns toggles,nul,...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import uvloop

from benchmarks.client import REPO, GameRunner, PingClient, flood, percentile
from benchmarks.report import Checks, add_targets_option, table, temp_dir, write_json
from benchmarks.web_attacks import WS_PATTERNS, ajax_pipeline, ws_flood

IAC, DONT, DO, SB, SE, NOP = 255, 254, 253, 250, 240, 241
SGA, MCCP2, GMCP = 3, 86, 201

# Each streamed pattern: the chunk written over and over, as fast as the portal takes it.
STREAMS: dict[str, bytes] = {
    "toggles": bytes((IAC, DONT, SGA, IAC, DO, SGA, IAC, DO, MCCP2, IAC, DONT, MCCP2)) * 5000,
    "iac_iac": bytes((IAC, IAC)) * 32768,
    "nul": bytes(65536),
    "iac_nop": bytes((IAC, NOP)) * 32768,
    "newlines": b"\n" * 262144,
    "sb_flood": bytes((IAC, SB, 99, IAC, SE)) * 13000,
    "gmcp_poison": (bytes((IAC, SB, GMCP)) + b"Core.Ping 18446744073709551616" + bytes((IAC, SE))
                    + bytes((IAC, SB, GMCP)) + b'Core.Ping "\\ud800"' + bytes((IAC, SE))) * 500,
}
AJAX_PATTERNS = ["ajax_keepalive", "ajax_input"]
PATTERNS = [*STREAMS, "slowloris", "conn_flood", "ssh_line", *WS_PATTERNS, *AJAX_PATTERNS]
SSH_PATTERNS = {"ssh_line"}  # attack the SSH port instead of telnet's
SSH_CHUNK = "x" * 32768  # ssh_line: one unfinished line, written for the whole attack
AFTER = 3.0  # seconds after the attacker closed: the portal's RSS and CPU then
SLOWLORIS = 200  # connections, each sending one byte a second and never a line end
FLOOD_WORKERS = 8  # concurrent connect-and-close loops


# ---------------------------------------------------------------- the attacker process


async def attack_stream(port: int, chunk: bytes, seconds: float) -> dict[str, Any]:
    # gmcp_poison first agrees to the portal's GMCP offer
    greeting = bytes((IAC, DO, GMCP)) if chunk is STREAMS["gmcp_poison"] else b""
    return {"bytes_written": await flood(port, chunk, seconds, greeting)}


async def attack_slowloris(port: int, seconds: float) -> dict[str, Any]:
    pairs: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    for _ in range(SLOWLORIS):
        with contextlib.suppress(OSError):
            pairs.append(await asyncio.open_connection("127.0.0.1", port))
    writers = [writer for _, writer in pairs]
    closed = [0]

    async def until_closed(reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while await reader.read(65536):
                pass
        closed[0] += 1

    readers = [asyncio.create_task(until_closed(reader)) for reader, _ in pairs]
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for writer in writers:
            if not writer.is_closing():
                with contextlib.suppress(ConnectionError, OSError):
                    writer.write(b"x")
        await asyncio.sleep(1.0)
    held = len(pairs) - closed[0]
    for writer in writers:
        writer.close()
    for task in readers:
        task.cancel()
    return {"connections": len(pairs), "held_open_at_end": held}


async def attack_conn_flood(port: int, seconds: float) -> dict[str, Any]:
    end = time.monotonic() + seconds
    opened = 0

    async def worker() -> None:
        nonlocal opened
        while time.monotonic() < end:
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                opened += 1
                writer.close()

    await asyncio.gather(*(worker() for _ in range(FLOOD_WORKERS)))
    return {"connections": opened}


async def attack_ssh_line(port: int, seconds: float) -> dict[str, Any]:
    """One SSH shell (a pty, the connection screen as `new`) typing one line that never
    ends, as fast as the portal's window lets it."""
    import asyncssh  # only this pattern needs it

    sent = 0
    async with asyncssh.connect("127.0.0.1", port, username="new", known_hosts=None,
                                agent_path=None, client_keys=None, password_auth=False) as conn:
        proc = await conn.create_process(term_type="xterm", term_size=(80, 24))
        draining = asyncio.create_task(proc.stdout.read())  # discard what comes back
        end = time.monotonic() + seconds
        with contextlib.suppress(asyncssh.Error, OSError, TimeoutError):
            while (left := end - time.monotonic()) > 0:
                proc.stdin.write(SSH_CHUNK)
                sent += len(SSH_CHUNK)
                await asyncio.wait_for(proc.stdin.drain(), left)
        draining.cancel()
        proc.close()
    return {"bytes_written": sent}


async def attack(pattern: str, port: int, web_port: int, seconds: float) -> dict[str, Any]:
    if pattern == "ssh_line":
        return await attack_ssh_line(port, seconds)
    if pattern in WS_PATTERNS:
        return {"bytes_written": await ws_flood(web_port, pattern, seconds)}
    if pattern in AJAX_PATTERNS:
        return {"bytes_written": await ajax_pipeline(web_port, pattern.split("_")[1], seconds)}
    if pattern == "slowloris":
        return await attack_slowloris(port, seconds)
    if pattern == "conn_flood":
        return await attack_conn_flood(port, seconds)
    return await attack_stream(port, STREAMS[pattern], seconds)


# ---------------------------------------------------------------- the witness


class Witness(PingClient):
    """Pings every `interval` (under the command rate limit) and records each round trip."""

    def __init__(self) -> None:
        super().__init__("witness")
        self._answer: asyncio.Future[float] | None = None

    def _pong(self, n: int, now: float) -> None:
        super()._pong(n, now)
        if self._answer is not None and not self._answer.done():
            self._answer.set_result(now)

    async def ping_for(self, seconds: float, interval: float, timeout: float) -> list[float]:
        rtts: list[float] = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self._answer = asyncio.get_running_loop().create_future()
            sent = time.monotonic()
            self.send_ping()
            answered = await asyncio.wait_for(self._answer, timeout)
            rtts.append(answered - sent)
            await asyncio.sleep(interval)
        return rtts


async def watch_rss(pid: int, stop: asyncio.Event) -> int:
    peak = 0
    with contextlib.suppress(psutil.Error):
        proc = psutil.Process(pid)
        while not stop.is_set():
            peak = max(peak, proc.memory_info().rss)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.05)
    return peak


async def after_attack(pid: int, after: float = AFTER) -> tuple[int, float]:
    """The portal's (RSS, CPU %) once `after` seconds have passed since the attack ended
    (the CPU share is that of the last second, or of all of `after` if shorter)."""
    window = min(1.0, after)
    try:
        proc = psutil.Process(pid)
        await asyncio.sleep(after - window)
        before = sum(proc.cpu_times()[:2])
        await asyncio.sleep(window)
        return proc.memory_info().rss, 100.0 * (sum(proc.cpu_times()[:2]) - before) / window
    except psutil.Error:
        return 0, 0.0


async def run_pattern(pattern: str, ports: dict[str, Any], witness: Witness, portal: int,
                      args: argparse.Namespace) -> dict[str, Any]:
    port = int(ports["ssh" if pattern in SSH_PATTERNS else "telnet"])
    stop = asyncio.Event()
    rss = asyncio.create_task(watch_rss(portal, stop))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.hostile", "--attack", pattern,
        "--port", str(port), "--web-port", str(ports["web"]),
        "--duration", str(args.duration), cwd=REPO, stdout=subprocess.PIPE)
    row: dict[str, Any] = {"pattern": pattern}
    try:
        row["rtts"] = await witness.ping_for(args.duration, args.interval, args.timeout)
    except (TimeoutError, ConnectionError) as exc:
        row["rtts"] = []
        row["failure"] = f"witness: {type(exc).__name__} (no answer within {args.timeout}s)"
    finally:
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), args.duration + 30)
        except TimeoutError:
            proc.kill()
            out, _ = await proc.communicate()
        stop.set()
        row["peak_rss"] = await rss
    row["after_rss"], row["after_cpu"] = await after_attack(portal, args.after)
    row["attacker"] = out.decode(errors="replace").strip()
    return row


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    patterns = [p for p in args.patterns.split(",") if p]
    unknown = set(patterns) - set(PATTERNS)
    if unknown:
        raise SystemExit(f"unknown patterns: {sorted(unknown)} (known: {PATTERNS})")
    game = GameRunner(Path(temp_dir("hearth-hostile-")),
                      {"portal": {"negotiation_timeout": 0.3, "unlimited_addresses": [],
                                  "ssh_port": 0, "web_port": 0}})
    rows: list[dict[str, Any]] = []
    try:
        game.start()
        status = game.status()
        port = int(status["ports"]["telnet"])
        pids = {role: int(status[role]["pid"]) for role in ("portal", "server")}
        loop = asyncio.get_running_loop()
        witness = Witness()
        await loop.create_connection(lambda: witness, "127.0.0.1", port)
        await witness.expect("connect <username>")
        entered = asyncio.ensure_future(witness.expect("Hearth Hall"))
        witness.send("create witness secret1")
        await entered
        idle_stop = asyncio.Event()
        idle_rss = asyncio.create_task(watch_rss(pids["portal"], idle_stop))
        idle = await witness.ping_for(args.idle, args.interval, args.timeout)
        idle_stop.set()
        idle_row = {"pattern": "idle", "rtts": idle, "peak_rss": await idle_rss}
        for pattern in patterns:
            rows.append(await run_pattern(pattern, status["ports"], witness, pids["portal"],
                                          args))
            print(f"  {pattern}: done", flush=True)
        after = game.status()
        restarted = [role for role, pid in pids.items()
                     if after[role].get("pid") != pid or after[role].get("state") == "fatal"]
        connected = witness.closed_at is None
        witness.close()
    finally:
        leftovers = game.cleanup()
    return {"idle": summarise(idle_row, None), "rows": [summarise(r, idle) for r in rows],
            "restarted": restarted, "witness_connected": connected, "leftovers": leftovers,
            "settings": vars(args)}


def summarise(row: dict[str, Any], idle: list[float] | None) -> dict[str, Any]:
    rtts = row.pop("rtts")
    p99 = percentile(rtts, 99) * 1000
    out = {**row, "pings": len(rtts), "p50_ms": percentile(rtts, 50) * 1000, "p99_ms": p99,
           "max_ms": max(rtts, default=0.0) * 1000, "peak_rss_mb": row["peak_rss"] / 2**20,
           "after_rss_mb": row.get("after_rss", 0) / 2**20}
    if idle is not None:
        idle_p99 = percentile(idle, 99) * 1000
        out["ratio"] = p99 / idle_p99 if idle_p99 else 0.0
    return out


def checks(data: dict[str, Any], max_ratio: float) -> Checks:
    """Correctness: no process replaced, the witness connected and answered throughout.
    Targets: each pattern's p99 under `max_ratio` times the idle p99, and the portal back
    under 10% of a core `AFTER` seconds after the attacker closed."""
    found = Checks()
    after = data["settings"].get("after", AFTER)
    found.correct("portal and server kept running", not data["restarted"],
                  ", ".join(data["restarted"]) or "yes")
    found.correct("witness stayed connected", data["witness_connected"])
    for row in data["rows"]:
        found.correct(f"{row['pattern']}: witness answered", not row.get("failure"),
                      row.get("failure") or "yes")
        if max_ratio and not row.get("failure"):
            found.target(f"{row['pattern']}: p99 < {max_ratio:g}x idle",
                         row["ratio"] < max_ratio, f"{row['ratio']:.2f}x")
        found.target(f"{row['pattern']}: portal CPU < 10% {after:g} s after",
                     row.get("after_cpu", 0.0) < 10, f"{row.get('after_cpu', 0.0):.0f}%")
    return found


def report(data: dict[str, Any], max_ratio: float) -> None:
    idle = data["idle"]
    out = [["idle", idle["pings"], idle["p50_ms"], idle["p99_ms"], idle["max_ms"], 1.0, "",
            idle["peak_rss_mb"], "", "", ""]]
    target = f"< {max_ratio:g}" if max_ratio else "unchecked"
    for row in data["rows"]:
        out.append([row["pattern"], row["pings"], row["p50_ms"], row["p99_ms"], row["max_ms"],
                    row.get("ratio", 0.0), target, row["peak_rss_mb"], row["after_rss_mb"],
                    row.get("after_cpu", 0.0), row.get("failure") or row["attacker"]])
    print(table(f"hostile: witness round trip while one attacker streams for "
                f"{data['settings']['duration']:g} s (ratio to idle p99 of this run)",
                ["pattern", "pings", "p50 ms", "p99 ms", "max ms", "ratio", "target",
                 "portal peak RSS MB", f"RSS MB {data['settings'].get('after', AFTER):g} s after",
                 "CPU % then",
                 "attacker"], out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per attack")
    parser.add_argument("--after", type=float, default=AFTER,
                        help="seconds after an attack before the portal's RSS and CPU are read")
    parser.add_argument("--idle", type=float, default=0.0,
                        help="seconds of idle pinging for the baseline (default: --duration)")
    parser.add_argument("--patterns", default=",".join(PATTERNS))
    parser.add_argument("--interval", type=float, default=0.02, help="witness ping spacing")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="a witness ping unanswered this long fails the run")
    parser.add_argument("--max-ratio", type=float, default=3.0,
                        help="fail when a pattern's p99 reaches this multiple of idle (0: off)")
    parser.add_argument("--attack", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--web-port", type=int, default=0, help=argparse.SUPPRESS)
    add_targets_option(parser)
    args = parser.parse_args()
    if args.attack:
        print(uvloop.run(attack(args.attack, args.port, args.web_port, args.duration)))
        return
    args.idle = args.idle or args.duration
    data = uvloop.run(amain(args))
    report(data, args.max_ratio)
    path = write_json("hostile", data)
    print(f"\nJSON: {path}")
    if data["leftovers"]:
        print(f"killed leftover processes: {data['leftovers']}")
    checks(data, args.max_ratio).finish(args.targets)


if __name__ == "__main__":
    main()
