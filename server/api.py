"""The public API a game package is written against.

A game registers commands and hooks at import time::

    from server.api import Context, command, hook

    @command("say", aliases=["'"], help="Say something to the room.")
    def say(ctx: Context) -> None:
        ctx.session.msg(f'You say, "{ctx.args}"')

    @hook("at_server_start")
    def started(game: Game) -> None: ...

A command is a function taking a `Context`; it may be `async` (its session's next input
waits for it, other players do not). Hooks take the `Game`, plus the session for the
session hooks. The server process is replaced on every reload, so module-level state in
the game is fresh each time; state that must survive goes in `session.server_data`, the
database, or the key-value store.

Passwords go through `game.logins` (`server.logins.Logins`), never straight to the
account store: it throttles failures per address and per account, limits creations per
address, gives one answer for an unknown name and a wrong password, and queues the hashing
fairly across addresses::

    try:
        account = await ctx.game.logins.check_password(name, password, ctx.session.address)
    except AccountError as exc:   # LoginRefused (throttled) is one too
        ctx.session.msg(str(exc))

The world (`server.world`: persistent typed objects, timers, puppets) is here too; its
module docstring has the whole summary. A builder command on it::

    from server.api import Context, Thing, command, create_object

    @command("make", perm="builder", help="make NAME - create a thing here.")
    def make(ctx: Context) -> None:
        thing = create_object(Thing, ctx.args, location=ctx.caller.location)
        ctx.caller.msg(f"Made {thing.key} ({thing.dbref}).")   # sent after the commit

Every write a command makes is committed before its output leaves; a command that raises
has its writes undone and its player told. `perm` is a role the account needs ("builder"
or "admin"; an admin may do what a builder may; `run.py admin NAME --role builder`).

A command can take the player's next line for itself, unseen by the command parser (and,
with `hidden=True`, not echoed by the client: passwords)::

    ctx.session.ask("connect.password", "Password:", hidden=True, name=name)

    @reply("connect.password")
    async def password(ctx: Context) -> None: ...   # ctx.args is the line, ctx.data the rest

Out-of-band data for clients' mappers and gauges (GMCP as IRE games send it, the same
values as MSDP variables) goes through `oob`; each call reaches only a client that asked
for that package (`server.oob`)::

    oob.room_info(session, num=7, name="Kitchen", area="House", environment="indoors",
                  exits={"s": 6})
    oob.char_status(session, level=2)           # whole the first time, then changes
    session.oob.send("Client.Map", {"url": "https://example.org/map.xml"})
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from server import oob
from server.accounts import ROLES, Account, AccountError
from server.logins import LoginRefused, Logins
from server.world import (
    Character,
    Exit,
    ObjectDeleted,
    Room,
    Thing,
    World,
    WorldObject,
    WorldReadOnly,
    current_world,
    typeclass_renamed,
)
from server.world.functions import (
    cancel_timer,
    create_object,
    get_object,
    objects_of_type,
    objects_tagged,
    schedule,
    search_object,
    ticker,
)

log = logging.getLogger("server")

if TYPE_CHECKING:
    from server.accounts import AccountStore
    from server.keys import PublicKeyStore
    from server.session import ServerSession
    from server.store import KeyValueStore

__all__ = [
    "HOOKS",
    "ROLES",
    "Account",
    "AccountError",
    "Character",
    "Command",
    "CommandFunc",
    "Context",
    "Exit",
    "Game",
    "LoginRefused",
    "Logins",
    "ObjectDeleted",
    "Registry",
    "Room",
    "Thing",
    "World",
    "WorldObject",
    "WorldReadOnly",
    "cancel_timer",
    "command",
    "create_object",
    "current_world",
    "get_object",
    "hook",
    "inputfunc",
    "objects_of_type",
    "objects_tagged",
    "oob",
    "registry",
    "reply",
    "schedule",
    "search_object",
    "ticker",
    "typeclass_renamed",
]

CommandFunc = Callable[["Context"], Awaitable[None] | None]
InputFunc = Callable[["ServerSession", list[Any], dict[str, Any]], Awaitable[None] | None]

HOOKS = frozenset(
    {
        "at_server_start",  # every start, before the server takes players (world read-only)
        "at_server_stop",  # every stop, after the mode's own stop hook
        "at_server_reload_start",
        "at_server_reload_stop",
        "at_server_cold_start",  # first start, reset, and start after a shutdown
        "at_server_cold_stop",
        "at_session_connect",  # (game, session): show the connection screen
        "at_session_login",  # (game, session)
        "at_session_disconnect",  # (game, session)
    }
)


class Game(Protocol):
    """What commands and hooks may use of the running server."""

    @property
    def name(self) -> str: ...
    @property
    def accounts(self) -> AccountStore: ...
    @property
    def logins(self) -> Logins:
        """Password checks and account creation, with the login protection."""
        ...
    @property
    def store(self) -> KeyValueStore: ...
    @property
    def keys(self) -> PublicKeyStore:
        """Public keys accounts registered for SSH logins."""
        ...
    def sessions(self) -> Iterable[ServerSession]: ...
    def logged_in(self) -> Iterable[ServerSession]: ...
    def broadcast(self, text: str) -> None: ...
    def request(self, action: str, session: ServerSession | None = None) -> None:
        """Ask the supervisor for "reload", "reset", "reboot" or "shutdown"."""
        ...
    async def login(self, session: ServerSession, uid: int, name: str) -> None:
        """Log `session` in; AccountError (problem "in_use") if the account is logged in
        elsewhere and `server.multisession` is "refuse". With "takeover" the other
        sessions of the account are told and closed first."""
        ...
    def is_admin(self, session: ServerSession) -> bool:
        """Whether the session's account is an admin (`run.py admin NAME`)."""
        ...
    def has_perm(self, session: ServerSession, perm: str | None) -> bool:
        """Whether the session's account has role `perm` or a higher one (None: anyone)."""
        ...
    @property
    def world(self) -> World:
        """Every object of the game (`server.world.World`)."""
        ...
    def commands(self) -> Iterable[Command]: ...


