"""Out-of-band data for modern clients: GMCP as IRE games send it, the same values as MSDP.

A game sends through `session.oob` or the helpers below, with plain data; each call
reaches only a client that asked for it::

    from server.api import oob
    oob.room_info(session, num=12, name="Hearth Hall", area="Hearth", environment="indoors",
                  exits={"n": 13, "out": 1})
    oob.char_status(session, level=3, race="human")   # first whole, then what changed
    session.oob.send("Client.Map", {"url": "..."})    # any package

Which protocol a session speaks (`SessionOob.mode`): a telnet client that agreed to GMCP
gets GMCP, one that agreed to MSDP only gets MSDP, a web client that carries out-of-band
data (Evennia's v1, the mudstandards.org gmcp and json formats) gets GMCP. A GMCP client
gets a message when it named its package or a parent in `Core.Supports.Set/Add` (Core.* is
always on); an MSDP client gets a variable it asked for with `REPORT` when its value
changes (see `server.oob_state.MSDP_VARIABLES` for which message sets which variable).

What the client asked (its packages, its reported variables, what Char.Status it was last
sent) is kept in `session.server_data` under `OOB_KEY`, so a reload or crash keeps it.

The client's own messages (Core.Hello, Core.Supports.*, Char.Login.Credentials, MSDP's
LIST/REPORT/UNREPORT/SEND/RESET) are handled here (`INPUTS`); a game that registers an
`inputfunc` of the same name replaces the handler.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import Any, Final, Literal, Protocol

from server.accounts import AccountError
from server.logins import Logins
from server.oob_state import (
    DIFFED,
    MSDP_COMMANDS,
    MSDP_VARIABLES,
    OobState,
    msdp_values,
    msdp_variables,
)


class ServerSession(Protocol):
    """What this module uses of `server.session.ServerSession` (named here so that the
    session can import this module)."""

    @property
    def protocol_key(self) -> str: ...
    @property
    def address(self) -> str: ...
    @property
    def logged_in(self) -> bool: ...
    @property
    def protocol_flags(self) -> Mapping[str, Any]: ...
    @property
    def server_data(self) -> MutableMapping[str, Any]: ...
    @property
    def oob(self) -> SessionOob: ...
    def data_out(self, **kwargs: Any) -> None: ...


class Game(Protocol):
    """What the login handler uses of `server.api.Game`."""

    @property
    def logins(self) -> Logins: ...
    async def login(self, session: Any, uid: int, name: str) -> None: ...



OOB_KEY: Final = "_oob"
LOGIN_TYPES: Final = ("password-credentials",)
Mode = Literal["gmcp", "msdp"] | None
_MARKUP: Final = re.compile(r"\|(?:\d{3}|\[?[a-zA-Z*^_]|#[0-9a-fA-F]{6})")


def wire_name(package: str) -> str:
    """The output name that the portal turns back into `package` exactly.

    The portal (as Evennia) turns `room_info` into `Room.Info` and `goodbye` into
    `Core.Goodbye`; a package that rule cannot spell (`Room.WrongDir`, `Char.StatusVars`,
    `IRE.Rift.List`) travels by its dotted name, which the portal must pass unchanged.
    """
    segments = package.split(".")
    if not all(s and s.isalnum() and s == s.capitalize() for s in segments):
        return package
    if segments[0] == "Core":
        return segments[1].lower() if len(segments) == 2 else package
    return "_".join(s.lower() for s in segments) if len(segments) > 1 else package


def _payload(data: Any) -> tuple[list[Any], dict[str, Any]]:
    if data is None:
        return [], {}
    if isinstance(data, Mapping):
        return [], dict(data)
    return [data], {}


def plain(text: str) -> str:
    """`text` without Hearth's colour markup (`|r`, `|[b`, `|123`), `||` kept as `|`."""
    return "|".join(_MARKUP.sub("", part) for part in text.split("||"))


