"""Issue 19's benchmark: a 100,000-object world, 1,000 players, through reload and crash.

The world (rooms on a ring, two exits each, two things each; every object with five
attributes) is written into the temporary game's database before it starts. Each of
`--clients` logged-in players sends `ping <tag>-<n>` every `--interval` (0.2 s: 5 a
second); the benchmark's game answers `pong` after one world write chosen by n: move
through an exit, take a thing, drop one, or set an attribute (and always note `last = n`
on the character). While they play: a quiet control period, `run.py reload`, `kill -9`
of the server, a broken reload (`benchmarks.reload`'s events). Then 100 closed-loop
clients write as fast as they are answered (saturation).

It prints, beside the same run with an empty world (`--baseline yes`):
- per event: the gap players saw (median and worst of each player's longest gap between
  answers), inputs lost and duplicated;
- writes lost: after `stop`, every character's stored `last` must be at least the last
  number it was answered for (0 lost is a correctness check);
- the standby's preparation (its world load while the old server served) and its
  catch-up at the attach, from the server log;
- cold start: `run.py start` to the connection screen, and the server's world load;
- the server's RSS per 1,000 objects (loaded; and with every attribute decoded);
- saturation: commands/s, commits/s and object writes (rows) committed/s.

Targets: the worst reload gap no more than 1.2x the empty world's; 0 writes lost; at
least 20,000 object writes/s committed; cold start under 1 s to the connection screen;
at most 2 KiB of RSS per loaded object with five attributes.

    python -m benchmarks.world                          # 100,000 objects, 1,000 players
    python -m benchmarks.world --quick                  # a smoke run in seconds
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import psutil
import uvloop

from benchmarks.client import (
    GameRunner,
    PingClient,
    login_clients,
    open_clients,
    raise_fd_limit,
)
from benchmarks.reload import Bench, Load
from benchmarks.report import Checks, add_targets_option, table, temp_dir, write_json

BENCH_GAME = '''"""Benchmark only: `ping` makes one world write before it answers."""

from server.api import Character, Context, Game, Thing, command, current_world, hook

ROOMS = {rooms}
HEAVY = [1]  # objects written per command (saturation sets more)


class Walker(Character):
    """A character that stays quiet when it moves or logs in (no look, no notices)."""

    __slots__ = ()

    def at_post_move(self, source_location, **kwargs) -> None:
        pass

    def at_post_puppet(self, **kwargs) -> None:
        pass

    def at_post_unpuppet(self, session=None, **kwargs) -> None:
        pass

    def announce_move_from(self, destination, **kwargs) -> None:
        pass

    def announce_move_to(self, source_location, **kwargs) -> None:
        pass


@hook("at_server_start")
def walkers(game: Game) -> None:
    game.world.character_typeclass = Walker


@hook("at_session_login")
def spread(game: Game, session) -> None:
    me = session.puppet
    if me is not None and me.db.last is None and ROOMS:
        room = game.world.get(1 + (session.uid or 0) % ROOMS)
        if room is not None:
            me.move_to(room, quiet=True)


def act(me, n: int) -> None:
    here = me.location
    kind = n % 4
    if kind == 0 and here is not None:
        exits = here.exits
        if exits:
            me.move_to(exits[n % len(exits)].destination, quiet=True)
    elif kind == 1 and here is not None:
        for obj in here.contents:
            if isinstance(obj, Thing):
                obj.move_to(me, quiet=True)
                break
    elif kind == 2 and here is not None:
        for obj in me.contents:
            obj.move_to(here, quiet=True)
            break
    else:
        me.db.n = n
    me.db.last = n
    if HEAVY[0] > 1 and here is not None:
        for obj in here.contents[:HEAVY[0] - 1]:
            obj.db.touched = n


@command("ping", logged_in=None, help="ping TAG-N - one world write, then pong TAG-N")
def ping(ctx: Context) -> None:
    me = ctx.session.puppet
    if me is not None:
        number = ctx.args.rpartition("-")[2]
        if number.isdigit():
            act(me, int(number))
    ctx.session.msg(f"pong {{ctx.args}}")


@command("bmstats", logged_in=None, help="bmstats - the world's counters")
def stats(ctx: Context) -> None:
    world = current_world()
    ctx.session.msg(f"bmstats {{world.commits}} {{world.rows_written}} {{len(world)}}")


@command("bmtouch", logged_in=None, help="bmtouch - decode every object's attributes")
def touch(ctx: Context) -> None:
    for obj in current_world().objects.values():
        obj.attributes.has("x")
    ctx.session.msg("bmtouch done")


@command("bmheavy", logged_in=None, help="bmheavy N - objects written per ping")
def heavy(ctx: Context) -> None:
    HEAVY[0] = max(1, int(ctx.args))
    ctx.session.msg(f"bmheavy {{HEAVY[0]}}")
'''


def build_world(database: Path, objects: int) -> float:
    """Rooms on a ring (each with an exit each way and two things), five attributes on
    every object, written before the game starts; seconds taken."""
    from server.store import open_database
    from server.world import Exit, Room, Thing, World

    started = time.perf_counter()
    world = World.open(open_database(database), writable=True)
    rooms_n = objects // 5
    rooms = [world.create(Room, f"room {i}", attributes={
        "desc": f"Room {i} of the ring.", "x": i, "y": -i, "area": "ring", "lit": True})
        for i in range(rooms_n)]
    for i, room in enumerate(rooms):
        after = rooms[(i + 1) % rooms_n]
        world.create(Exit, "east", location=room, destination=after, aliases=["e"],
                     attributes=_five(i))
        world.create(Exit, "west", location=after, destination=room, aliases=["w"],
                     attributes=_five(i))
        for j in range(2):
            world.create(Thing, f"pebble {i}-{j}", location=room, attributes=_five(i))
    world.commit()
    world.close()
    world.db.close()
    return time.perf_counter() - started


def _five(i: int) -> dict[str, Any]:
    return {"desc": "A small grey thing.", "weight": i % 10, "value": 3, "color": "grey",
            "made": [i, "ring"]}


def server_log(game: GameRunner) -> str:
    return "".join(p.read_text(errors="replace")
                   for p in sorted((game.dir / ".hearth" / "logs").glob("server*")))


def log_figures(text: str) -> dict[str, list[float]]:
    loads = [float(m) for m in re.findall(r"world loaded: \d+ objects in ([\d.]+)s", text)]
    catch = [float(m) for m in re.findall(r"caught up on \d+ rows in ([\d.]+) ms", text)]
    rows = [float(m) for m in re.findall(r"caught up on (\d+) rows", text)]
    return {"loads_s": loads, "catch_up_ms": catch, "catch_up_rows": rows}


def stored_last(database: Path) -> dict[str, int]:
    """Each character's stored `last`, by key (the client's tag)."""
    import sqlite3

    db = sqlite3.connect(database)
    try:
        found = {}
        for key, blob in db.execute("SELECT key, attrs FROM world_objects WHERE typeclass "
                                    "LIKE '%Walker'"):
            attrs = msgspec.msgpack.decode(blob) if blob else {}
            if isinstance(attrs, dict) and isinstance(attrs.get("last"), int):
                found[key] = attrs["last"]
        return found
    finally:
        db.close()


class WorldBench(Bench):
    """`benchmarks.reload`'s events, on a game whose `ping` writes to a world."""

    def __init__(self, args: argparse.Namespace, objects: int) -> None:
        self.args = args
        self.objects = objects
        self.root = Path(temp_dir("hearth-world-"))
        self.game = GameRunner(self.root, {
            "supervisor": {"hang_timeout": args.hang_timeout, "crash_loop_limit": 0},
            "portal": {"commands_per_second": 0},
            "server": {"scrypt_n": 1024}})
        self.clients: list[PingClient] = []
        self.events: list[dict[str, Any]] = []
        self.database = self.game.dir / ".hearth" / "game.db"
        (self.game.dir / "worldbench.py").write_text(BENCH_GAME.format(rooms=objects // 5))
        init = self.game.dir / "__init__.py"
        init.write_text(init.read_text() + "from . import worldbench  # noqa: F401\n")
        self.build_s = build_world(self.database, objects) if objects else 0.0

    async def start(self) -> dict[str, Any]:
        """`run.py start` timed to the connection screen; the server's RSS."""
        started = time.monotonic()
        code, out = await self.cli("start")
        if code != 0:
            raise RuntimeError(f"start failed: {out}")
        self.game.remember_pids()
        probe = PingClient("probe")
        loop = asyncio.get_running_loop()
        await loop.create_connection(lambda: probe, "127.0.0.1", self.game.port)
        await probe.expect("connect <username>")
        screen = time.monotonic() - started
        pid = self.game.pid_of("server")
        rss = psutil.Process(pid).memory_info().rss
        probe.send("bmtouch")
        await probe.expect("bmtouch done", 120)
        rss_decoded = psutil.Process(pid).memory_info().rss
        probe.close()
        return {"start_to_screen_s": screen, "rss": rss, "rss_decoded": rss_decoded}

    async def cli(self, *args: str) -> tuple[int, str]:
        result = await asyncio.to_thread(self.game.cli, *args, timeout=180)
        return result.returncode, result.stdout + result.stderr

    async def trigger_reload(self) -> tuple[bool, str]:
        code, out = await self.cli("reload")
        why = "" if code == 0 else ": " + " | ".join(out.strip().splitlines()[-6:])
        return code == 0, f"exit {code}{why}"

    async def saturate(self) -> dict[str, Any]:
        """`--saturation-clients` closed-loop writers for `--saturation-seconds`."""
        args = self.args
        clients = await open_clients(self.game.port, args.saturation_clients, prefix="s",
                                     closed_loop=True)
        await login_clients(clients, concurrency=32, timeout=300)
        control = clients[0]
        control.send(f"bmheavy {args.writes_per_command}")
        await control.expect("bmheavy", 30)
        control.send("bmstats")
        first = (await control.expect("bmstats", 30)).split()
        before = [c.answered for c in clients]
        for client in clients:
            client.running = True
            client.send_ping()
        started = time.monotonic()
        await asyncio.sleep(args.saturation_seconds)
        for client in clients:
            client.running = False
        took = time.monotonic() - started
        answered = sum(c.answered - b for c, b in zip(clients, before, strict=True))
        await asyncio.sleep(0.2)
        control.send("bmstats")
        last = (await control.expect("bmstats", 30)).split()
        control.send("bmheavy 1")
        await control.expect("bmheavy", 30)
        for client in clients:
            client.close()
        commits = int(last[1]) - int(first[1])
        rows = int(last[2]) - int(first[2])
        return {"commands_per_s": answered / took, "commits_per_s": commits / took,
                "rows_per_s": rows / took, "seconds": took,
                "writes_per_command": args.writes_per_command}

    async def run(self) -> dict[str, Any]:  # type: ignore[override]
        args = self.args
        raise_fd_limit()
        started = await self.start()
        clients = self.clients = await open_clients(self.game.port, args.clients, prefix="c")
        await asyncio.gather(*(c.expect("connect <username>") for c in clients))
        login_s = await login_clients(clients, concurrency=32, timeout=600)
        how = f"{len(clients)} players logged in ({login_s:.1f}s), {self.objects:,} objects"
        print(f"  {how}", flush=True)
        load = Load(clients, args.interval, args.window)
        loader = asyncio.ensure_future(load.run(args.max_seconds))
        began = time.monotonic()
        try:
            await asyncio.sleep(args.warmup)
            await self.event("none (control)", self.trigger_none, None)
            await self.event("reload", self.trigger_reload, True)
            await self.event("kill -9 server", self.trigger_kill, True)
            await self.event("broken reload", self.trigger_broken, False)
        finally:
            load.stopped.set()
            await loader
        ran = time.monotonic() - began
        drained = await self.drain()
        data = self.summarise(how, ran, drained, load)
        for row, ev in zip(data["events"], self.events, strict=True):
            longest = []
            for client in clients:
                gaps = [end - start for start, end in client.gaps
                        if end >= ev["t0"] and start <= ev["t1"]]
                longest.append(max(gaps, default=0.0))
            row["median_gap_s"] = statistics.median(longest) if longest else 0.0
        data["saturation"] = await self.saturate()
        answered_last = {c.tag: c.next_expected - 1 for c in clients if c.next_expected}
        for client in clients:
            client.close()
        code, _ = await self.cli("stop")
        stored = stored_last(self.database)
        lost = [tag for tag, n in answered_last.items() if stored.get(tag, -1) < n]
        data.update(started, objects=self.objects, build_s=self.build_s, stop_exit=code,
                    writes_checked=len(answered_last), writes_lost=len(lost),
                    writes_lost_examples=lost[:5], log=log_figures(server_log(self.game)))
        return data


def run_one(args: argparse.Namespace, objects: int) -> dict[str, Any]:
    print(f"world of {objects:,} objects:", flush=True)
    bench = WorldBench(args, objects)
    try:
        data = uvloop.run(bench.run())
    finally:
        data_leftovers = bench.cleanup()
    data["leftovers"] = data_leftovers
    return data


def event(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(r for r in data["events"] if r["event"] == name)


def report(runs: dict[str, dict[str, Any]]) -> None:
    rows = []
    for label, data in runs.items():
        for r in data["events"]:
            rows.append([label, r["event"], r["median_gap_s"] * 1000, r["longest_gap_s"] * 1000,
                         r["longest_wait_s"] * 1000, r["lost"], r["duplicated"], r["dropped"],
                         "ok" if r["ok"] else "FAILED"])
    print(table("the gap players saw (ms; each player's longest gap between answers: "
                "median and worst over players)",
                ["world", "event", "median gap", "worst gap", "worst wait", "lost", "dup",
                 "dropped", "result"], rows))
    rows = []
    for label, data in runs.items():
        logs = data["log"]
        loads = logs["loads_s"]
        sat = data["saturation"]
        rows.append([label, data["start_to_screen_s"], loads[0] if loads else "",
                     loads[1] if len(loads) > 1 else "",
                     logs["catch_up_ms"][1] if len(logs["catch_up_ms"]) > 1 else "",
                     logs["catch_up_rows"][1] if len(logs["catch_up_rows"]) > 1 else "",
                     data["rss"] / 2**20, data["rss_decoded"] / 2**20,
                     sat["commands_per_s"], sat["commits_per_s"], sat["rows_per_s"],
                     f"{data['writes_lost']}/{data['writes_checked']}"])
    print(table("cold start, standby, memory, saturation",
                ["world", "start->screen s", "world load s", "standby load s",
                 "catch-up ms", "catch-up rows", "server RSS MiB", "RSS decoded MiB",
                 "commands/s", "commits/s", "object writes/s", "writes lost"], rows))


def checks(runs: dict[str, dict[str, Any]], args: argparse.Namespace) -> Checks:
    out = Checks()
    world = runs["world"]
    for label, data in runs.items():
        for r in data["events"]:
            out.correct(f"{label}: {r['event']}: done", r["ok"], r["detail"])
            for key in ("lost", "duplicated", "dropped"):
                out.correct(f"{label}: {r['event']}: inputs {key}", r[key] == 0, r[key])
        out.correct(f"{label}: writes lost (checked in the database)",
                    data["writes_lost"] == 0 and data["writes_checked"] > 0,
                    f"{data['writes_lost']} of {data['writes_checked']} players' last writes")
        out.correct(f"{label}: every input answered after the drain",
                    data["totals"]["drained"], data["totals"]["drained"])
        out.correct(f"{label}: no process left behind", not data["leftovers"],
                    len(data["leftovers"]))
    if "empty" in runs:
        base = event(runs["empty"], "reload")["longest_gap_s"]
        gap = event(world, "reload")["longest_gap_s"]
        ratio = gap / base if base else float("inf")
        out.target(f"reload: worst gap <= {args.gap_ratio}x the empty world's",
                   ratio <= args.gap_ratio, f"{gap * 1000:.0f} / {base * 1000:.0f} ms = "
                                            f"{ratio:.2f}x")
        for name in ("reload", "kill -9 server", "broken reload"):
            waits = [event(runs[k], name)["longest_wait_s"] * 1000 for k in ("world", "empty")]
            out.target(f"{name}: worst answer wait (reported beside the empty world's)", True,
                       f"{waits[0]:.0f} ms vs {waits[1]:.0f} ms")
        rss = (world["rss"] - runs["empty"]["rss"]) / max(world["objects"], 1)
        rss_decoded = (world["rss_decoded"] - runs["empty"]["rss_decoded"]) / \
            max(world["objects"], 1)
        out.target("RSS per loaded object <= 2 KiB (five attributes, decoded)",
                   rss_decoded <= 2048, f"{rss * 1000 / 2**20:.2f} MiB per 1,000 objects "
                                        f"loaded, {rss_decoded * 1000 / 2**20:.2f} decoded "
                                        f"({rss_decoded:.0f} B/object)")
        world["rss_per_object"] = rss
        world["rss_per_object_decoded"] = rss_decoded
    rows = world["saturation"]["rows_per_s"]
    out.target(f"object writes committed >= {args.writes_target:,}/s", rows >= args.writes_target,
               f"{rows:,.0f}/s ({world['saturation']['writes_per_command']} per command)")
    loads = world["log"]["loads_s"]
    load = loads[0] if loads else float("inf")
    screen = world["start_to_screen_s"]
    if "empty" in runs:
        added = screen - runs["empty"]["start_to_screen_s"]
        out.target(f"cold start: what {world['objects']:,} objects add to start -> screen < 1 s",
                   added < 1.0, f"{screen:.2f} s vs {runs['empty']['start_to_screen_s']:.2f} s "
                                f"empty: +{added:.2f} s (server's world load {load:.2f} s)")
    else:
        out.target(f"cold start: the server's load of {world['objects']:,} objects < 1 s",
                   load < 1.0, f"{load:.2f} s (start -> screen {screen:.2f} s in all)")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between inputs")
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument("--baseline", choices=["yes", "no"], default="yes",
                        help="also run with an empty world (the gap ratio and RSS need it)")
    parser.add_argument("--saturation-clients", type=int, default=100)
    parser.add_argument("--saturation-seconds", type=float, default=5.0)
    parser.add_argument("--writes-per-command", type=int, default=10,
                        help="objects each saturation command writes")
    parser.add_argument("--gap-ratio", type=float, default=1.2)
    parser.add_argument("--writes-target", type=int, default=20_000)
    parser.add_argument("--hang-timeout", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--quiet", type=float, default=1.0)
    parser.add_argument("--settle", type=float, default=1.0)
    parser.add_argument("--recover-max", type=float, default=30.0)
    parser.add_argument("--drain-max", type=float, default=60.0)
    parser.add_argument("--max-seconds", type=float, default=300.0)
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 500 objects, 4 players, no baseline, short phases")
    add_targets_option(parser)
    args = parser.parse_args()
    if args.quick:
        args.objects, args.clients, args.baseline = 500, 4, "no"
        args.saturation_clients, args.saturation_seconds = 4, 0.5
        args.warmup = args.quiet = args.settle = 0.2
    runs: dict[str, dict[str, Any]] = {}
    if args.baseline == "yes":
        runs["empty"] = run_one(args, 0)
    runs["world"] = run_one(args, args.objects)
    report(runs)
    path = write_json(f"world-{args.objects}", {"runs": runs, "settings": vars(args)})
    print(f"\nJSON: {path}")
    checks(runs, args).finish(args.targets)


if __name__ == "__main__":
    sys.exit(main())
