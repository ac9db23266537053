"""Out-of-band (GMCP/MSDP) input functions of the default game.

The portal names GMCP packages the way Evennia does: `Core.Ping` arrives as `ping`,
`Char.Echo` as `char_echo`, and output named `ping` or `char_echo` goes back out as
`Core.Ping` or `Char.Echo` (over MSDP as `PING` / `CHAR_ECHO` for an MSDP client).

Hearth itself answers Core.Hello, Core.Supports.Set/Add/Remove, Char.Login.Credentials
and MSDP's LIST/REPORT/SEND (`server/oob.py`); an inputfunc here of the same name
(`supports_set`, `char_login_credentials`, `msdp_report`, ...) replaces its handler. To
send room, character and item data to the clients that asked, use `server.api.oob`.
"""

from __future__ import annotations

from typing import Any

from server.api import WorldObject, inputfunc, oob
from server.session import ServerSession


@inputfunc("ping")
def ping(session: ServerSession, args: list[Any], kwargs: dict[str, Any]) -> None:
    """Core.Ping: answered at once, so a client can time its round trip."""
    session.data_out(ping=(args, kwargs))


@inputfunc("char_echo")
def char_echo(session: ServerSession, args: list[Any], kwargs: dict[str, Any]) -> None:
    """Char.Echo: the data sent back unchanged (a test of the whole OOB path)."""
    session.data_out(char_echo=(args, kwargs))


# ---------------------------------------------------------------- what the game sends
# Room.Info, Char.* and Char.Items.* for clients' mappers, gauges and item panels; each
# reaches only a client that asked for that package (Core.Supports.Set / MSDP REPORT).


def room_info(session: ServerSession, room: WorldObject) -> None:
    """Room.Info: `num` is the room's id (stable: ids are never reused)."""
    from .typeclasses import direction_of

    exits = {direction_of(e): e.destination.id for e in room.exits
             if e.destination is not None}
    oob.room_info(session, num=room.id, name=room.key, area=str(room.db.area or ""),
                  environment=str(room.db.environment or ""), exits=exits)


def item_of(obj: WorldObject) -> dict[str, Any]:
    attrib = getattr(obj, "item_attrib", lambda: "")()
    return oob.item(obj.id, obj.key, attrib)


def room_items(room: WorldObject, viewer: WorldObject) -> list[dict[str, Any]]:
    """What Char.Items lists for the room: things and other characters, not exits."""
    return [item_of(o) for o in room.contents if o.destination is None and o is not viewer]


def send_room(session: ServerSession, character: WorldObject) -> None:
    """After a login or a move: Room.Info and the room's Char.Items.List."""
    room = character.location
    if room is None or not session.protocol_flags.get("OOB"):
        return
    room_info(session, room)
    oob.items_list(session, "room", room_items(room, character))


def send_character(session: ServerSession, character: WorldObject) -> None:
    """At login: Char.Name, Char.Vitals, Char.StatusVars + Char.Status, the inventory."""
    if not session.protocol_flags.get("OOB"):
        return
    oob.char_name(session, character.key)
    db = character.db
    oob.char_vitals(session, hp=db.hp or 0, maxhp=db.maxhp or 0, mp=db.mp or 0,
                    maxmp=db.maxmp or 0)
    oob.char_statusvars(session, name="Name", level="Level", gold="Gold")
    oob.char_status(session, name=character.key, level=db.level or 1, gold=db.gold or 0)
    oob.items_list(session, "inv", [item_of(o) for o in character.contents])


def to_watchers(room: WorldObject | None, exclude: WorldObject | None) -> list[ServerSession]:
    """The sessions in `room` that take out-of-band data (but `exclude`'s)."""
    if room is None:
        return []
    return [s for o in room.contents if o is not exclude for s in o.sessions
            if s.protocol_flags.get("OOB")]


def items_add_to_room(room: WorldObject, obj: WorldObject,
                      exclude: WorldObject | None = None) -> None:
    for session in to_watchers(room, exclude):
        oob.items_add(session, "room", item_of(obj))


def items_remove_from_room(room: WorldObject, obj: WorldObject,
                           exclude: WorldObject | None = None) -> None:
    for session in to_watchers(room, exclude):
        oob.items_remove(session, "room", item_of(obj))


def items_moved(obj: WorldObject, source: WorldObject | None,
                dest: WorldObject | None) -> None:
    """`obj` went from `source` to `dest` (a room or a character): Char.Items.Remove and
    Add to everyone who sees either side (a character sees its own inventory)."""
    for place, send in ((source, oob.items_remove), (dest, oob.items_add)):
        if place is None:
            continue
        if place.destination is None and place.location is None:  # a room
            for session in to_watchers(place, obj):
                send(session, "room", item_of(obj))
        else:  # a character (or a container: nobody lists those)
            for session in place.sessions:
                if session.protocol_flags.get("OOB"):
                    send(session, "inv", item_of(obj))


def supports_set(session: ServerSession, args: list[Any], kwargs: dict[str, Any]) -> None:
    """Core.Supports.Set, then (for a player already in the game: a web page that
    reconnected, a client that asked late) the room and character data at once."""
    session.oob.receive_supports("set", args)
    character = session.puppet
    if session.logged_in and character is not None:
        send_character(session, character)
        send_room(session, character)


for _name in ("supports_set", "core.supports.set"):  # telnet's name, and the web's v1
    inputfunc(_name)(supports_set)
