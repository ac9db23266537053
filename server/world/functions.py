"""The world's functions for game code (exported by `server.api`), on this server's world.

Example::

    hall = create_object(Room, "Hall", attributes={"desc": "A long hall."})
    door = create_object(Exit, "north", location=hall, destination=yard, aliases=["n"])
    assert search_object("n", location=hall) == [door]
    assert get_object(hall.id) is hall
    schedule(30, "hearth_game.weather.rain", hall)      # hearth_game.weather.rain(hall)
    tid = ticker(60, "hearth_game.weather.tick", hall)  # every minute, until cancelled
    cancel_timer(tid)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from server.world.objects import WorldObject
from server.world.timers import When
from server.world.world import current_world

T = TypeVar("T", bound=WorldObject)


def create_object(typeclass: type[T] | str, key: str, *, location: WorldObject | None = None,
                  home: WorldObject | None = None, destination: WorldObject | None = None,
                  aliases: Iterable[str] = (), tags: Iterable[str | tuple[str, str]] = (),
                  attributes: dict[str, Any] | None = None) -> T:
    """A new object of `typeclass` (a class or its dotted path), stored with the batch.

    `tags` are names or (name, category) pairs; `attributes` go into `db` before
    `at_object_creation` runs. `home` defaults to `location`."""
    return current_world().create(typeclass, key, location=location, home=home,
                                  destination=destination, aliases=aliases, tags=tags,
                                  attributes=attributes)


def get_object(oid: int | str) -> WorldObject | None:
    """The object with id `oid` (12 or "#12"), or None."""
    return current_world().get(oid)


def search_object(query: str, *, location: WorldObject | None = None,
                  typeclass: type | str | None = None, exact: bool | None = None
                  ) -> list[WorldObject]:
    """Objects named `query` (key or alias, any case; or "#12"): in `location` (and the
    location itself) when given, else in the whole world (indexed). Unless `exact`,
    names beginning with the query match when no name is exact; `exact` defaults to
    False in a location and True in the whole world (where `exact=False` scans every
    object)."""
    scopes = None if location is None else [location]
    return current_world().search(query, scopes=scopes, typeclass=typeclass, exact=exact)


def objects_tagged(tag: str, category: str = "") -> list[WorldObject]:
    """Objects with the tag (in the category), indexed, in id order."""
    return current_world().tagged(tag, category)


def objects_of_type(typeclass: type | str, exact: bool = False) -> list[WorldObject]:
    """Objects of a typeclass (with its subclasses unless `exact`), in id order."""
    return current_world().of_type(typeclass, exact)


def schedule(when: When, func: str | Callable[..., Any], obj: WorldObject | None = None,
             *args: Any) -> int:
    """Call `func(obj, *args)` once at `when` (seconds from now, or a datetime), even
    across reloads and crashes: `func` is a module-level function or its dotted path
    ("hearth_game.module.func"), imported when due, so it runs the code of that moment.
    The timer's id (for `cancel_timer`)."""
    timers = current_world().timers
    assert timers is not None
    return timers.schedule(when, func, obj, *args)


def ticker(interval: float, func: str | Callable[..., Any], obj: WorldObject | None = None,
           *args: Any, start: When | None = None) -> int:
    """Call `func(obj, *args)` every `interval` seconds (first at `start`, default one
    interval from now), stored like `schedule`. Its id."""
    timers = current_world().timers
    assert timers is not None
    return timers.schedule(interval if start is None else start, func, obj, *args,
                           interval=interval)


def cancel_timer(tid: int) -> bool:
    """Remove a scheduled call or ticker; False if there was none."""
    timers = current_world().timers
    assert timers is not None
    return timers.cancel(tid)
