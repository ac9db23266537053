"""Issue 19's crash test: writes with timed answers, 20 SIGKILLs of the server at random
moments, and afterwards every write whose answer arrived is in the database."""

from __future__ import annotations

import asyncio
import random
import re
import sqlite3
import time

import psutil

from benchmarks.client import GameRunner, MudClient

CRASH_EXTRAS = '''
from server.api import Context, Thing, command, create_object


@command("w", help="w N - one write: a new object named wN, and your last N")
def write(ctx: Context) -> None:
    create_object(Thing, f"w{ctx.args}", attributes={"n": ctx.args})
    ctx.caller.db.last = ctx.args
    ctx.session.msg(f"ok {ctx.args}")
'''

KILLS = 20
CLIENTS = 4


def server_pid(supervisor: psutil.Process) -> int | None:
    for child in supervisor.children():
        try:
            if "server" in " ".join(child.cmdline()) and child.status() != "zombie":
                return child.pid
        except psutil.Error:
            continue
    return None


async def writer(name: str, port: int, stop: asyncio.Event, answered: list[str],
                 waits: list[float]) -> MudClient:
    client = MudClient(name)
    await client.connect(port)
    await client.login(name)
    n = 0
    while not stop.is_set():
        key = f"{name}-{n}"
        sent = time.monotonic()
        client.send(f"w {key}")
        await client.expect(rf"^ok {re.escape(key)}$", timeout=30)
        waits.append(time.monotonic() - sent)
        answered.append(key)
        n += 1
    return client


def test_every_answered_write_survives_20_sigkills(game_factory: type[GameRunner]) -> None:
    game = game_factory({"supervisor": {"crash_loop_limit": 0, "backoff_max": 0.2},
                         "portal": {"commands_per_second": 0}})
    (game.dir / "crashextras.py").write_text(CRASH_EXTRAS)
    with (game.dir / "__init__.py").open("a") as init:
        init.write("from . import crashextras  # noqa: E402,F401\n")
    game.start()
    supervisor = psutil.Process(game.pid_of("supervisor"))
    rng = random.Random(19)
    answered: list[str] = []
    waits: list[float] = []

    async def scenario() -> int:
        stop = asyncio.Event()
        port = game.port
        tasks = [asyncio.create_task(writer(f"c{i}", port, stop, answered, waits))
                 for i in range(CLIENTS)]
        killed = 0
        deadline = time.monotonic() + 60
        while killed < KILLS and time.monotonic() < deadline:
            await asyncio.sleep(rng.uniform(0.05, 0.4))
            before = len(answered)
            pid = server_pid(supervisor)
            if pid is None:
                continue
            psutil.Process(pid).kill()
            killed += 1
            while len(answered) < before + CLIENTS and time.monotonic() < deadline:
                await asyncio.sleep(0.02)  # the next server answers before the next kill
        stop.set()
        clients = await asyncio.wait_for(asyncio.gather(*tasks), 60)
        for client in clients:
            client.close()
        return killed

    killed = asyncio.run(scenario())
    assert killed == KILLS, f"only {killed} kills in the time"
    result = game.cli("stop")
    assert result.returncode == 0, result.stdout + result.stderr
    db = sqlite3.connect(game.dir / ".hearth" / "game.db")
    keys = [key[1:] for (key,) in db.execute("SELECT key FROM world_objects "
                                            "WHERE key LIKE 'w%'")]
    db.close()
    stored = set(keys)
    lost = [key for key in answered if key not in stored]
    assert len(answered) > 1000, f"only {len(answered)} writes answered"
    assert not lost, f"{len(lost)} answered writes lost, e.g. {lost[:5]}"
    print(f"{len(answered)} answered writes, {KILLS} kills, 0 lost, {len(keys) - len(stored)} "
          f"run twice (committed, then replayed: the kill came before the answer left); "
          f"worst answer wait {max(waits):.2f}s")
