"""The default game's typeclasses: code here, data in the database.

Every object of the world names one of these classes by its path
(`hearth_game.typeclasses.Room`, ...). Edit a method and `reload`: every existing object
runs the new code at once, with its stored data (`self.db`) unchanged.
"""

from __future__ import annotations

from typing import Any

from server.api import Character as BaseCharacter
from server.api import Exit as BaseExit
from server.api import Room as BaseRoom
from server.api import Thing as BaseThing
from server.api import WorldObject, cancel_timer, schedule

from . import oob

# the usual short names of directions (what `Room.Info` exits are keyed by)
DIRECTIONS = {"north": "n", "south": "s", "east": "e", "west": "w", "northeast": "ne",
              "northwest": "nw", "southeast": "se", "southwest": "sw", "up": "u",
              "down": "d", "in": "in", "out": "out"}
OPPOSITE = {"north": "south", "south": "north", "east": "west", "west": "east",
            "northeast": "southwest", "southwest": "northeast", "northwest": "southeast",
            "southeast": "northwest", "up": "down", "down": "up", "in": "out", "out": "in"}

# how others see someone arrive who left by that exit ("arrives from the south.")
ARRIVING = {way: f"from the {OPPOSITE[way]}" for way in
            ("north", "south", "east", "west", "northeast", "northwest", "southeast",
             "southwest")}
ARRIVING.update(up="from below", down="from above", out="from inside")
ARRIVING["in"] = "from outside"


def direction_of(exit_: WorldObject) -> str:
    """The short direction an exit is known by ("n", "u", "in"), else its key."""
    key = exit_.key.lower()
    if key in DIRECTIONS:
        return DIRECTIONS[key]
    for alias in exit_.aliases:
        if alias.lower() in DIRECTIONS:
            return DIRECTIONS[alias.lower()]
    return key


def join(names: list[str]) -> str:
    return ", ".join(names)


class Room(BaseRoom):
    """A place. `db.desc`, `db.area`, `db.environment` (for clients' mappers) and
    `db.called` ("the hall": how arrivals and departures name it)."""

    def return_appearance(self, looker: WorldObject | None = None, **kwargs: Any) -> str:
        lines = [f"|c{self.get_display_name(looker)}|n"]
        desc = self.get_display_desc(looker)
        if desc:
            lines.append(desc)
        lines.extend(self.extra_lines(looker))
        exits = [e.get_display_name(looker) for e in self.exits]
        lines.append("|wExits:|n " + (join(exits) if exits else "none"))
        others = [o for o in self.contents if o.destination is None and o is not looker]
        people = [o.get_display_name(looker) for o in others if isinstance(o, Character)]
        things = [o.get_display_name(looker) for o in others if not isinstance(o, Character)]
        if people:
            lines.append("|wCharacters:|n " + join(people))
        if things:
            lines.append("|wYou see:|n " + join(things))
        return "\n".join(lines)

    def extra_lines(self, looker: WorldObject | None) -> list[str]:
        """Lines the room's things add to its description (the fire's state)."""
        return [line for o in self.contents if isinstance(o, Thing)
                for line in [o.room_line()] if line]

    def called(self) -> str:
        return str(self.db.called or f"the {self.key.lower()}")


class Exit(BaseExit):
    """A way out; its key is a direction or a name (`door`), aliases the short forms."""

    def at_traverse(self, traversing_object: WorldObject, target_location: WorldObject,
                    **kwargs: Any) -> None:
        source = traversing_object.location
        if traversing_object.move_to(target_location, exit=self, **kwargs):
            self.at_post_traverse(traversing_object, source, **kwargs)
        else:
            self.at_failed_traverse(traversing_object, **kwargs)


class Character(BaseCharacter):
    """A player's character, with a little state for clients' gauges."""

    def at_object_creation(self) -> None:
        self.db.hp, self.db.maxhp = 20, 20
        self.db.mp, self.db.maxmp = 10, 10
        self.db.level, self.db.gold = 1, 5

    def where(self) -> str:
        here = self.location
        return here.called() if isinstance(here, Room) else "the game"

    def at_post_puppet(self, **kwargs: Any) -> None:
        if self.location is not None:
            self.location.msg_contents(f"{self.key} has entered {self.where()}.",
                                       exclude=[self])
            oob.items_add_to_room(self.location, self, exclude=self)

    def at_post_unpuppet(self, session: Any = None, **kwargs: Any) -> None:
        if self.location is not None and not self.sessions:
            self.location.msg_contents(f"{self.key} has left {self.where()}.", exclude=[self])
            oob.items_remove_from_room(self.location, self, exclude=self)

    def announce_move_from(self, destination: WorldObject | None, **kwargs: Any) -> None:
        here = self.location
        if here is None or not self.sessions:
            return
        exit_ = kwargs.get("exit")
        way = f" {exit_.key}" if exit_ is not None and exit_.key.lower() in DIRECTIONS else ""
        here.msg_contents(f"{self.key} leaves{way}.", exclude=[self])

    def announce_move_to(self, source_location: WorldObject | None, **kwargs: Any) -> None:
        here = self.location
        if here is None or not self.sessions:
            return
        exit_ = kwargs.get("exit")
        way = exit_.key.lower() if exit_ is not None else ""
        back = f" {ARRIVING[way]}" if way in ARRIVING else ""
        here.msg_contents(f"{self.key} arrives{back}.", exclude=[self])

    def at_post_move(self, source_location: WorldObject | None, **kwargs: Any) -> None:
        if source_location is not None:  # the item panels of those who saw it go
            oob.items_remove_from_room(source_location, self, exclude=self)
        if self.location is not None:
            oob.items_add_to_room(self.location, self, exclude=self)
        if self.location is None or not self.sessions:
            return
        self.msg(self.location.return_appearance(self))
        for session in self.sessions:
            oob.send_room(session, self)

    def vitals(self) -> dict[str, int]:
        db = self.db
        return {"hp": db.hp or 0, "maxhp": db.maxhp or 0, "mp": db.mp or 0,
                "maxmp": db.maxmp or 0}