class SessionOob:
    """`session.oob`: what one session's client asked for, and sending to it."""

    def __init__(self, session: ServerSession) -> None:
        self._session = session
        self.state = OobState.from_data(session.server_data.get(OOB_KEY))
        self._msdp: dict[str, Any] = {}  # last value of each MSDP variable (memory only)

    @property
    def mode(self) -> Mode:
        flags = self._session.protocol_flags
        if not flags.get("OOB"):  # the portal sets it with GMCP, MSDP, or a web format's OOB
            return None
        if flags.get("GMCP"):
            return "gmcp"
        if flags.get("MSDP"):
            return "msdp"
        return "gmcp" if self._session.protocol_key.startswith("webclient") else None

    def wants(self, package: str) -> bool:
        """Whether `send(package, ...)` would reach the client (over GMCP or MSDP)."""
        mode = self.mode
        if mode == "gmcp":
            return self.state.wants(package)
        if mode == "msdp":
            return any(var in self.state.reported for var in msdp_variables(package))
        return False

    def send(self, package: str, data: Any = None) -> bool:
        """Send a GMCP message (`data`: a dict, a list, a string, a number, or None), or the
        MSDP variables it maps to. Char.Status and Char.StatusVars go whole the first time,
        later only with the keys that changed. True if anything was sent."""
        mode = self.mode
        if mode == "gmcp":
            return self._send_gmcp(package, data)
        if mode == "msdp":
            return self._send_msdp(msdp_values(package, data))
        return False

    def _send_gmcp(self, package: str, data: Any) -> bool:
        if not self.state.wants(package):
            return False
        if package in DIFFED and isinstance(data, Mapping):
            data = self.state.diff(package, data)
            self.save()
            if not data:
                return False
        args, kwargs = _payload(data)
        self._session.data_out(**{wire_name(package): (args, kwargs)})
        return True

    def _send_msdp(self, values: Mapping[str, Any], *, force: bool = False) -> bool:
        out = {}
        for var, value in values.items():
            changed = self._msdp.get(var, _UNSET) != value
            self._msdp[var] = value
            if (changed and var in self.state.reported) or force:
                out[var] = _payload(value)
        if out:
            self._session.data_out(**out)
        return bool(out)

    def send_msdp(self, var: str, value: Any) -> None:
        """One MSDP variable straight to the client (MSDP's own replies: LIST, ...)."""
        if self.mode == "msdp":
            self._session.data_out(**{var: _payload(value)})

    def goodbye(self, reason: str) -> None:
        """Core.Goodbye to a GMCP client that announced itself (before a server's close)."""
        if self.mode == "gmcp" and self.state.announced:
            self._session.data_out(goodbye=([plain(reason)], {}))

    def save(self) -> None:
        """Put the state in `server_data` (pushed to the portal, so a reload keeps it)."""
        self._session.server_data[OOB_KEY] = self.state.to_data()

    # ------------------------------------------------------------ the client's messages

    def receive_supports(self, action: str, items: list[Any]) -> None:
        """Core.Supports.Set / Add / Remove; Char.Login.Default when the client newly names
        Char.Login (a parent "Char" is not enough: the login spec asks for the name)."""
        # the GMCP login spec: only a client naming Char.Login itself takes part
        had_login = "char.login" in self.state.supports
        if action == "set":
            self.state.supports_set(items)
        elif action == "add":
            self.state.supports_add(items)
        else:
            self.state.supports_remove(items)
        self.save()
        has_login = "char.login" in self.state.supports
        if has_login and not had_login and not self._session.logged_in:
            self.send("Char.Login.Default", {"type": list(LOGIN_TYPES)})

    def receive_msdp(self, command: str, names: list[Any]) -> None:
        """MSDP's LIST, REPORT, UNREPORT, SEND, RESET."""
        if self.mode != "msdp":
            return  # with GMCP on the portal would send the answers over GMCP
        if command == "list":
            for name in names[:8]:
                self._list(str(name).upper())
        elif command == "report":
            known = self.state.report(names)
            self.save()
            self._send_msdp({v: self._msdp[v] for v in known if v in self._msdp}, force=True)
        elif command == "unreport":
            self.state.unreport(names)
            self.save()
        elif command == "send":
            wanted = [str(n).upper() for n in names[:64]]
            self._send_msdp({v: self._msdp[v] for v in wanted if v in self._msdp}, force=True)
        elif command == "reset" and any(str(n).upper() == "REPORTED_VARIABLES" for n in names):
            self.state.reported.clear()
            self.save()

    def _list(self, name: str) -> None:
        lists: dict[str, list[str]] = {
            "COMMANDS": list(MSDP_COMMANDS),
            "LISTS": ["COMMANDS", "LISTS", "REPORTABLE_VARIABLES", "REPORTED_VARIABLES",
                      "SENDABLE_VARIABLES", "CONFIGURABLE_VARIABLES"],
            "REPORTABLE_VARIABLES": list(MSDP_VARIABLES),
            "SENDABLE_VARIABLES": list(MSDP_VARIABLES),
            "REPORTED_VARIABLES": list(self.state.reported),
            "CONFIGURABLE_VARIABLES": [],
        }
        if name in lists:
            self.send_msdp(name, lists[name])


