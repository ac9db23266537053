"""The base typeclasses a game subclasses, and how a stored path finds its class.

`Room` has no location, `Exit` has a destination, `Character` is what an account's session
puppets, `Thing` is everything else. A path is the class's `module.QualName`; the game
package is imported as `hearth_game`, so `game/typeclasses.py`'s `Sword` is stored as
`hearth_game.typeclasses.Sword` (a path written `game.typeclasses.Sword` means the same).

A path that no longer imports (the module or class was removed, or raises on import)
loads as its nearest base class that still does (the store keeps each path's bases), with
one warning per path in the log: no object is lost or refused, and the object keeps its
stored path, so restoring the class restores it. A rename is one line in the game::

    typeclass_renamed("hearth_game.items.Sword", "hearth_game.weapons.Sword")

after which every object of the old path loads as the new class and is stored with the
new path at the server's first commit; the line may be deleted after one reload.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from server.world.objects import WorldObject

log = logging.getLogger("server.world")

GAME_PACKAGE = "hearth_game"

# old path -> new path, registered by the game at import (`typeclass_renamed`)
RENAMES: dict[str, str] = {}


class Room(WorldObject):
    """A place. Rooms have no location; exits lead between them."""

    __slots__ = ()

    def get_display_desc(self, looker: WorldObject | None = None, **kwargs: Any) -> str:
        desc = self.db.desc
        return str(desc) if desc else ""


class Exit(WorldObject):
    """A way from its location to its `destination`, used by typing its key or alias."""

    __slots__ = ()

    def at_object_creation(self) -> None:
        pass


class Character(WorldObject):
    """What a player plays: puppeted by the sessions of the account that owns it."""

    __slots__ = ()

    def at_post_move(self, source_location: WorldObject | None, **kwargs: Any) -> None:
        """Players see where they arrived."""
        if self._location is not None and self.sessions:
            self.msg(self._location.return_appearance(self))

    def at_post_puppet(self, **kwargs: Any) -> None:
        if self._location is not None:
            self._location.msg_contents(f"{self.get_display_name()} has entered the game.",
                                        exclude=[self])

    def at_post_unpuppet(self, session: Any = None, **kwargs: Any) -> None:
        if self._location is not None and not self.sessions:
            self._location.msg_contents(f"{self.get_display_name()} has left the game.",
                                        exclude=[self])


class Thing(WorldObject):
    """An object that can be picked up, dropped and given."""

    __slots__ = ()


BASES: tuple[type[WorldObject], ...] = (Room, Exit, Character, Thing, WorldObject)


def typeclass_renamed(old: str, new: str) -> None:
    """Objects stored with path `old` load as `new` (and are stored so at the next commit)."""
    RENAMES[normalise(old)] = normalise(new)


def path_of(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def normalise(path: str) -> str:
    """`game.x.Y` (the default game's folder name) means `hearth_game.x.Y`."""
    if path.startswith("game."):
        return GAME_PACKAGE + path[4:]
    return path


def bases_of(cls: type[WorldObject]) -> list[str]:
    """The paths of `cls`'s typeclass bases, nearest first (what a fallback tries)."""
    return [path_of(base) for base in cls.__mro__[1:]
            if isinstance(base, type) and issubclass(base, WorldObject)]


def import_class(path: str) -> type[WorldObject]:
    """The class at `path`; ImportError (with why) if it does not import or is not a
    typeclass. Nested classes (`module.Outer.Inner`) work."""
    parts = path.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
                continue  # not a module: try a shorter one (a nested class)
            raise ImportError(f"{path}: {exc}") from exc
        except Exception as exc:  # the module raises on import: as good as gone
            raise ImportError(f"{path}: importing {module_name} raised {exc!r}") from exc
        target: Any = module
        try:
            for attr in parts[cut:]:
                target = getattr(target, attr)
        except AttributeError:
            raise ImportError(f"{path}: {module_name} has no {'.'.join(parts[cut:])}") from None
        if not (isinstance(target, type) and issubclass(target, WorldObject)):
            raise ImportError(f"{path} is not a typeclass (a WorldObject subclass)")
        return target
    raise ImportError(f"{path}: no such module")


class Typeclasses:
    """Resolves stored paths to classes, with the fallback and its one warning per path.

    `known_bases` maps a path to its bases' paths as they were when objects of it were
    made (the store's `world_typeclasses` table)."""

    def __init__(self, known_bases: dict[str, list[str]] | None = None) -> None:
        self.known_bases: dict[str, list[str]] = dict(known_bases or {})
        self.new_bases: dict[str, list[str]] = {}  # to store at the next commit
        self._cache: dict[str, type[WorldObject]] = {}
        self.warned: set[str] = set()

    def resolve(self, path: str, default: type[WorldObject] = WorldObject) -> type[WorldObject]:
        """The class for `path`, or its nearest importable base (warning once)."""
        cls = self._cache.get(path)
        if cls is None:
            cls = self._cache[path] = self._find(path, default)
        return cls

    def note(self, cls: type[WorldObject]) -> str:
        """The path of `cls`, remembering its bases for a later fallback."""
        path = path_of(cls)
        self._cache.setdefault(path, cls)
        if path not in self.known_bases:
            self.known_bases[path] = self.new_bases[path] = bases_of(cls)
        return path

    def _find(self, path: str, default: type[WorldObject]) -> type[WorldObject]:
        target = RENAMES.get(path, path)
        try:
            return import_class(normalise(target))
        except ImportError as exc:
            why = str(exc)
        for base in self.known_bases.get(path, []):
            try:
                cls = import_class(base)
            except ImportError:
                continue
            self._warn(path, why, path_of(cls))
            return cls
        self._warn(path, why, path_of(default))
        return default

    def _warn(self, path: str, why: str, used: str) -> None:
        if path not in self.warned:
            self.warned.add(path)
            log.warning("typeclass %s does not import (%s); its objects load as %s", path,
                        why, used)