class Thing(BaseThing):
    """Something that can be picked up (unless `db.fixed`: then `db.fixed` says why not)."""

    takes_things = False  # whether `put X in` this works

    def at_pre_get(self, getter: WorldObject, **kwargs: Any) -> bool:
        if self.db.fixed:
            getter.msg(str(self.db.fixed) if isinstance(self.db.fixed, str)
                       else f"You cannot take {self.key}.")
            return False
        return True

    def room_line(self) -> str:
        """A line this thing adds to its room's description ("" for none)."""
        return ""

    def item_attrib(self) -> str:
        """IRE's Char.Items letters: t takeable, c container."""
        return "" if self.db.fixed else "t"


class Container(Thing):
    """A thing other things can be put in (`put X in Y`, `get X from Y`)."""

    takes_things = True

    def get_display_desc(self, looker: WorldObject | None = None, **kwargs: Any) -> str:
        desc = super().get_display_desc(looker)
        inside = [o.key for o in self.contents]
        return f"{desc}\nIn it: {join(inside) if inside else 'nothing'}."

    def item_attrib(self) -> str:
        return super().item_attrib() + "c"


class Readable(Thing):
    """A sign or book: `read` it (or look at it) to see `db.text`."""

    def get_display_desc(self, looker: WorldObject | None = None, **kwargs: Any) -> str:
        desc = super().get_display_desc(looker)
        return f"{desc}\nIt reads:\n{self.db.text}" if self.db.text else desc


FIRE_STATES = ("cold, grey ashes", "a few glowing embers", "a low, sulking fire",
               "a steady, crackling fire", "a roaring blaze")
FIRE_BURN_EVERY = 300.0  # seconds between two states of the fire (db.burn_every)


class Fire(Thing):
    """The hall's fire: it burns down one state every `db.burn_every` seconds on a stored
    timer (a reload, a crash or a restart does not reset it); a log put in it builds it
    up to a blaze again."""

    takes_things = True

    def at_object_creation(self) -> None:
        self.db.fixed = "The fire is far too hot to pick up."
        self.db.level = len(FIRE_STATES) - 1
        self.db.burn_every = FIRE_BURN_EVERY

    def state(self) -> str:
        level = max(0, min(int(self.db.level or 0), len(FIRE_STATES) - 1))
        return FIRE_STATES[level]

    def room_line(self) -> str:
        return f"In the hearth burns {self.state()}." if self.db.level else \
            "The hearth holds only cold, grey ashes."

    def get_display_desc(self, looker: WorldObject | None = None, **kwargs: Any) -> str:
        return f"{super().get_display_desc(looker)}\nIt is {self.state()}."

    def kindle(self) -> None:
        """(Re)start the stored timer that burns the fire down."""
        if isinstance(self.db.timer, int):
            cancel_timer(self.db.timer)
        self.db.timer = None
        if self.db.level:
            self.db.timer = schedule(float(self.db.burn_every or FIRE_BURN_EVERY),
                                     "hearth_game.typeclasses.burn_down", self)

    def at_pre_object_receive(self, arriving_object: WorldObject,
                              source_location: WorldObject | None, **kwargs: Any) -> bool:
        return arriving_object.key.lower().endswith("log")

    def at_object_receive(self, moved_obj: WorldObject, source_location: WorldObject | None,
                          **kwargs: Any) -> None:
        moved_obj.delete()
        self.db.level = len(FIRE_STATES) - 1
        if self.location is not None:
            self.location.msg_contents("The log catches; the fire roars up the chimney.")
        self.kindle()


def burn_down(fire: Fire) -> None:
    """The fire's stored timer (by its path, so a reload runs the code of that moment)."""
    fire.db.timer = None
    fire.db.level = max(0, int(fire.db.level or 0) - 1)
    if fire.location is not None:
        fire.location.msg_contents(f"The fire burns down: now it is {fire.state()}.")
    fire.kindle()