_UNSET: Final = object()


# ---------------------------------------------------------------- what a game sends


def send(session: ServerSession, package: str, data: Any = None) -> bool:
    """`session.oob.send(package, data)`."""
    return session.oob.send(package, data)


def room_info(session: ServerSession, *, num: int, name: str, area: str = "",
              environment: str = "", exits: Mapping[str, int] | None = None,
              **extra: Any) -> bool:
    """Room.Info (MSDP: ROOM, ROOM_VNUM, ROOM_NAME, ROOM_AREA, ROOM_TERRAIN, ROOM_EXITS).

    `num` is the room's stable integer (mappers key rooms on it); `exits` maps a direction
    ("n", "se", "up", "in") to the number of the room it leads to. `extra` adds fields
    such as `coords="..."` or `details=["shop"]`.
    """
    data = {"num": num, "name": name, "area": area, "environment": environment,
            "exits": dict(exits or {}), **extra}
    return session.oob.send("Room.Info", data)


def room_wrongdir(session: ServerSession, direction: str) -> bool:
    """Room.WrongDir "ne": the player tried an exit that is not there."""
    return session.oob.send("Room.WrongDir", direction)


def char_name(session: ServerSession, name: str, fullname: str | None = None) -> bool:
    """Char.Name (MSDP: CHARACTER_NAME)."""
    return session.oob.send("Char.Name", {"name": name, "fullname": fullname or name})


def char_status(session: ServerSession, **values: Any) -> bool:
    """Char.Status: the whole status the first time, then only the keys that changed
    (MSDP: LEVEL, RACE, CLASS, MONEY from `gold`, EXPERIENCE from `xp`)."""
    return session.oob.send("Char.Status", values)


def char_statusvars(session: ServerSession, **captions: str) -> bool:
    """Char.StatusVars {key: caption}: what the Char.Status keys mean, for a client's UI."""
    return session.oob.send("Char.StatusVars", captions)


_VITAL_PAIRS: Final = (("H", "hp", "maxhp"), ("M", "mp", "maxmp"), ("E", "ep", "maxep"),
                       ("W", "wp", "maxwp"), ("V", "mv", "maxmv"))


def char_vitals(session: ServerSession, **values: Any) -> bool:
    """Char.Vitals, values as strings as IRE sends them (`hp=4500, maxhp=4800`), with a
    `string` ("H:4500/4800 ...") unless given (MSDP: HEALTH, HEALTH_MAX, MANA, ...)."""
    data = {k: str(v) for k, v in values.items()}
    if "string" not in data:
        data["string"] = " ".join(f"{letter}:{data[cur]}/{data.get(top, '?')}"
                                  for letter, cur, top in _VITAL_PAIRS if cur in data)
    return session.oob.send("Char.Vitals", data)


def item(id: int | str, name: str, attrib: str = "", **extra: Any) -> dict[str, Any]:
    """One item as Char.Items carries it: `id` (sent as a string), `name`, `attrib`
    (IRE's letters: "t" takeable, "c" container, "w" worn, "m" monster, ...)."""
    entry: dict[str, Any] = {"id": str(id), "name": name, **extra}
    if attrib:
        entry["attrib"] = attrib
    return entry


def items_list(session: ServerSession, location: str,
               items: Iterable[Mapping[str, Any]]) -> bool:
    """Char.Items.List for `location` "inv", "room" or a container ("rep123")."""
    return session.oob.send("Char.Items.List",
                            {"location": location, "items": [dict(i) for i in items]})


def items_add(session: ServerSession, location: str, entry: Mapping[str, Any]) -> bool:
    """Char.Items.Add: `entry` (see `item`) appeared in `location`."""
    return session.oob.send("Char.Items.Add", {"location": location, "item": dict(entry)})