@dataclass(frozen=True, slots=True)
class Command:
    key: str
    func: CommandFunc
    aliases: tuple[str, ...] = ()
    help: str = ""
    # None: everywhere; True: only once logged in; False: only at the connection screen.
    logged_in: bool | None = True
    admin: bool = False
    perm: str | None = None  # the role needed ("builder", "admin"); admin=True means "admin"
    category: str = "General"  # the heading `help` lists it under

    @property
    def needs(self) -> str | None:
        """The role this command needs, if any."""
        return "admin" if self.admin else self.perm


class Context(msgspec.Struct):
    """Everything a running command gets. (A Struct, not a dataclass: one is made for
    every command, and a Struct is made in C, in a third of the time.)"""

    session: ServerSession
    game: Game
    cmdname: str  # the word the player typed
    args: str  # the rest of the line, stripped (for a reply: the whole line)
    command: Command
    data: dict[str, Any] = {}  # a reply's keywords from `ask` (a new dict for each)

    @property
    def caller(self) -> WorldObject:
        """The character the session plays (`session.puppet`). Every logged-in session
        has one; before login (or for a session the game unpuppeted) this raises
        RuntimeError: test `ctx.session.puppet` there instead."""
        puppet = self.session.puppet
        if puppet is None:
            raise RuntimeError(f"session {self.session.sessid} plays no character "
                               "(not logged in?); ctx.session.puppet is None")
        return puppet

    @property
    def world(self) -> World:
        return self.game.world


