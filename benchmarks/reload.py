"""Issue 3's benchmark: what N busy players see during reload, kill -9, a broken reload, a hang.

N telnet clients each send a numbered `ping <client>-<n>` every 10 ms (a client that has
`--window` inputs unanswered waits, as a player would). While they do, the benchmark runs
in turn: a quiet control period, `run.py reload`, `kill -9` of the server, a broken reload
(a syntax error appended to the temporary game copy; `reload` must fail and change
nothing), and a hang (one client sends `hang`, a game command that loops forever; the
supervisor's hang timeout is 5 s). Each event's window runs from its trigger until every
client has been answered again, plus a settle time. Per event it prints connections
dropped, inputs lost and duplicated (counted after a final drain, for the inputs sent in
the window), the longest gap between two answers any client saw, the longest any input
sent in the window waited for its answer, and how long the trigger took. The `hang` input
itself is dropped by the portal with a message: expected, not a loss.

Issue 13 adds the portal's events (`--events portal` runs only these, with 1,000 clients
by default): `run.py reload-portal` (the clients' telnet connections move to a new portal:
none may drop, no input be lost or answered twice, no input should wait more than 200 ms
for its answer), then, after the final drain, a `kill -9` of the portal while new
connections are opened every 20 ms: none may be refused (the supervisor holds the
listening socket), and each must reach the connection screen from the restarted portal.
The load clients of the killed portal are dropped by design then; that is not counted
against any event.

    python -m benchmarks.reload --clients 100
    python -m benchmarks.reload --clients 1000
    python -m benchmarks.reload --events portal            # 1,000 clients
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import uvloop

from benchmarks.client import (
    GameRunner,
    PingClient,
    acli,
    login_clients,
    open_clients,
    raise_fd_limit,
)
from benchmarks.report import Checks, add_targets_option, table, temp_dir, write_json

HANG_COMMAND = '''"""Benchmark only: a command that never returns (the supervisor must notice)."""

from server.api import Context, command


@command("hang", logged_in=None, help="hang - loop forever (benchmark).")
def hang(ctx: Context) -> None:
    while True:
        pass
'''
HANG_DROPPED = "made the game hang and was dropped"
SYNTAX_ERROR = "\n\ndef broken(:  # appended by benchmarks.reload\n"


class Load:
    """Every `interval`, each client with fewer than `window` unanswered inputs sends one.
    Players do not type in step: when the interval is longer than 10 ms, the clients are
    split into groups that send in turn, one group every 10 ms, so inputs arrive all
    through the interval and any pause of the game is met by some of them.

    It sends by the clock: each wake-up sends every group's turn that is due by then, so
    a late wake-up (a busy machine) does not lose turns and the load offers the rate it
    asks for. Only a stall longer than `CATCH_UP` intervals is not made up in one burst
    (counted in `late_ticks`)."""

    STEP = 0.01
    CATCH_UP = 10  # intervals' worth of turns sent at once at most after a stall

    def __init__(self, clients: list[PingClient], interval: float, window: int) -> None:
        self.clients = clients
        self.interval = interval
        self.window = window
        self.stopped = asyncio.Event()
        self.late_ticks = 0

    async def run(self, limit: float) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        end = start + limit
        groups = max(1, min(len(self.clients), round(self.interval / self.STEP)))
        step = self.interval / groups
        most = groups * self.CATCH_UP
        turn = 0  # turns sent; turn k is due at start + k * step
        while not self.stopped.is_set() and (now := loop.time()) < end:
            due = int((now - start) / step) + 1
            if due - turn > most:
                self.late_ticks += 1
                turn = due - most
            for k in range(turn, due):
                for client in self.clients[k % groups::groups]:
                    if client.outstanding() < self.window:
                        client.send_ping()
            turn = due
            await asyncio.sleep(max(0.0, start + turn * step - loop.time()))


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.root = Path(temp_dir("hearth-reload-"))
        # 100 pings a second per client is over the default command rate (issue 9).
        self.game = GameRunner(self.root, {"supervisor": {"hang_timeout": args.hang_timeout},
                                           "portal": {"commands_per_second": 0}})
        self.clients: list[PingClient] = []
        self.events: list[dict[str, Any]] = []
        self.prepare_game()

    def prepare_game(self) -> None:
        """Add the `hang` command to the temporary game copy, before start."""
        (self.game.dir / "hang.py").write_text(HANG_COMMAND)
        init = self.game.dir / "__init__.py"
        init.write_text(init.read_text() + "from . import hang  # noqa: F401  (benchmark)\n")

    async def server_pid(self) -> int:
        _, out, _ = await acli(self.game, "status", "--json", timeout=30)
        import json

        try:
            return int(json.loads(out)["server"]["pid"])
        except (ValueError, KeyError, TypeError):
            return 0

    # ------------------------------------------------------------ triggers

    async def trigger_none(self) -> tuple[bool, str]:
        await asyncio.sleep(self.args.quiet)
        return True, "quiet period (control)"

    async def trigger_reload(self) -> tuple[bool, str]:
        code, _, _ = await acli(self.game, "reload", timeout=120)
        return code == 0, f"exit {code}"

    async def trigger_kill(self) -> tuple[bool, str]:
        pid = self.pid_before
        os.kill(pid, signal.SIGKILL)
        return True, f"killed {pid}"

    async def trigger_broken(self) -> tuple[bool, str]:
        path = self.game.dir / "commands.py"
        original = path.read_text()
        path.write_text(original + SYNTAX_ERROR)
        try:
            code, out, _ = await acli(self.game, "reload", timeout=120)
        finally:
            path.write_text(original)
        said = "SyntaxError" in out
        return code != 0 and said, f"exit {code}, traceback shown: {said}"

    async def trigger_reload_portal(self) -> tuple[bool, str]:
        code, out, _ = await acli(self.game, "reload-portal", timeout=180)
        last = out.strip().splitlines()[-1] if out.strip() else ""
        return code == 0, f"exit {code}: {last}"

    async def trigger_hang(self) -> tuple[bool, str]:
        hanger = self.clients[0]
        dropped = asyncio.ensure_future(hanger.expect(HANG_DROPPED, timeout=120))
        hanger.send("hang")
        try:
            await dropped
        except (TimeoutError, ConnectionError) as exc:
            return False, f"no drop notice: {exc!r}"
        return True, f"{hanger.tag} told its hang was dropped"

    # ------------------------------------------------------------ one event

    async def event(self, name: str, trigger: Any, expect_new_pid: bool | None) -> None:
        clients = self.clients
        self.pid_before = await self.server_pid()
        marks = [c.sent for c in clients]
        t0 = time.monotonic()
        ok, detail = await trigger()
        t_end = time.monotonic()
        took = t_end - t0
        deadline = t_end + self.args.recover_max
        while time.monotonic() < deadline:
            if all(c.last_answer > t_end or c.closed_at is not None for c in clients):
                break
            await asyncio.sleep(0.01)
        back = time.monotonic()
        await asyncio.sleep(self.args.settle)
        t1 = time.monotonic()
        pid_after = await self.server_pid()
        if expect_new_pid is not None:
            same = pid_after == self.pid_before
            if same == expect_new_pid:
                ok = False
            detail += f"; server {self.pid_before} -> {pid_after}"
        self.events.append({
            "event": name, "ok": ok, "detail": detail, "trigger_s": took,
            "all_answered_again_s": back - t0, "t0": t0, "t1": t1,
            "marks": marks, "marks_end": [c.sent for c in clients],
            "pid_before": self.pid_before, "pid_after": pid_after,
        })
        print(f"  {name}: {detail} ({took:.3f}s)", flush=True)

    # ------------------------------------------------------------ the run

    async def run(self) -> dict[str, Any]:
        args = self.args
        raise_fd_limit()
        self.game.start()
        port = self.game.port
        clients = self.clients = await open_clients(port, args.clients, prefix="c")
        await asyncio.gather(*(c.expect("connect <username>") for c in clients))
        login = args.login == "yes" or (args.login == "auto" and args.clients <= args.login_max)
        login_s = await login_clients(clients, concurrency=32, timeout=300) if login else 0.0
        how = (f"{len(clients)} clients logged in (created accounts, {login_s:.1f}s)" if login
               else f"{len(clients)} clients ping at the connection screen (not logged in: "
                    f"creating {len(clients)} scrypt-hashed accounts would take too long)")
        print(f"  {how}", flush=True)
        load = Load(clients, args.interval, args.window)
        loader = asyncio.ensure_future(load.run(args.max_seconds))
        start = time.monotonic()
        try:
            await asyncio.sleep(args.warmup)
            await self.event("none (control)", self.trigger_none, None)
            if args.events in ("all", "server"):
                await self.event("reload", self.trigger_reload, True)
                await self.event("kill -9 server", self.trigger_kill, True)
                await self.event("broken reload", self.trigger_broken, False)
                await self.event("hang (timeout 5 s)", self.trigger_hang, True)
            if args.events in ("all", "portal"):
                await self.event("reload-portal", self.trigger_reload_portal, False)
        finally:
            load.stopped.set()
            await loader
        ran = time.monotonic() - start
        drained = await self.drain()
        data = self.summarise(how, ran, drained, load)
        if args.events in ("all", "portal"):
            data["portal_kill"] = await self.portal_kill(port)
        return data

    async def portal_kill(self, port: int) -> dict[str, Any]:
        """`kill -9` the portal while opening a connection every 20 ms (for 3 s at most,
        until the restarted portal answered one): count the refused ones."""
        _, out, _ = await acli(self.game, "status", "--json", timeout=30)
        import json

        pid = int(json.loads(out)["portal"]["pid"])
        probes: list[asyncio.Task[str]] = []
        killed_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        while time.monotonic() - killed_at < self.args.probe_seconds:
            probes.append(asyncio.ensure_future(probe(port, self.args.recover_max)))
            await asyncio.sleep(0.02)
        outcomes = await asyncio.gather(*probes)
        counted = {k: outcomes.count(k) for k in ("screen", "refused", "dropped", "timeout")}
        print(f"  kill -9 portal {pid}: {len(outcomes)} connections opened: {counted}",
              flush=True)
        self.game.remember_pids()
        return {"pid": pid, "opened": len(outcomes), **counted}

    async def drain(self) -> bool:
        deadline = time.monotonic() + self.args.drain_max
        while time.monotonic() < deadline:
            if all(c.outstanding() <= 0 or c.closed_at is not None for c in self.clients):
                return True
            await asyncio.sleep(0.02)
        return False

    def summarise(self, how: str, ran: float, drained: bool, load: Load) -> dict[str, Any]:
        rows = []
        for ev in self.events:
            lost = dup = 0
            dropped = notified = 0
            gap = wait = 0.0
            for index, client in enumerate(self.clients):
                first, last = ev["marks"][index], ev["marks_end"][index]
                a, b = client.lost_and_duplicated(first, last)
                lost, dup = lost + a, dup + b
                if client.closed_at is not None and ev["t0"] <= client.closed_at <= ev["t1"]:
                    dropped += 1
                for start, end in client.gaps:
                    if end >= ev["t0"] and start <= ev["t1"]:
                        gap = max(gap, end - start)
                for sent, answered in client.waits:
                    if ev["t0"] <= sent <= ev["t1"]:
                        wait = max(wait, answered - sent)
                if any(ev["t0"] <= t <= ev["t1"] for t, _ in client.other):
                    notified += 1
            rows.append({
                "event": ev["event"], "ok": ev["ok"], "detail": ev["detail"],
                "dropped": dropped, "lost": lost, "duplicated": dup,
                "longest_gap_s": gap, "longest_wait_s": wait, "trigger_s": ev["trigger_s"],
                "all_answered_again_s": ev["all_answered_again_s"],
                "inputs_in_window": sum(e - s for s, e in zip(ev["marks"], ev["marks_end"],
                                                              strict=True)),
                "window_s": ev["t1"] - ev["t0"],
                "clients_with_notices": notified,
            })
        sent = sum(c.sent for c in self.clients)
        answered = sum(c.answered for c in self.clients)
        lost_all = dup_all = 0
        for client in self.clients:
            a, b = client.lost_and_duplicated(0, client.sent)
            lost_all, dup_all = lost_all + a, dup_all + b
        return {
            "clients": len(self.clients), "how": how, "events": rows,
            "totals": {"sent": sent, "answered": answered, "lost": lost_all,
                       "duplicated": dup_all, "drained": drained, "seconds": ran,
                       "answers_per_s": answered / ran if ran else 0.0,
                       "offered_per_s": len(self.clients) / self.args.interval,
                       "out_of_order": sum(c.out_of_order for c in self.clients),
                       "late_ticks": load.late_ticks},
            "settings": vars(self.args),
        }

    def cleanup(self) -> list[str]:
        for client in self.clients:
            client.close()
        return self.game.cleanup()


async def probe(port: int, timeout: float) -> str:
    """One connection: "screen" (reached the connection screen), "refused", "dropped" or
    "timeout"."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port), timeout)
    except ConnectionRefusedError:
        return "refused"
    except (TimeoutError, OSError):
        return "timeout"
    seen = b""
    try:
        async with asyncio.timeout(timeout):
            while b"connect <username>" not in seen:
                chunk = await reader.read(65536)
                if not chunk:
                    return "dropped"
                seen += chunk
        return "screen"
    except TimeoutError:
        return "timeout"
    except OSError:
        return "dropped"
    finally:
        writer.close()