def items_remove(session: ServerSession, location: str, entry: Mapping[str, Any]) -> bool:
    """Char.Items.Remove: `entry` left `location`."""
    return session.oob.send("Char.Items.Remove", {"location": location, "item": dict(entry)})


def items_update(session: ServerSession, location: str, entry: Mapping[str, Any]) -> bool:
    """Char.Items.Update: `entry` in `location` changed (its name or attrib)."""
    return session.oob.send("Char.Items.Update", {"location": location, "item": dict(entry)})


def comm_channel_text(session: ServerSession, channel: str, talker: str, text: str) -> bool:
    """Comm.Channel.Text: `text` is the line as shown (colour markup is removed)."""
    # a say reaches a whole room: as little work as can be for those that did not ask
    if not session.protocol_flags.get("OOB") or not session.oob.wants("Comm.Channel.Text"):
        return False
    return session.oob.send("Comm.Channel.Text",
                            {"channel": channel, "talker": talker, "text": plain(text)})


def login_result(session: ServerSession, success: bool, message: str = "") -> bool:
    """Char.Login.Result, the answer to Char.Login.Credentials."""
    return session.oob.send("Char.Login.Result", {"success": success, "message": plain(message)})


def goodbye(session: ServerSession, reason: str) -> None:
    """Core.Goodbye (sent by `session.disconnect` by itself)."""
    session.oob.goodbye(reason)


# ---------------------------------------------------------------- what a client sends

BuiltinInput = Callable[["Game", "ServerSession", list[Any], dict[str, Any]],
                        Awaitable[None] | None]


def _hello(game: Game, session: ServerSession, args: list[Any], kwargs: dict[str, Any]) -> None:
    session.oob.state.receive_hello(kwargs)
    session.oob.save()


def _supports(action: str) -> BuiltinInput:
    def receive(game: Game, session: ServerSession, args: list[Any],
                kwargs: dict[str, Any]) -> None:
        session.oob.receive_supports(action, args)
    return receive


def _msdp(command: str) -> BuiltinInput:
    def receive(game: Game, session: ServerSession, args: list[Any],
                kwargs: dict[str, Any]) -> None:
        session.oob.receive_msdp(command, args)
    return receive


async def _credentials(game: Game, session: ServerSession, args: list[Any],
                       kwargs: dict[str, Any]) -> None:
    """Char.Login.Credentials {"account" (or "character"), "password"}: the same throttled
    check as `connect`, then the same login. An empty message (the client knows no
    password) is no attempt: the player logs in by typing."""
    name = kwargs.get("account", kwargs.get("character", kwargs.get("name")))
    password = kwargs.get("password")
    if not name and not password:
        return
    if session.logged_in:
        login_result(session, False, "You are already logged in.")
        return
    if not isinstance(name, str) or not isinstance(password, str) or not name or not password:
        login_result(session, False, "Give an account name and a password.")
        return
    try:
        account = await game.logins.check_password(name, password, session.address)
        await game.login(session, account.uid, account.name)
    except AccountError as exc:
        login_result(session, False, str(exc))
        return
    login_result(session, True, f"Logged in as {account.name}.")


def _names(package: str) -> tuple[str, str]:
    """The names a client's `package` arrives as: the portal's (`supports_set`, Evennia's
    rule) and the dotted one in lower case (a v1 web client sends `Core.Supports.Set`)."""
    lower = package.lower()
    return lower.replace(".", "_").removeprefix("core_"), lower


def _inputs() -> dict[str, BuiltinInput]:
    table: dict[str, BuiltinInput] = {}
    handlers: dict[str, BuiltinInput] = {
        "Core.Hello": _hello,
        "Core.Supports.Set": _supports("set"),
        "Core.Supports.Add": _supports("add"),
        "Core.Supports.Remove": _supports("remove"),
        "Char.Login.Credentials": _credentials,
    }
    for package, handler in handlers.items():
        for name in _names(package):
            table[name] = handler
    for command in MSDP_COMMANDS:
        table["msdp_" + command.lower()] = _msdp(command.lower())
    return table


INPUTS: Final[dict[str, BuiltinInput]] = _inputs()