@dataclass
class Registry:
    """The game's commands by name. A connection-screen command (`logged_in=False`) and a
    command of the logged-in game may share a name (`create` makes an account before
    login and a thing after it, as in Evennia's two command sets): `screen` holds the
    first kind, `commands` the others."""

    commands: dict[str, Command] = field(default_factory=dict)
    hooks: dict[str, list[Callable[..., Any]]] = field(default_factory=dict)
    inputfuncs: dict[str, InputFunc] = field(default_factory=dict)
    replies: dict[str, Command] = field(default_factory=dict)
    screen: dict[str, Command] = field(default_factory=dict)

    def add_command(self, cmd: Command) -> None:
        """Register `cmd` under its key and aliases: a connection-screen command (logged_in
        False) in the screen table, others in the commands table (a command for everywhere
        also replaces a screen command of its name). A name another command already has in
        its table is taken over, with one warning per registration naming both functions'
        modules (a game that defines `look` twice most likely did not mean to)."""
        table = self.screen if cmd.logged_in is False else self.commands
        taken: dict[str, Command] = {}
        for name in (cmd.key, *cmd.aliases):
            old = table.get(name.lower())
            if old is not None and old.func is not cmd.func and _where(old) != _where(cmd):
                taken[name.lower()] = old
            table[name.lower()] = cmd
            if cmd.logged_in is None:  # everywhere: it replaces a screen command too
                self.screen.pop(name.lower(), None)
        if taken:
            log.warning("command name %s of %s replaces %s: one of them should be renamed",
                        ", ".join(repr(name) for name in taken), _where(cmd),
                        ", ".join(sorted({_where(old) for old in taken.values()})))

    def find(self, word: str, logged_in: bool) -> Command | None:
        name = word.lower()
        if not logged_in and name in self.screen:
            return self.screen[name]
        cmd = self.commands.get(name)
        if cmd is None or (cmd.logged_in is not None and cmd.logged_in != logged_in):
            return None
        return cmd

    def on_screen(self, word: str) -> bool:
        """Whether `word` names a connection-screen command (its line may hold a
        password: never logged)."""
        name = word.lower()
        cmd = self.commands.get(name)
        return name in self.screen or (cmd is not None and cmd.logged_in is False)

    def unique_commands(self) -> list[Command]:
        seen: dict[tuple[str, bool | None], Command] = {}
        for cmd in (*self.commands.values(), *self.screen.values()):
            seen.setdefault((cmd.key, cmd.logged_in), cmd)
        return sorted(seen.values(), key=lambda c: c.key)


def _where(cmd: Command) -> str:
    """The command's function as `module.name`, to tell two registrations apart."""
    return f"{cmd.func.__module__}.{cmd.func.__qualname__}"


registry = Registry()


def command(
    key: str,
    *,
    aliases: Iterable[str] = (),
    help: str = "",
    logged_in: bool | None = True,
    admin: bool = False,
    perm: str | None = None,
    category: str = "General",
) -> Callable[[CommandFunc], CommandFunc]:
    """Register a command by name, with aliases, help text and the `category` a help
    listing shows it under. With `perm` ("builder" or "admin") only accounts with that
    role or a higher one see and run it; `admin=True` is `perm="admin"`."""
    if perm is not None and perm not in ROLES:
        raise ValueError(f"unknown perm {perm!r}; roles are {', '.join(ROLES)}")

    def register(func: CommandFunc) -> CommandFunc:
        text = help or (func.__doc__ or "").strip()
        registry.add_command(Command(key, func, tuple(aliases), text, logged_in, admin, perm,
                                     category))
        return func

    return register


def hook(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a server or session hook (see HOOKS)."""
    if name not in HOOKS:
        raise ValueError(f"unknown hook {name!r}; hooks are {', '.join(sorted(HOOKS))}")

    def register(func: Callable[..., Any]) -> Callable[..., Any]:
        registry.hooks.setdefault(name, []).append(func)
        return func

    return register


def inputfunc(name: str) -> Callable[[InputFunc], InputFunc]:
    """Register a handler for an out-of-band input command (GMCP/MSDP/webclient)."""

    def register(func: InputFunc) -> InputFunc:
        registry.inputfuncs[name.lower()] = func
        return func

    return register


def reply(key: str) -> Callable[[CommandFunc], CommandFunc]:
    """Register the handler of a line asked for with `session.ask(key, ...)`.

    It runs like a command, with `ctx.args` the player's whole line (stripped) and
    `ctx.data` the keywords given to `ask`; a player cannot type it as a command. A
    hidden reply's line is never logged, not even when its handler fails.
    """

    def register(func: CommandFunc) -> CommandFunc:
        registry.replies[key] = Command(key, func, logged_in=None)
        return func

    return register