def report(data: dict[str, Any]) -> None:
    rows = [[r["event"], r["dropped"], r["lost"], r["duplicated"], r["longest_gap_s"] * 1000,
             r["longest_wait_s"] * 1000, r["trigger_s"], r["all_answered_again_s"],
             r["inputs_in_window"],
             r["clients_with_notices"], "ok" if r["ok"] else "FAILED"]
            for r in data["events"]]
    print(table(f"reload benchmark, {data['clients']} clients ({data['how']})",
                ["event", "dropped", "lost", "dup", "longest gap ms (0: <15)",
                 "longest answer wait ms (0: <15)", "trigger s",
                 "all answered again s", "inputs in window", "clients told", "result"], rows))
    t = data["totals"]
    print(f"\ntotals: {t['sent']:,} sent, {t['answered']:,} answered, {t['lost']} lost, "
          f"{t['duplicated']} duplicated, {t['out_of_order']} out of order; "
          f"{t['answers_per_s']:,.0f} answers/s of {t['offered_per_s']:,.0f}/s offered "
          f"(drained: {t['drained']})")
    kill = data.get("portal_kill")
    if kill:
        print(f"kill -9 portal: {kill['opened']} connections opened during it; "
              f"{kill['refused']} refused, {kill['dropped']} dropped, {kill['timeout']} timed "
              f"out, {kill['screen']} reached the connection screen")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=None,
                        help="default 100, or 1,000 with --events portal")
    parser.add_argument("--events", choices=["all", "server", "portal"], default="all",
                        help="server: reload, kill, broken reload, hang; portal: "
                             "reload-portal and a portal kill -9")
    parser.add_argument("--probe-seconds", type=float, default=3.0,
                        help="how long connections are opened during the portal kill -9")
    parser.add_argument("--portal-gap-target-ms", type=float, default=200.0,
                        help="target: the longest wait any player sees during reload-portal")
    parser.add_argument("--interval", type=float, default=0.01, help="seconds between inputs")
    parser.add_argument("--window", type=int, default=100,
                        help="a client with this many unanswered inputs waits")
    parser.add_argument("--login", choices=["auto", "yes", "no"], default="auto",
                        help="auto: log in when clients <= --login-max")
    parser.add_argument("--login-max", type=int, default=200)
    parser.add_argument("--hang-timeout", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--quiet", type=float, default=1.0)
    parser.add_argument("--settle", type=float, default=1.0)
    parser.add_argument("--recover-max", type=float, default=30.0)
    parser.add_argument("--drain-max", type=float, default=60.0)
    parser.add_argument("--max-seconds", type=float, default=240.0,
                        help="hard limit on the load loop")
    parser.add_argument("--gap-target-ms", type=float, default=100.0,
                        help="target: the longest wait any player sees during the reload")
    add_targets_option(parser)
    args = parser.parse_args()
    if args.clients is None:
        args.clients = 1000 if args.events == "portal" else 100
    bench = Bench(args)
    try:
        data = uvloop.run(bench.run())
    finally:
        leftovers = bench.cleanup()
    data["leftovers"] = leftovers
    report(data)
    path = write_json(f"reload-{args.clients}", data)
    print(f"\nJSON: {path}")
    if leftovers:
        print(f"killed leftover processes: {leftovers}")
    found = checks(data, args.gap_target_ms, args.portal_gap_target_ms)
    found.correct("no process left behind", not leftovers, len(leftovers))
    found.finish(args.targets)


def checks(data: dict[str, Any], gap_target_ms: float,
           portal_gap_target_ms: float = 200.0) -> Checks:
    out = Checks()
    for r in data["events"]:
        event = r["event"]
        out.correct(f"{event}: done", r["ok"], r["detail"])
        if event == "none (control)" and r.get("window_s"):
            # the load offers what it asks for (it sends by the clock)
            offered = data["totals"]["offered_per_s"]
            rate = r["inputs_in_window"] / r["window_s"]
            out.target("control: inputs sent >= 0.95 of the rate asked for",
                       rate >= 0.95 * offered, f"{rate:,.0f}/s of {offered:,.0f}/s")
        for key in ("lost", "duplicated", "dropped"):
            out.correct(f"{event}: {key}", r[key] == 0, r[key])
        if event == "reload":
            # how long an input sent in the window waited for its answer (the gap between
            # two answers also counts the send interval, and idle time between inputs)
            wait = r["longest_wait_s"] * 1000
            out.target(f"reload: longest answer wait <= {gap_target_ms:.0f} ms",
                       wait <= gap_target_ms, f"{wait:.0f} ms")
        if event == "reload-portal":
            # a player's wait for the answer to a command: the gap between answers cannot
            # be shorter than the send interval (200 ms at 1,000 clients x 5 inputs/s)
            wait = r.get("longest_wait_s", r["longest_gap_s"]) * 1000
            out.target(f"reload-portal: longest answer wait <= {portal_gap_target_ms:.0f} ms",
                       wait <= portal_gap_target_ms, f"{wait:.0f} ms")
            out.correct("reload-portal: nobody told anything", r["clients_with_notices"] == 0,
                        r["clients_with_notices"])
    kill = data.get("portal_kill")
    if kill:
        out.correct("kill -9 portal: connections refused", kill["refused"] == 0,
                    kill["refused"])
        out.correct("kill -9 portal: every connection reached the screen",
                    kill["screen"] == kill["opened"], f"{kill['screen']}/{kill['opened']}")
    t = data["totals"]
    out.correct("every input answered after the drain", t["drained"], t["drained"])
    for key in ("lost", "duplicated", "out_of_order"):
        out.correct(f"totals: {key.replace('_', ' ')}", t[key] == 0, t[key])
    return out


if __name__ == "__main__":
    main()
