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
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from server.accounts import AccountStore
    from server.keys import PublicKeyStore
    from server.session import ServerSession
    from server.store import KeyValueStore

__all__ = [
    "HOOKS",
    "Command",
    "CommandFunc",
    "Context",
    "Game",
    "Registry",
    "command",
    "hook",
    "inputfunc",
    "registry",
]

CommandFunc = Callable[["Context"], Awaitable[None] | None]
InputFunc = Callable[["ServerSession", list[Any], dict[str, Any]], Awaitable[None] | None]

HOOKS = frozenset(
    {
        "at_server_start",  # every start, before the server takes players
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
    async def login(self, session: ServerSession, uid: int, name: str) -> None: ...
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


@dataclass(slots=True)
class Context:
    """Everything a running command gets."""

    session: ServerSession
    game: Game
    cmdname: str  # the word the player typed
    args: str  # the rest of the line, stripped
    command: Command


@dataclass
class Registry:
    commands: dict[str, Command] = field(default_factory=dict)
    hooks: dict[str, list[Callable[..., Any]]] = field(default_factory=dict)
    inputfuncs: dict[str, InputFunc] = field(default_factory=dict)

    def add_command(self, cmd: Command) -> None:
        for name in (cmd.key, *cmd.aliases):
            self.commands[name.lower()] = cmd

    def find(self, word: str, logged_in: bool) -> Command | None:
        cmd = self.commands.get(word.lower())
        if cmd is None or (cmd.logged_in is not None and cmd.logged_in != logged_in):
            return None
        return cmd

    def unique_commands(self) -> list[Command]:
        seen: dict[str, Command] = {}
        for cmd in self.commands.values():
            seen.setdefault(cmd.key, cmd)
        return sorted(seen.values(), key=lambda c: c.key)


registry = Registry()


def command(
    key: str,
    *,
    aliases: Iterable[str] = (),
    help: str = "",
    logged_in: bool | None = True,
    admin: bool = False,
) -> Callable[[CommandFunc], CommandFunc]:
    """Register a command by name, with aliases and help text."""

    def register(func: CommandFunc) -> CommandFunc:
        text = help or (func.__doc__ or "").strip()
        registry.add_command(Command(key, func, tuple(aliases), text, logged_in, admin))
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
