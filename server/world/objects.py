"""The world's objects: data the store keeps, plus the class their typeclass path names.

`WorldObject` is the base of every typeclass (`server.world.typeclasses` has Room, Exit,
Character and Thing). Its fields are slots, and every write goes through the world, which
notes the object for the next commit and, inside a command, saves its old state for a
rollback. Game subclasses may add methods and class attributes freely; state they keep on
`self` directly (`self.foo = 1`) is *not* stored: use `self.db.foo` (stored) or
`self.ndb.foo` (memory only).

Hook order of `move_to` (Evennia's): `self.at_pre_move(dest)`, `source.at_pre_object_leave
(self, dest)`, `dest.at_pre_object_receive(self, source)`: any False stops the move; then
`source.at_object_leave(self, dest)`, the move, `dest.at_object_receive(self, source)`,
`self.at_post_move(source)`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import server.world.codec as codec

if TYPE_CHECKING:
    from server.session import ServerSession
    from server.world.world import World


class ObjectDeleted(RuntimeError):
    """The object was deleted; a reference to it is stale."""


def _mutable(value: Any) -> bool:
    return isinstance(value, list | dict | set | bytearray)


class DbHandler:
    """`obj.db`: stored attributes as a namespace. A missing one reads as None.

    `obj.db.hp = 10` is written with the command's batch; `del obj.db.hp` removes it.
    Reading a list or dict notes the object for the commit too, so changing it in place
    (`obj.db.items.append(x)`) is stored as well.
    """

    __slots__ = ("_obj",)

    def __init__(self, obj: WorldObject) -> None:
        object.__setattr__(self, "_obj", obj)

    def __getattr__(self, name: str) -> Any:
        obj: WorldObject = object.__getattribute__(self, "_obj")
        return obj.attributes.get(name)

    def __setattr__(self, name: str, value: Any) -> None:
        obj: WorldObject = object.__getattribute__(self, "_obj")
        obj.attributes.add(name, value)

    def __delattr__(self, name: str) -> None:
        obj: WorldObject = object.__getattribute__(self, "_obj")
        obj.attributes.remove(name)


class AttributeHandler:
    """`obj.attributes`: the stored attributes with methods (`get`, `add`, `has`, ...)."""

    __slots__ = ("_obj",)

    def __init__(self, obj: WorldObject) -> None:
        self._obj = obj

    def get(self, name: str, default: Any = None) -> Any:
        obj = self._obj
        attrs = obj._world._attrs_of(obj)
        value = attrs.get(name, default)
        if _mutable(value):
            obj._world._touch(obj)
        elif isinstance(value, WorldObject) and not value._alive:
            return None  # as it reads back once stored
        return value

    def add(self, name: str, value: Any) -> None:
        """Store `value` (TypeError at once if it cannot be stored)."""
        obj = self._obj
        obj._world._check_storable(value)
        obj._world._touch(obj)
        obj._world._attrs_of(obj)[name] = value

    def has(self, name: str) -> bool:
        return name in self._obj._world._attrs_of(self._obj)

    def remove(self, name: str) -> None:
        obj = self._obj
        if name in obj._world._attrs_of(obj):
            obj._world._touch(obj)
            del obj._world._attrs_of(obj)[name]

    def all(self) -> dict[str, Any]:
        """A copy of every stored attribute."""
        obj = self._obj
        obj._world._touch(obj)  # the values are the live ones: changing them is stored
        return dict(obj._world._attrs_of(obj))


class TagHandler:
    """`obj.tags`: tags with an optional category, lower-cased, indexed for search."""

    __slots__ = ("_obj",)

    def __init__(self, obj: WorldObject) -> None:
        self._obj = obj

    def add(self, tag: str, category: str = "") -> None:
        self._obj._world._add_tag(self._obj, tag.lower(), category.lower())

    def remove(self, tag: str, category: str = "") -> None:
        self._obj._world._remove_tag(self._obj, tag.lower(), category.lower())

    def has(self, tag: str, category: str = "") -> bool:
        return (tag.lower(), category.lower()) in (self._obj._tags or ())

    def all(self, category: str | None = None) -> list[str]:
        """The tags (of one category when given)."""
        cat = None if category is None else category.lower()
        return [t for t, c in (self._obj._tags or ()) if cat is None or c == cat]


class AliasHandler:
    """`obj.aliases`: other names the object is found by."""

    __slots__ = ("_obj",)

    def __init__(self, obj: WorldObject) -> None:
        self._obj = obj

    def add(self, *aliases: str) -> None:
        obj = self._obj
        new = tuple(a for a in aliases if a not in obj._aliases)
        if new:
            obj._world._set_names(obj, obj._key, obj._aliases + new)

    def remove(self, *aliases: str) -> None:
        obj = self._obj
        obj._world._set_names(obj, obj._key, tuple(a for a in obj._aliases if a not in aliases))

    def all(self) -> list[str]:
        return list(self._obj._aliases)

    def __iter__(self) -> Iterator[str]:
        return iter(self._obj._aliases)

    def __contains__(self, alias: object) -> bool:
        return alias in self._obj._aliases


class WorldObject:
    """One persistent object. Make them with `create_object` (`server.api`), never directly.

    Example (a typeclass in the game package)::

        from server.api import Thing, create_object

        class Sword(Thing):
            def at_object_creation(self) -> None:   # once, when it is made
                self.db.damage = 4

            def swing(self) -> str:                 # change it and reload: every
                return f"{self.key} hits for {self.db.damage}"  # sword swings anew

        sword = create_object(Sword, "sword", location=ctx.caller, aliases=["blade"])
    """

    __slots__ = (
        "__dict__",
        "__weakref__",
        "_aliases",
        "_alive",
        "_attrs",
        "_contents",
        "_destination",
        "_home",
        "_key",
        "_location",
        "_ndb",
        "_path",
        "_raw",
        "_tags",
        "_world",
        "id",
    )

    id: int
    _world: World
    _key: str
    _aliases: tuple[str, ...]
    _path: str
    _location: WorldObject | None
    _home: WorldObject | None
    _destination: WorldObject | None
    _tags: tuple[tuple[str, str], ...] | None
    _attrs: dict[str, Any] | None  # decoded on first use (`_raw` until then)
    _raw: bytes | None
    _ndb: SimpleNamespace | None
    _contents: dict[WorldObject, None] | None  # what is here, in arrival order
    _alive: bool

    def __init__(self, world: World, oid: int, key: str, path: str) -> None:
        self.id = oid
        self._world = world
        self._key = key
        self._aliases = ()
        self._path = path
        self._location = self._home = self._destination = None
        self._tags = None
        self._attrs = None
        self._raw = None
        self._ndb = None
        self._contents = None
        self._alive = True

    # ------------------------------------------------------------ identity and names

    @property
    def dbref(self) -> str:
        return f"#{self.id}"

    @property
    def key(self) -> str:
        return self._key

    @key.setter
    def key(self, value: str) -> None:
        self._world._set_names(self, str(value), self._aliases)

    @property
    def name(self) -> str:
        return self._key

    @property
    def aliases(self) -> AliasHandler:
        return AliasHandler(self)

    @property
    def typeclass_path(self) -> str:
        """The dotted path of this object's class as stored (what a reload imports)."""
        return self._path

    @property
    def world(self) -> World:
        return self._world

    @property
    def is_deleted(self) -> bool:
        return not self._alive

    def is_typeclass(self, typeclass: type | str, exact: bool = False) -> bool:
        """Whether this object is of `typeclass` (a class or a path; a path that does
        not import matches the objects stored with it)."""
        return matches(self, self._path, self._world._class_or_path(typeclass), exact)

    def swap_typeclass(self, typeclass: type[WorldObject] | str) -> None:
        """Make this object an instance of another typeclass, keeping its data."""
        self._world._swap_typeclass(self, typeclass)

    # ------------------------------------------------------------ data

    @property
    def db(self) -> Any:
        """Stored attributes: `obj.db.hp = 10` survives reload, crash and restart."""
        return DbHandler(self)

    @property
    def ndb(self) -> Any:
        """Memory-only attributes: gone after a reload (`obj.ndb.target = other`)."""
        if self._ndb is None:
            self._ndb = SimpleNamespace()
        return self._ndb

    @property
    def attributes(self) -> AttributeHandler:
        return AttributeHandler(self)

    @property
    def tags(self) -> TagHandler:
        return TagHandler(self)

    # ------------------------------------------------------------ where it is

    @property
    def location(self) -> WorldObject | None:
        return self._location

    @location.setter
    def location(self, value: WorldObject | None) -> None:
        """Set without hooks (use `move_to` for a move that runs them)."""
        self._world._set_location(self, value)

    @property
    def home(self) -> WorldObject | None:
        return self._home

    @home.setter
    def home(self, value: WorldObject | None) -> None:
        self._world._set_link(self, "_home", value)

    @property
    def destination(self) -> WorldObject | None:
        return self._destination

    @destination.setter
    def destination(self, value: WorldObject | None) -> None:
        self._world._set_link(self, "_destination", value)

    @property
    def contents(self) -> list[WorldObject]:
        """What is here, in the order it arrived."""
        return list(self._contents or ())

    @property
    def exits(self) -> list[WorldObject]:
        """The contents that lead somewhere (have a destination)."""
        return [o for o in self._contents or () if o._destination is not None]

    def contents_except(self, *excluded: WorldObject) -> list[WorldObject]:
        return [o for o in self._contents or () if o not in excluded]

    @property
    def sessions(self) -> list[ServerSession]:
        """The sessions puppeting this object (empty for most objects)."""
        return self._world.sessions_of(self)

    @property
    def account_id(self) -> int | None:
        """The account (uid) that owns this object as a character, if any."""
        return self._world.owner_of(self)

    # ------------------------------------------------------------ actions

    def move_to(self, destination: WorldObject | None, quiet: bool = False,
                move_hooks: bool = True, **kwargs: Any) -> bool:
        """Move here with the hooks (see the module docstring); False if a hook refused."""
        source = self._location
        if move_hooks:
            if not self.at_pre_move(destination, **kwargs):
                return False
            if source is not None and not source.at_pre_object_leave(self, destination,
                                                                     **kwargs):
                return False
            if destination is not None and not destination.at_pre_object_receive(
                    self, source, **kwargs):
                return False
            if not quiet:
                self.announce_move_from(destination, **kwargs)
            if source is not None:
                source.at_object_leave(self, destination, **kwargs)
        self._world._set_location(self, destination)
        if move_hooks:
            if not quiet:
                self.announce_move_to(source, **kwargs)
            if destination is not None:
                destination.at_object_receive(self, source, **kwargs)
            self.at_post_move(source, **kwargs)
        return True

    def delete(self) -> bool:
        """Delete this object (False if `at_object_delete` refused). What it held goes to
        its home, else to its location; exits leading here are deleted with it."""
        return self._world.delete(self)

    def msg(self, text: str | None = None, from_obj: WorldObject | None = None,
            **kwargs: Any) -> None:
        """Send to the sessions puppeting this object (nothing when none do)."""
        if not self.at_msg_receive(text, from_obj, **kwargs):
            return
        for session in self._world.sessions_of(self):
            session.msg(text, **kwargs)

    def msg_contents(self, text: str, exclude: Iterable[WorldObject] = (),
                     from_obj: WorldObject | None = None, **kwargs: Any) -> None:
        """Send `text` to everything here (to puppets' players), but `exclude`."""
        skip = set(exclude)
        for obj in self.contents:
            if obj not in skip:
                obj.msg(text, from_obj=from_obj, **kwargs)

    def search(self, query: str, *, location: WorldObject | None = None,
               global_search: bool = False, quiet: bool = False,
               typeclass: type | str | None = None) -> Any:
        """Find an object by key, alias or `#id`, as this object sees it.

        Looks in this object's contents and its location's (or only in `location`), or
        everywhere with `global_search` (exact names only there). "me" (or "self") is
        this object and "here" its location. Exact names first, then names beginning
        with the query. Returns the one match, or None after telling this object why (no
        match, or several); with `quiet` it returns the list of matches and tells nothing.
        """
        word = query.strip().lower()
        if word in ("me", "self", "here"):
            found_self = self._location if word == "here" else self
            if quiet:
                return [] if found_self is None else [found_self]
            if found_self is None:
                self.msg(f"Could not find '{query}'.")
            return found_self
        scopes: list[WorldObject] | None
        if global_search:
            scopes = None
        elif location is not None:
            scopes = [location]
        else:
            scopes = [self] + ([self._location] if self._location is not None else [])
        found = self._world.search(query, scopes=scopes, typeclass=typeclass)
        if quiet:
            return found
        if len(found) == 1:
            return found[0]
        if not found:
            self.msg(f"Could not find '{query}'.")
        else:
            names = ", ".join(f"{o.get_display_name(self)}({o.dbref})" for o in found[:10])
            self.msg(f"More than one match for '{query}': {names}.")
        return None

    # ------------------------------------------------------------ appearance

    def get_display_name(self, looker: WorldObject | None = None, **kwargs: Any) -> str:
        return self._key

    def get_display_desc(self, looker: WorldObject | None = None, **kwargs: Any) -> str:
        desc = self.db.desc
        return str(desc) if desc else "You see nothing special."

    def return_appearance(self, looker: WorldObject | None = None, **kwargs: Any) -> str:
        """What `look` shows: name, description, exits, who and what is here."""
        lines = [f"|c{self.get_display_name(looker)}|n", self.get_display_desc(looker)]
        exits = [e.get_display_name(looker) for e in self.exits]
        if exits:
            lines.append("|wExits:|n " + ", ".join(exits))
        others = [o for o in self._contents or () if o._destination is None and o is not looker]
        people = [o.get_display_name(looker) for o in others if o.sessions]
        things = [o.get_display_name(looker) for o in others if not o.sessions]
        if people:
            lines.append("|wHere:|n " + ", ".join(people))
        if things:
            lines.append("|wYou see:|n " + ", ".join(things))
        return "\n".join(lines)

    # ------------------------------------------------------------ hooks (Evennia's names)

    def at_object_creation(self) -> None:
        """Once, when the object is first made (not on reload). Set defaults here."""

    def at_init(self) -> None:
        """Whenever a server loads this object (every start and reload); keep it cheap.
        Only called for classes that override it."""

    def at_object_delete(self) -> bool:
        """Before deletion; return False to refuse it."""
        return True

    def at_pre_move(self, destination: WorldObject | None, **kwargs: Any) -> bool:
        return True

    def at_pre_object_leave(self, leaving_object: WorldObject,
                            destination: WorldObject | None, **kwargs: Any) -> bool:
        return True

    def at_pre_object_receive(self, arriving_object: WorldObject,
                              source_location: WorldObject | None, **kwargs: Any) -> bool:
        return True

    def at_object_leave(self, moved_obj: WorldObject, target_location: WorldObject | None,
                        **kwargs: Any) -> None:
        pass

    def at_object_receive(self, moved_obj: WorldObject, source_location: WorldObject | None,
                          **kwargs: Any) -> None:
        pass

    def at_post_move(self, source_location: WorldObject | None, **kwargs: Any) -> None:
        pass

    def announce_move_from(self, destination: WorldObject | None, **kwargs: Any) -> None:
        """Tell the room being left (only for objects someone puppets)."""
        if self._location is not None and self.sessions:
            self._location.msg_contents(f"{self.get_display_name()} leaves.", exclude=[self])

    def announce_move_to(self, source_location: WorldObject | None, **kwargs: Any) -> None:
        if self._location is not None and self.sessions:
            self._location.msg_contents(f"{self.get_display_name()} arrives.", exclude=[self])

    def at_pre_get(self, getter: WorldObject, **kwargs: Any) -> bool:
        return True

    def at_get(self, getter: WorldObject, **kwargs: Any) -> None:
        pass

    def at_pre_drop(self, dropper: WorldObject, **kwargs: Any) -> bool:
        return True

    def at_drop(self, dropper: WorldObject, **kwargs: Any) -> None:
        pass

    def at_pre_give(self, giver: WorldObject, getter: WorldObject, **kwargs: Any) -> bool:
        return True

    def at_give(self, giver: WorldObject, getter: WorldObject, **kwargs: Any) -> None:
        pass

    def at_msg_receive(self, text: str | None = None, from_obj: WorldObject | None = None,
                       **kwargs: Any) -> bool:
        """Before `msg` reaches this object's players; False drops the message."""
        return True

    def at_traverse(self, traversing_object: WorldObject, target_location: WorldObject,
                    **kwargs: Any) -> None:
        """An exit is used: by default the traverser moves to the exit's destination."""
        source = traversing_object.location
        if traversing_object.move_to(target_location, **kwargs):
            self.at_post_traverse(traversing_object, source, **kwargs)
        else:
            self.at_failed_traverse(traversing_object, **kwargs)

    def at_post_traverse(self, traversing_object: WorldObject,
                         source_location: WorldObject | None, **kwargs: Any) -> None:
        pass

    def at_failed_traverse(self, traversing_object: WorldObject, **kwargs: Any) -> None:
        traversing_object.msg("You cannot go there.")

    def at_pre_puppet(self, session: ServerSession, **kwargs: Any) -> None:
        pass

    def at_post_puppet(self, **kwargs: Any) -> None:
        """A session took this object (at login). Not called again when sessions are bound
        back after a reload or crash."""

    def at_post_unpuppet(self, session: ServerSession | None = None, **kwargs: Any) -> None:
        pass

    def __repr__(self) -> str:
        state = "" if self._alive else " deleted"
        return f"<{type(self).__name__} #{self.id} {self._key!r}{state}>"


def matches(obj: WorldObject, path: str, wanted: type | str, exact: bool) -> bool:
    """Whether `obj` (stored with typeclass `path`) is `wanted`: a class (exactly, or a
    subclass) or a path that did not import (then the stored path must be it)."""
    if isinstance(wanted, str):
        return path == wanted
    return type(obj) is wanted if exact else isinstance(obj, wanted)


codec.REFERENCE.append(WorldObject)
