"""Issue 19: the world survives every restart, takes new code, and never loses a write.

One game for the module (its world grows from test to test); the tests talk to it with a
real telnet client and kill, reload and restart the real processes.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Iterator

import pytest

from benchmarks.client import GameRunner, MudClient, kill9

WORLD_EXTRAS = '''
from server.api import Context, Room, Thing, command, create_object, current_world, schedule


class Gem(Thing):
    def shine(self) -> str:
        return "shines VERSION"


@command("dig", help="dig NAME - make a room and go there")
def dig(ctx: Context) -> None:
    room = create_object(Room, ctx.args)
    if current_world().start_location is None:
        current_world().start_location = room
    ctx.caller.move_to(room, quiet=True)
    ctx.session.msg(f"dug {room.key} {room.dbref}")


@command("mk", help="mk NAME - make a gem here")
def mk(ctx: Context) -> None:
    gem = create_object(Gem, ctx.args, location=ctx.caller.location)
    gem.db.made_by = ctx.caller
    ctx.session.msg(f"made {gem.key} {gem.dbref}")


@command("setv", help="setv KEY VALUE - store a value on your character")
def setv(ctx: Context) -> None:
    key, _, value = ctx.args.partition(" ")
    ctx.caller.attributes.add(key, value)
    ctx.session.msg(f"stored {key}={value}")


@command("getv", help="getv KEY - show a stored value")
def getv(ctx: Context) -> None:
    ctx.session.msg(f"value {ctx.args}={ctx.caller.attributes.get(ctx.args)}")


@command("where", help="where NAME - where a thing is")
def where(ctx: Context) -> None:
    found = ctx.caller.search(ctx.args, global_search=True, quiet=True)
    if not found:
        ctx.session.msg(f"nowhere {ctx.args}")
    for obj in found:
        here = obj.location.key if obj.location else None
        ctx.session.msg(f"at {obj.key} {here} {obj.db.made_by.key if obj.db.made_by else ''}")


@command("shine", help="shine NAME - what a gem does")
def shine(ctx: Context) -> None:
    obj = ctx.caller.search(ctx.args)
    if obj is not None:
        how = obj.shine() if hasattr(obj, "shine") else "cannot shine"
        ctx.session.msg(f"{type(obj).__name__} {how}")


@command("boom", help="boom - write, then fail")
def boom(ctx: Context) -> None:
    ctx.caller.db.boom = "partial"
    create_object(Thing, "debris", location=ctx.caller.location)
    ctx.session.msg("about to fail")
    raise RuntimeError("boom after writing")


@command("bmake", perm="builder", help="bmake NAME - (builder) make a thing here")
def bmake(ctx: Context) -> None:
    create_object(Thing, ctx.args, location=ctx.caller.location)
    ctx.session.msg(f"built {ctx.args}")


@command("sched", help="sched SECONDS WORD - a stored call")
def sched(ctx: Context) -> None:
    delay, _, word = ctx.args.partition(" ")
    schedule(float(delay), "hearth_game.worldextras.fired", ctx.caller, word)
    ctx.session.msg(f"scheduled {word}")


def fired(obj, word: str) -> None:
    obj.db.fired = [*(obj.db.fired or []), word]
    obj.msg(f"fired {word}")
'''


def write_extras(game: GameRunner, version: str = "v1", with_gem: bool = True) -> None:
    code = WORLD_EXTRAS.replace("VERSION", version)
    if not with_gem:
        code = code.replace("class Gem(Thing):", "class Stone(Thing):").replace(
            "create_object(Gem,", "create_object(Stone,")
    (game.dir / "worldextras.py").write_text(code)


@pytest.fixture(scope="module")
def world_game(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GameRunner]:
    root = tmp_path_factory.mktemp("world")
    game = GameRunner(root, {"portal": {"commands_per_second": 0}})
    write_extras(game)
    with (game.dir / "__init__.py").open("a") as init:
        init.write("from . import worldextras  # noqa: E402,F401\n")
    try:
        game.start()
        yield game
    finally:
        leftovers = game.cleanup()
        assert not leftovers, f"processes left running: {leftovers}"


async def player(game: GameRunner, name: str = "maker", create: bool = True) -> MudClient:
    client = MudClient(name)
    await client.connect(game.port)
    await client.login(name, create=create, entered=r"^Hall$|Hearth Hall|^Exits:")
    return client


async def ask(client: MudClient, line: str, answer: str, timeout: float = 15.0) -> str:
    client.send(line)
    return await client.expect(answer, timeout)


async def cli(game: GameRunner, *args: str) -> None:
    result = await asyncio.to_thread(game.cli, *args)
    assert result.returncode == 0, f"{args}: {result.stdout}{result.stderr}"


def db_rows(game: GameRunner, sql: str) -> list[tuple[object, ...]]:
    db = sqlite3.connect(game.dir / ".hearth" / "game.db")
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def server_log(game: GameRunner) -> str:
    return "".join(p.read_text(errors="replace")
                   for p in sorted((game.dir / ".hearth" / "logs").glob("server*")))


def test_objects_survive_reload_reset_kill_reboot_and_stop_start(world_game: GameRunner) -> None:
    game = world_game

    async def scenario() -> None:
        me = await player(game)
        await ask(me, "dig Hall", r"dug Hall #\d+")
        await ask(me, "mk ruby", r"made ruby #\d+")
        for step in ("reload", "reset", "kill", "reboot", "stop-start"):
            await ask(me, f"setv last {step}", f"stored last={step}")
            if step == "kill":
                kill9(game.pid_of("server"))
            elif step == "stop-start":
                me.close()
                await cli(game, "stop")
                await cli(game, "start")
                game.remember_pids()
            else:
                await cli(game, step)
            if step in ("reboot", "stop-start"):
                me.close()
                me = await player(game, create=False)
            await ask(me, "getv last", f"value last={step}", timeout=30)
            await ask(me, "where ruby", "at ruby Hall maker")
        me.close()

    asyncio.run(scenario())


def test_a_changed_method_applies_to_old_objects_and_a_removed_class_falls_back(
        world_game: GameRunner) -> None:
    game = world_game

    async def scenario() -> None:
        me = await player(game, create=False)
        await ask(me, "mk sapphire", "made sapphire")
        await ask(me, "shine sapphire", "Gem shines v1")
        write_extras(game, "v2")
        await cli(game, "reload")
        await ask(me, "shine sapphire", "Gem shines v2")
        write_extras(game, with_gem=False)
        await cli(game, "reload")
        await ask(me, "shine sapphire", "Thing cannot shine")  # its nearest base, kept
        await ask(me, "where sapphire", "at sapphire")
        assert server_log(game).count("worldextras.Gem does not import") == 1
        write_extras(game, "v3")
        await cli(game, "reload")
        await ask(me, "shine sapphire", "Gem shines v3")  # the stored path came back
        me.close()

    asyncio.run(scenario())


def test_a_raising_command_leaves_no_partial_write(world_game: GameRunner) -> None:
    game = world_game

    async def scenario() -> None:
        me = await player(game, create=False)
        text = await ask(me, "boom", "nothing it changed was kept")
        assert "about to fail" not in text
        await ask(me, "getv boom", "value boom=None")
        await ask(me, "where debris", "nowhere debris")
        me.close()

    asyncio.run(scenario())
    assert db_rows(game, "SELECT id FROM world_objects WHERE key = 'debris'") == []


def test_a_timer_due_during_a_reload_or_a_crash_runs_once(world_game: GameRunner) -> None:
    game = world_game

    async def scenario() -> None:
        me = await player(game, create=False)
        await ask(me, "sched 0.4 during-reload", "scheduled during-reload")
        await cli(game, "reload")  # due while the standby prepares or just after
        await me.expect("fired during-reload", 15)
        await ask(me, "sched 0.3 during-crash", "scheduled during-crash")
        kill9(game.pid_of("server"))  # due while no server runs
        await me.expect("fired during-crash", 30)
        await ask(me, "getv fired", r"value fired=\['during-reload', 'during-crash'\]")
        await asyncio.sleep(0.5)  # a second run would have come by now
        assert len(re.findall("fired during-", "\n".join(me.lines))) == 2
        me.close()

    asyncio.run(scenario())


def test_roles_from_run_py_admin(world_game: GameRunner) -> None:
    game = world_game

    async def scenario() -> None:
        me = await player(game, create=False)
        await ask(me, "bmake crate", "Command 'bmake' is not available")
        await cli(game, "admin", "maker", "--role", "builder")
        await ask(me, "bmake crate", "built crate")  # at once, no reload
        await ask(me, "reload", "Command 'reload' is not available")  # builder < admin
        await cli(game, "admin", "maker")
        await ask(me, "bmake box", "built box")  # an admin may do what a builder may
        await cli(game, "admin", "maker", "--revoke", "--role", "builder")
        await ask(me, "bmake chest", "Command 'bmake' is not available")
        me.close()

    asyncio.run(scenario())


def test_a_takeover_plays_the_same_character(world_game: GameRunner) -> None:
    game = world_game

    async def scenario() -> None:
        first = await player(game, create=False)
        await ask(first, "setv seat kept", "stored seat=kept")
        second = await player(game, create=False)  # multisession "takeover": first closes
        await first.wait_closed()
        await ask(second, "getv seat", "value seat=kept")  # the same character, in place
        await ask(second, "shine me", "Character cannot shine")
        second.close()

    asyncio.run(scenario())
