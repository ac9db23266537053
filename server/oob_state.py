"""What one client asked for out of band, and what it was last sent (sans-I/O).

Theory of operation. A GMCP client announces the packages it wants with
`Core.Supports.Set ["Char 1", "Room 1", ...]` and changes the set later with
`Core.Supports.Add` / `Core.Supports.Remove`. A package enables all its children: "Char 1"
enables Char.Vitals, Char.Items.List and every other Char.* message; "Char.Items 1" only
the Char.Items.* ones. Core.* is always on. Package names are case-insensitive (the GMCP
spec), so they are kept lower-case. An MSDP client instead names variables with
`REPORT` / `UNREPORT`. Messages whose later sends carry only what changed
(`Char.Status`, `Char.StatusVars`) keep what the client was last sent.

`OobState` holds all of it as plain data (`to_data` / `from_data`), so a session keeps it
in `server_data` and a reload or crash keeps what the client asked. Input from the client
is bounded: at most `MAX_SUPPORTS` packages, `MAX_REPORTED` variables, names of at most
`MAX_NAME` characters; the rest of a hostile list is ignored.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

MAX_SUPPORTS: Final = 64
MAX_REPORTED: Final = 64
MAX_NAME: Final = 64

# Messages sent complete the first time, then only the keys whose values changed.
DIFFED: Final = frozenset({"Char.Status", "Char.StatusVars"})

# The MSDP variables Hearth maps from GMCP messages: variable -> (package, key); a key of
# None is the whole message as a table (MSDP's ROOM).
MSDP_VARIABLES: Final[dict[str, tuple[str, str | None]]] = {
    "CHARACTER_NAME": ("Char.Name", "name"),
    "ROOM": ("Room.Info", None),
    "ROOM_VNUM": ("Room.Info", "num"),
    "ROOM_NAME": ("Room.Info", "name"),
    "ROOM_AREA": ("Room.Info", "area"),
    "ROOM_TERRAIN": ("Room.Info", "environment"),
    "ROOM_EXITS": ("Room.Info", "exits"),
    "HEALTH": ("Char.Vitals", "hp"),
    "HEALTH_MAX": ("Char.Vitals", "maxhp"),
    "MANA": ("Char.Vitals", "mp"),
    "MANA_MAX": ("Char.Vitals", "maxmp"),
    "MOVEMENT": ("Char.Vitals", "mv"),
    "MOVEMENT_MAX": ("Char.Vitals", "maxmv"),
    "LEVEL": ("Char.Status", "level"),
    "RACE": ("Char.Status", "race"),
    "CLASS": ("Char.Status", "class"),
    "MONEY": ("Char.Status", "gold"),
    "EXPERIENCE": ("Char.Status", "xp"),
}
# MSDP's ROOM table names its fields as the spec does.
MSDP_ROOM_FIELDS: Final = {"num": "VNUM", "name": "NAME", "area": "AREA",
                           "environment": "TERRAIN", "exits": "EXITS", "coords": "COORDS"}
MSDP_COMMANDS: Final = ("LIST", "REPORT", "RESET", "SEND", "UNREPORT")
_BY_PACKAGE: Final[dict[str, list[tuple[str, str | None]]]] = {}
for _var, (_package, _key) in MSDP_VARIABLES.items():
    _BY_PACKAGE.setdefault(_package, []).append((_var, _key))


def parse_support(item: Any) -> tuple[str, int] | None:
    """`"Char.Items 1"` -> ("char.items", 1); a missing or bad version counts as 1."""
    if not isinstance(item, str):
        return None
    parts = item.split()
    if not parts or len(parts[0]) > MAX_NAME:
        return None
    digits = parts[1] if len(parts) > 1 else ""
    # isdigit() alone takes "²", which int() refuses: only ASCII digits are a version
    version = int(digits) if digits.isascii() and digits.isdigit() and len(digits) < 6 else 1
    return parts[0].lower(), version


@functools.lru_cache(maxsize=512)
def package_chain(package: str) -> tuple[str, ...]:
    """"Char.Items.List" -> ("char.items.list", "char.items", "char"); () for Core.*, which
    is always on. Cached: a game sends the same few packages to every player."""
    parts = package.lower().split(".")
    if parts[0] == "core":
        return ()
    return tuple(".".join(parts[:i]) for i in range(len(parts), 0, -1))


@dataclass(slots=True)
class OobState:
    """One session's out-of-band state; every method is pure bookkeeping."""

    supports: dict[str, int] = field(default_factory=dict)  # lower-case package -> version
    reported: list[str] = field(default_factory=list)  # MSDP variables, upper-case
    hello: dict[str, str] = field(default_factory=dict)  # Core.Hello: client, version
    sent: dict[str, dict[str, Any]] = field(default_factory=dict)  # DIFFED package -> last
    announced: bool = False  # the client said Core.Hello or Core.Supports.*

    # ------------------------------------------------------------ GMCP

    def wants(self, package: str) -> bool:
        """Whether a message of `package` goes to this client (itself or a parent asked)."""
        chain = package_chain(package)
        if not chain:
            return True
        return not self.supports.keys().isdisjoint(chain)  # once per player per message

    def supports_set(self, items: Iterable[Any]) -> list[str]:
        """Core.Supports.Set: replace the set; returns the packages newly enabled. What was
        last sent is forgotten: the client starts afresh, so the next Char.Status is whole."""
        before = dict(self.supports)
        self.supports.clear()
        self.sent.clear()
        self.announced = True
        return self._add(items, before)

    def supports_add(self, items: Iterable[Any]) -> list[str]:
        """Core.Supports.Add: returns the packages newly enabled."""
        self.announced = True
        return self._add(items, dict(self.supports))

    def supports_remove(self, items: Iterable[Any]) -> None:
        """Core.Supports.Remove ("Char" or "Char 1"); a package's sent state goes with it."""
        self.announced = True
        for item in _bounded(items, MAX_SUPPORTS):
            parsed = parse_support(item)
            if parsed is not None and self.supports.pop(parsed[0], None) is not None:
                for package in list(self.sent):
                    if not self.wants(package):
                        del self.sent[package]

    def _add(self, items: Iterable[Any], before: Mapping[str, int]) -> list[str]:
        new: list[str] = []
        for item in _bounded(items, MAX_SUPPORTS):
            parsed = parse_support(item)
            if parsed is None:
                continue
            name, version = parsed
            if name not in self.supports and len(self.supports) >= MAX_SUPPORTS:
                continue
            self.supports[name] = version
            if name not in before:
                new.append(name)
        return new

    def receive_hello(self, data: Mapping[str, Any]) -> None:
        self.announced = True
        self.hello = {k: str(data[k])[:MAX_NAME] for k in ("client", "version") if k in data}

    def diff(self, package: str, values: Mapping[str, Any]) -> dict[str, Any]:
        """For a DIFFED package: the keys of `values` that differ from what was last sent
        (all of them the first time), recorded as sent. Empty: nothing to send."""
        last = self.sent.setdefault(package, {})
        changed = {k: v for k, v in values.items() if k not in last or last[k] != v}
        last.update(changed)
        return changed

    # ------------------------------------------------------------ MSDP

    def report(self, names: Iterable[Any]) -> list[str]:
        """MSDP REPORT: returns the variables Hearth knows among `names` (upper-case)."""
        known = []
        for name in _bounded(names, MAX_REPORTED):
            var = str(name).upper()[:MAX_NAME]
            if var in MSDP_VARIABLES:
                known.append(var)
                if var not in self.reported and len(self.reported) < MAX_REPORTED:
                    self.reported.append(var)
        return known

    def unreport(self, names: Iterable[Any]) -> None:
        gone = {str(name).upper() for name in _bounded(names, MAX_REPORTED)}
        self.reported = [var for var in self.reported if var not in gone]

    # ------------------------------------------------------------ persistence

    def to_data(self) -> dict[str, Any]:
        return {"supports": dict(self.supports), "reported": list(self.reported),
                "hello": dict(self.hello), "sent": {k: dict(v) for k, v in self.sent.items()},
                "announced": self.announced}

    @classmethod
    def from_data(cls, data: Any) -> OobState:
        """The state `to_data` gave; anything malformed gives a fresh state."""
        if not isinstance(data, dict):
            return cls()
        try:
            return cls(supports={str(k): int(v) for k, v in dict(data["supports"]).items()},
                       reported=[str(v) for v in data["reported"]],
                       hello={str(k): str(v) for k, v in dict(data["hello"]).items()},
                       sent={str(k): dict(v) for k, v in dict(data["sent"]).items()},
                       announced=bool(data["announced"]))
        except (KeyError, TypeError, ValueError):
            return cls()


def msdp_variables(package: str) -> list[str]:
    """The MSDP variables a GMCP message of `package` may set."""
    return [var for var, _ in _BY_PACKAGE.get(package, ())]


def msdp_values(package: str, data: Any) -> dict[str, Any]:
    """The MSDP variables a GMCP message of `package` sets (only keys present in `data`)."""
    if not isinstance(data, Mapping):
        return {}
    values: dict[str, Any] = {}
    for var, key in _BY_PACKAGE.get(package, ()):
        if key is None:
            values[var] = {MSDP_ROOM_FIELDS.get(k, k.upper()): v for k, v in data.items()}
        elif key in data:
            values[var] = data[key]
    return values


def _bounded(items: Iterable[Any], limit: int) -> list[Any]:
    if isinstance(items, str | bytes) or not isinstance(items, Iterable):
        return [items]
    out: list[Any] = []
    for item in items:
        if len(out) >= limit:
            break
        out.append(item)
    return out
