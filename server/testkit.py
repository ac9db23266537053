"""A test kit for game code: a world in a temporary database, players that collect output.

No process, socket or portal: the game's commands run through the server's own command
path (`ServerSessionHandler`: savepoints, commit before output, replies, timers), so a
command test takes milliseconds. Evennia's `EvenniaTest` is the model.

In a game's tests (pytest)::

    # conftest.py of your game's tests
    from pathlib import Path
    import pytest
    pytest_plugins = ["server.testkit"]          # gives the `hearth` fixture

    @pytest.fixture
    def hearth_game_dir() -> Path:                # your game folder (default: Hearth's game/)
        return Path(__file__).parent.parent

    # test_lamp.py
    def test_lamp(hearth):
        alice = hearth.player("alice", role="builder")
        assert "Made lamp" in alice.do("lamp")
        lamp = hearth.find("lamp")
        assert lamp.db.lit
        hearth.advance(60)                        # stored timers fire on a fake clock
        assert not lamp.db.lit
        hearth.reload()                           # a new World from the same database
        assert hearth.find("lamp").db.lit is False

`Player.do(line)` returns the text the command sent (colour markup removed; `raw=True`
keeps it); `Player.oob` is every GMCP message received as (package, data), and
`Player.gmcp("Room.Info")` the data of the last of a package. `player(..., oob=True)` (the
default) makes a client that asked for Room, Char, Char.Items and Comm.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ipc.frames import DataOut, Frame, InputItem, SessionData
from ipc.settings import ServerSettings
from server.accounts import AccountStore, ScryptCost
from server.api import registry
from server.keys import PublicKeyStore
from server.loader import GAME_MODULE, load_game
from server.main import ServerGame
from server.session import ServerSession
from server.sessions import ServerSessionHandler
from server.store import KeyValueStore, open_database
from server.world import World, WorldObject

BUNDLED_GAME = Path(__file__).resolve().parent.parent / "game"
SUPPORTS = ["Core 1", "Room 1", "Char 1", "Char.Items 1", "Comm 1"]
MARKUP = re.compile(r"\|(?:\d{3}|\[?[a-zA-Z*^_]|#[0-9a-fA-F]{6})")
SETTLE_TIMEOUT = 5.0  # an async command that runs longer than this fails the test

_loaded: list[Path] = []


def plain(text: str) -> str:
    """`text` without colour markup (`|r`, `|[b`, `|123`); `||` is a `|`."""
    return "|".join(MARKUP.sub("", part) for part in text.split("||"))


def package_of(cmdname: str) -> str:
    """The GMCP package an output name travels as (`room_info` -> `Room.Info`)."""
    if "." in cmdname:
        return cmdname
    if "_" in cmdname:
        return ".".join(part.capitalize() for part in cmdname.split("_"))
    return f"Core.{cmdname.capitalize()}"


def use_game(game_dir: Path) -> None:
    """Import `game_dir` as the game package (once per process, again for another dir)."""
    game_dir = game_dir.resolve()
    if _loaded and _loaded[-1] == game_dir and GAME_MODULE in sys.modules:
        return
    for name in [m for m in sys.modules if m == GAME_MODULE or m.startswith(GAME_MODULE + ".")]:
        del sys.modules[name]
    registry.commands.clear()
    registry.screen.clear()
    registry.hooks.clear()
    registry.inputfuncs.clear()
    registry.replies.clear()
    load_game(game_dir)
    _loaded.append(game_dir)


async def _fast_hash(password: str, salt: bytes, cost: ScryptCost) -> bytes:
    return hashlib.sha256(salt + password.encode()).digest()


class Player:
    """A logged-in player with a fake connection that keeps what it was sent."""

    def __init__(self, kit: TestGame, session: ServerSession) -> None:
        self.kit = kit
        self.session = session
        self.lines: list[str] = []  # every text sent, as sent (markup kept)
        self.oob: list[tuple[str, Any]] = []  # every GMCP message: (package, data)
        self.prompts: list[str] = []

    @property
    def character(self) -> WorldObject:
        puppet = self.session.puppet
        assert puppet is not None, f"{self.session.uname} plays no character"
        return puppet

    @property
    def name(self) -> str:
        return self.session.uname or ""

    def do(self, line: str, raw: bool = False) -> str:
        """Type `line`; the text it sent this player (and what timers due at once sent)."""
        start = len(self.lines)
        self.kit.send_input(self.session, line)
        text = "\n".join(self.lines[start:])
        return text if raw else plain(text)

    def text(self, raw: bool = False) -> str:
        """Everything this player was sent so far."""
        text = "\n".join(self.lines)
        return text if raw else plain(text)

    def clear(self) -> None:
        self.lines.clear()
        self.oob.clear()

    def gmcp(self, package: str) -> Any:
        """The data of the last GMCP message of `package` (KeyError if none came)."""
        for name, data in reversed(self.oob):
            if name == package:
                return data
        raise KeyError(f"{self.name} received no {package}; got {[n for n, _ in self.oob]}")

    def gmcp_all(self, package: str) -> list[Any]:
        return [data for name, data in self.oob if name == package]

    def receive(self, cmdname: str, args: list[Any], kwargs: dict[str, Any]) -> None:
        if cmdname == "text":
            self.lines.extend(str(a) for a in args if a is not None)
        elif cmdname == "prompt":
            self.prompts.extend(str(a) for a in args)
            self.lines.extend(str(a) for a in args)
        elif cmdname != "echo":
            self.oob.append((package_of(cmdname), kwargs if kwargs or not args else args[0]))

    def __repr__(self) -> str:
        return f"<Player {self.name}>"


class TestGame:
    """A game with a world in `db_path` (a temporary file), and no processes.

    Made by the `hearth` fixture; `close()` when done. Timers run on a fake clock
    (`advance`); `reload()` opens a new World on the same database, as a reload does.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, db_path: Path, game_dir: Path = BUNDLED_GAME,
                 name: str = "Test Game", settings: ServerSettings | None = None) -> None:
        use_game(game_dir)
        self.now = 1_000_000.0
        self.loop = asyncio.new_event_loop()
        self.db = open_database(db_path)
        self.settings = settings or ServerSettings()
        self.requests: list[str] = []  # reload/reset/... asked by admin commands
        self.players: dict[int, Player] = {}
        self._next_sessid = 1
        self._seq = 0
        self.handler = ServerSessionHandler(registry, self._receive)
        self.accounts = AccountStore(self.db, 1)
        self.world = self._open_world()
        self.name = name
        self.game = self._make_game()
        self._run(self._start())

    # ------------------------------------------------------------ setting up

    def _open_world(self) -> World:
        world = World.open(self.db, writable=True)
        assert world.timers is not None
        world.timers.clock = lambda: self.now
        self.handler.world = world
        return world

    def _make_game(self) -> ServerGame:
        game = ServerGame(self.name, self.accounts, KeyValueStore(self.db), self.handler,
                          self._request, PublicKeyStore(self.db), self.settings, self.world)
        self.handler.game = game
        return game

    async def _start(self) -> None:
        self.handler.run_hooks_strict("at_server_start")
        self.handler.run_hooks_strict("at_server_cold_start")
        self.handler.flush()

    def _request(self, action: str, sessid: int) -> None:
        self.requests.append(action)

    def _run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(asyncio.wait_for(coro, SETTLE_TIMEOUT))

    def close(self) -> None:
        self.world.close()
        self.accounts.close()
        self.loop.close()
        self.db.close()

    # ------------------------------------------------------------ players

    def player(self, name: str, *, role: str = "player", oob: bool = True,
               location: WorldObject | None = None, protocol: str = "telnet") -> Player:
        """A new account `name` logged in (its character made in the start room, or
        `location`), with `role` ("player", "builder", "admin"). With `oob` its client
        speaks GMCP and asked for Room, Char, Char.Items and Comm."""
        return self._run(self._player(name, role, oob, location, protocol))  # type: ignore[no-any-return]

    async def _player(self, name: str, role: str, oob: bool, location: WorldObject | None,
                      protocol: str) -> Player:
        account = await self.accounts.create(name, "password", hasher=_fast_hash)
        if role != "player":
            self.accounts.set_role(name, role)
        sessid = self._next_sessid
        self._next_sessid += 1
        flags = {"OOB": True, "GMCP": True} if oob else {}
        data = SessionData(sessid=sessid, protocol_key=protocol, address="127.0.0.1",
                           protocol_flags=flags)
        session = self.handler._new_session(data)
        session.load_sync_data(data)
        player = self.players[sessid] = Player(self, session)
        if oob:
            session.oob.receive_supports("set", list(SUPPORTS))
        if location is not None:
            self.world.create_character(account.uid, name, location=location)
        await self.game.login(session, account.uid, account.name)
        self.handler.flush()
        return player

    def visitor(self, *, oob: bool = False, protocol: str = "telnet") -> Player:
        """A new connection at the connection screen (not logged in): `create` and
        `connect` run as a player types them (with the real password hashing)."""
        sessid = self._next_sessid
        self._next_sessid += 1
        flags = {"OOB": True, "GMCP": True} if oob else {}
        data = SessionData(sessid=sessid, protocol_key=protocol, address="127.0.0.1",
                           protocol_flags=flags)

        async def arrive() -> Player:
            session = self.handler._new_session(data)
            session.load_sync_data(data)
            player = self.players[sessid] = Player(self, session)
            self.handler.run_hooks("at_session_connect", session)
            self.handler.flush()
            return player

        return self._run(arrive())  # type: ignore[no-any-return]

    def disconnect(self, player: Player) -> None:
        """The player's client goes away (the game's disconnect hooks run)."""
        async def gone() -> None:
            self.handler.portal_disconnect(player.session.sessid)
            self.handler.flush()

        self._run(gone())
        self.players.pop(player.session.sessid, None)

    def send_input(self, session: ServerSession, line: str) -> None:
        self._seq += 1
        item = InputItem(self._seq, session.sessid, "text", [line], {})
        self._run(self._settle([item]))

    def send_oob(self, player: Player, cmdname: str, *args: Any, **kwargs: Any) -> None:
        """Out-of-band input from the client (`supports_set`, `char_login_credentials`)."""
        self._seq += 1
        item = InputItem(self._seq, player.session.sessid, cmdname, list(args), kwargs)
        self._run(self._settle([item]))

    async def _settle(self, items: list[InputItem]) -> None:
        self.handler.receive_input(items)
        await asyncio.sleep(0)
        if not await self.handler.wait_idle(SETTLE_TIMEOUT):
            raise TimeoutError(f"a command still ran after {SETTLE_TIMEOUT}s")
        self.handler.flush()

    def _receive(self, frame: Frame) -> None:
        if isinstance(frame, DataOut):
            for item in frame.items:
                player = self.players.get(item.sessid)
                if player is not None:
                    player.receive(item.cmdname, item.args, item.kwargs)

    # ------------------------------------------------------------ the world

    def find(self, name: str, location: WorldObject | None = None) -> WorldObject:
        """The one object called `name` (its key, else an alias; in `location`, if
        given); AssertionError if there is none or several."""
        found = self.world.search(name, scopes=None if location is None else [location],
                                  exact=True)
        keyed = [o for o in found if o.key.lower() == name.lower()]
        found = keyed or found  # the key first, then aliases
        assert len(found) == 1, f"{len(found)} objects are called {name!r}: {found}"
        return found[0]

    def advance(self, seconds: float) -> int:
        """Move the fake clock on and run the stored timers due by then, as the server
        does (each a command of its own, committed with its output); how many ran."""
        self.now += seconds
        return self._run(self._fire())  # type: ignore[no-any-return]

    async def _fire(self) -> int:
        timers = self.world.timers
        assert timers is not None
        ran = 0
        while due := timers.due():
            for timer in due:
                timers.consume(timer)
                mark = self.world.begin_command()
                try:
                    timers.call(timer)
                except Exception:
                    self.world.rollback_current()
                    raise
                finally:
                    self.world.end_command(mark)
                ran += 1
        self.handler.flush()
        return ran

    def reload(self) -> None:
        """What a reload does to the world: everything committed, a new World loaded
        from the database (fresh objects, `ndb` gone), sessions bound to their puppets
        again. The game's modules are not imported again."""
        self.handler.flush()
        self.world.writable = False
        self.world.close()
        self.world = self._open_world()
        self.game = self._make_game()
        for session in self.handler.sessions.values():
            self.world.bind(session)
        self._run(self._reloaded())

    async def _reloaded(self) -> None:
        self.handler.run_hooks_strict("at_server_start")
        self.handler.run_hooks_strict("at_server_reload_start")
        self.handler.flush()


try:
    import pytest
except ImportError:  # pragma: no cover - the kit is for tests, pytest is how they run
    pass
else:

    @pytest.fixture
    def hearth_game_dir() -> Path:
        """The game folder the `hearth` fixture loads; override it in your conftest."""
        return BUNDLED_GAME

    @pytest.fixture
    def hearth(tmp_path: Path, hearth_game_dir: Path) -> Iterator[TestGame]:
        """A `TestGame` of `hearth_game_dir` in a temporary database."""
        kit = TestGame(tmp_path / "game.db", hearth_game_dir)
        try:
            yield kit
        finally:
            kit.close()
