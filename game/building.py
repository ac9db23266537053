"""Builder commands (role builder or admin), in Evennia's names and syntax.

Every name works with or without `@` (`dig` or `@dig`). A builder builds a house::

    dig Kitchen = east;e, west;w        a room, with exits both ways
    tunnel n = Attic                    a room in a direction, exits both ways
    open door;d, door;d = #12           an exit here (and one back) to a room
    create lantern;lamp                 a thing, in your hands (create/drop: on the floor)
    desc lantern = A brass lantern.     describe it (desc here = ... for the room)
    set lantern/oil = 7                 a stored attribute (a number, list, "text", ...)
    examine lantern                     everything about it
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Callable
from typing import Any

from server.api import (
    CommandFunc,
    Context,
    WorldObject,
    command,
    create_object,
    current_world,
    reply,
    search_object,
)

from .matching import pick
from .typeclasses import OPPOSITE, Exit, Room, Thing

BuilderFunc = CommandFunc
SHORT_TO_FULL = {"n": "north", "s": "south", "e": "east", "w": "west", "ne": "northeast",
                 "nw": "northwest", "se": "southeast", "sw": "southwest", "u": "up",
                 "d": "down", "in": "in", "out": "out"}
FULL_TO_SHORT = {full: short for short, full in SHORT_TO_FULL.items()}


def builder(key: str, *aliases: str, switches: tuple[str, ...] = (),
            help: str) -> Callable[[BuilderFunc], BuilderFunc]:
    """Register a builder command as `key` and `@key` (and each `key/switch`)."""
    names = [key, *aliases]
    every = [f"{at}{name}{sw}" for name in names for at in ("", "@")
             for sw in ("", *(f"/{s}" for s in switches))]
    return command(key, aliases=[n for n in every if n != key], perm="builder",
                   category="Building", help=help)


def switch_of(ctx: Context) -> str:
    return ctx.cmdname.partition("/")[2].lower()


# ---------------------------------------------------------------- parsing


def split_names(spec: str) -> tuple[str, list[str], str | None]:
    """"lantern;lamp;light:Container" -> ("lantern", ["lamp", "light"], "Container")."""
    spec, _, typeclass = spec.partition(":")
    key, *aliases = [p.strip() for p in spec.split(";")]
    return key, [a for a in aliases if a], (typeclass.strip() or None)


def literal(text: str) -> Any:
    """A value as Evennia's `set` reads it: a Python literal (7, [1, 2], "x"), else the
    text itself."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def typeclass_of(path: str | None, default: type[WorldObject]) -> type[WorldObject]:
    """`Container`, `typeclasses.Container`, `lamps.Lamp` (a module of the game),
    `game.typeclasses.Container` or a full path (`hearth_game.weapons.Sword`); ValueError
    naming the problem."""
    if not path:
        return default
    if "." not in path:
        tries = [f"hearth_game.typeclasses.{path}"]
    elif path.startswith("game."):
        tries = ["hearth_game" + path[4:]]
    elif path.startswith("hearth_game."):
        tries = [path]
    else:  # `lamps.Lamp`: a module of the game first, else any importable path
        tries = [f"hearth_game.{path}", path]
    why = ""
    for full in tries:
        module_name, _, name = full.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module_name), name)
        except (ImportError, AttributeError) as exc:
            why = why or str(exc)
            continue
        if not (isinstance(cls, type) and issubclass(cls, WorldObject)):
            raise ValueError(f"{full} is not a typeclass.")
        return cls
    raise ValueError(f"No typeclass {path} ({why}).")


def find(ctx: Context, query: str) -> WorldObject | None:
    """An object as a builder names it: `here`, `me`, `#12`, or a name (what is carried
    or here first, else anywhere); None after saying why."""
    caller = ctx.caller
    query = query.strip()
    if query.lower() == "here":
        if caller.location is None:
            caller.msg("You are nowhere.")
        return caller.location
    if query.startswith("#"):
        found = search_object(query)
        if not found:
            caller.msg(f"There is no object {query}.")
            return None
        return found[0]
    here = caller.location
    local = [*caller.contents, *(here.contents if here is not None else [])]
    if here is not None:
        local.append(here)
    from .matching import matches, split_number
    _, name = split_number(query)
    if matches(name, local) or name.lower() in ("me", "self"):
        return pick(caller, query, local)
    return pick(caller, query, search_object(name), " anywhere")


def show(obj: WorldObject | None) -> str:
    return "nowhere" if obj is None else f"{obj.key}({obj.dbref})"


# ---------------------------------------------------------------- rooms and exits


def make_exit(spec: str, here: WorldObject, there: WorldObject) -> WorldObject:
    key, aliases, typeclass = split_names(spec)
    full = SHORT_TO_FULL.get(key.lower())
    if full is not None and len(key) <= 3 and full != key.lower():
        key, aliases = full, [key, *aliases]  # `n` means north (aliased n)
    elif key.lower() in FULL_TO_SHORT and FULL_TO_SHORT[key.lower()] not in aliases \
            and FULL_TO_SHORT[key.lower()] != key.lower():
        aliases = [FULL_TO_SHORT[key.lower()], *aliases]
    return create_object(typeclass_of(typeclass, Exit), key, location=here,
                         destination=there, aliases=aliases)


def exits_both_ways(ctx: Context, here: WorldObject, there: WorldObject, to_there: str,
                    to_here: str) -> list[str]:
    told = []
    if to_there.strip():
        out = make_exit(to_there, here, there)
        told.append(f"Exit {out.key}({out.dbref}) from {show(here)} to {show(there)}.")
    if to_here.strip():
        back = make_exit(to_here, there, here)
        told.append(f"Exit {back.key}({back.dbref}) from {show(there)} to {show(here)}.")
    return told


@builder("dig", switches=("tel", "teleport"),
         help="dig ROOM[;alias][:typeclass] [= EXIT[;alias], BACK[;alias]] - a new room.\n"
              "  dig Kitchen                         just the room (you get its #id)\n"
              "  dig Kitchen = north;n, south;s      with an exit there and one back\n"
              "  dig/tel Attic = up;u, down;d        and go there")
def dig(ctx: Context) -> None:
    caller = ctx.caller
    spec, _, exits = ctx.args.partition("=")
    if not spec.strip():
        caller.msg("Usage: dig ROOM[;alias][:typeclass] [= EXIT[;alias], BACK[;alias]]")
        return
    key, aliases, typeclass = split_names(spec)
    try:
        cls = typeclass_of(typeclass, Room)
    except ValueError as exc:
        caller.msg(f"|r{exc}|n")
        return
    room = create_object(cls, key, aliases=aliases)
    told = [f"Created room {show(room)} of type {room.typeclass_path}."]
    here = caller.location
    to_there, _, to_here = exits.partition(",")
    if (to_there.strip() or to_here.strip()) and here is not None:
        told += exits_both_ways(ctx, here, room, to_there, to_here)
    caller.msg("\n".join(told))
    if switch_of(ctx) in ("tel", "teleport"):
        caller.move_to(room)


@builder("tunnel", switches=("tel", "teleport"),
         help="tunnel DIRECTION [= ROOM[;alias]] - a room in a compass direction, with "
              "exits both ways (tunnel n = Attic; tunnel/tel e).")
def tunnel(ctx: Context) -> None:
    caller = ctx.caller
    way, _, name = ctx.args.partition("=")
    way = way.strip().lower()
    full = SHORT_TO_FULL.get(way, way)
    if full not in OPPOSITE:
        caller.msg("Usage: tunnel DIRECTION [= ROOM]  (n, s, e, w, ne, nw, se, sw, u, d, "
                   "in, out)")
        return
    back = OPPOSITE[full]
    room_name = name.strip() or "Newroom"
    ctx.args = f"{room_name} = {full};{FULL_TO_SHORT[full]}, {back};{FULL_TO_SHORT[back]}"
    dig(ctx)


@builder("open",
         help="open EXIT[;alias][:typeclass] [, BACK[;alias]] = ROOM - an exit from here "
              "to ROOM (a name or #id), and one back if BACK is given.\n"
              "  open door;d, door;d = Kitchen")
def open_(ctx: Context) -> None:
    caller = ctx.caller
    exits, sep, target = ctx.args.rpartition("=")
    if not sep or not exits.strip() or not target.strip():
        caller.msg("Usage: open EXIT[;alias] [, BACK[;alias]] = ROOM")
        return
    here = caller.location
    there = find(ctx, target)
    if there is None or here is None:
        return
    to_there, _, to_here = exits.partition(",")
    try:
        told = exits_both_ways(ctx, here, there, to_there, to_here)
    except ValueError as exc:
        caller.msg(f"|r{exc}|n")
        return
    caller.msg("\n".join(told))


# ---------------------------------------------------------------- things


@builder("create", switches=("drop",),
         help="create NAME[;alias][:typeclass] [, NAME ...] - new things, in your hands "
              "(create/drop: on the floor).\n"
              "  create lantern;lamp\n"
              "  create chest:Container, red ball;ball")
def create(ctx: Context) -> None:
    caller = ctx.caller
    if not ctx.args:
        caller.msg("Usage: create NAME[;alias][:typeclass] [, NAME ...]")
        return
    where = caller.location if switch_of(ctx) == "drop" else caller
    told = []
    for spec in ctx.args.split(","):
        if not spec.strip():
            continue
        key, aliases, typeclass = split_names(spec)
        try:
            cls = typeclass_of(typeclass, Thing)
        except ValueError as exc:
            caller.msg(f"|r{exc}|n")
            return
        obj = create_object(cls, key, location=where, home=caller.location, aliases=aliases)
        told.append(f"Created {show(obj)} of type {obj.typeclass_path}.")
    caller.msg("\n".join(told))


@builder("desc", "describe",
         help="desc [THING =] TEXT - describe a thing (or, without THING, the room).\n"
              "  desc lantern = A brass lantern.\n"
              "  desc here = A warm kitchen.")
def desc(ctx: Context) -> None:
    caller = ctx.caller
    name, sep, text = ctx.args.partition("=")
    if not sep:
        name, text = "here", ctx.args
    target = find(ctx, name)
    if target is None:
        return
    target.db.desc = text.strip()
    caller.msg(f"The description of {show(target)} is set.")


@builder("name", "rename",
         help="name THING = NEWNAME[;alias;alias] - rename a thing (and give it aliases).")
def name(ctx: Context) -> None:
    caller = ctx.caller
    what, sep, spec = ctx.args.partition("=")
    if not sep or not spec.strip():
        caller.msg("Usage: name THING = NEWNAME[;alias;alias]")
        return
    target = find(ctx, what)
    if target is None:
        return
    old = target.key
    key, aliases, _ = split_names(spec)
    target.key = key
    if aliases:
        target.aliases.remove(*target.aliases.all())
        target.aliases.add(*aliases)
    caller.msg(f"{old} is now called {show(target)}"
               + (f" (aliases: {', '.join(aliases)})." if aliases else "."))


@builder("set",
         help="set THING/ATTRIBUTE [= VALUE] - a stored attribute: show it, set it, or "
              "with an empty VALUE remove it.\n"
              "  set lantern/oil = 7      a number ([1, 2], \"text\", True work too)\n"
              "  set lantern/oil          show it\n"
              "  set lantern/oil =        remove it")
def set_(ctx: Context) -> None:
    caller = ctx.caller
    left, sep, value = ctx.args.partition("=")
    obj_name, slash, attr = left.strip().rpartition("/")
    if not slash or not obj_name or not attr.strip():
        caller.msg("Usage: set THING/ATTRIBUTE [= VALUE]")
        return
    attr = attr.strip()
    target = find(ctx, obj_name)
    if target is None:
        return
    if not sep:
        if target.attributes.has(attr):
            caller.msg(f"{show(target)}/{attr} = {target.attributes.get(attr)!r}")
        else:
            caller.msg(f"{show(target)} has no attribute {attr}.")
        return
    if not value.strip():
        target.attributes.remove(attr)
        caller.msg(f"Removed {show(target)}/{attr}.")
        return
    parsed = literal(value.strip())
    try:
        target.attributes.add(attr, parsed)
    except TypeError as exc:
        caller.msg(f"|rThat value cannot be stored: {exc}|n")
        return
    caller.msg(f"Set {show(target)}/{attr} = {parsed!r}")


@builder("examine", "ex", "exam",
         help="examine [THING[/ATTRIBUTE]] - everything stored about a thing (or the room).")
def examine(ctx: Context) -> None:
    caller = ctx.caller
    query, _, attr = (ctx.args or "here").partition("/")
    target = find(ctx, query)
    if target is None:
        return
    if attr:
        ctx.args = f"{query}/{attr}"
        set_(ctx)
        return
    lines = [f"|wName/key:|n {target.key} ({target.dbref})",
             f"|wTypeclass:|n {target.typeclass_path}"]
    if target.aliases.all():
        lines.append(f"|wAliases:|n {', '.join(target.aliases.all())}")
    owner = target.account_id
    if owner is not None:
        lines.append(f"|wAccount:|n #{owner}"
                     + (" (playing now)" if target.sessions else ""))
    lines.append(f"|wLocation:|n {show(target.location)}")
    lines.append(f"|wHome:|n {show(target.home)}")
    if target.destination is not None:
        lines.append(f"|wDestination:|n {show(target.destination)}")
    tags = [f"{t}" for t in target.tags.all()]
    if tags:
        lines.append(f"|wTags:|n {', '.join(tags)}")
    attrs = target.attributes.all()
    if attrs:
        lines.append("|wAttributes:|n")
        lines += [f"  {k} = {short_repr(v)}" for k, v in sorted(attrs.items())]
    inside = [o for o in target.contents if o.destination is None]
    if target.exits:
        lines.append(f"|wExits:|n {', '.join(show(o) for o in target.exits)}")
    if inside:
        lines.append(f"|wContents:|n {', '.join(show(o) for o in inside)}")
    caller.msg("\n".join(lines).replace("||", "|"))


def short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


@builder("destroy", "delete", "del", switches=("force",),
         help="destroy THING [, THING ...] - delete things for good (you are asked to "
              "confirm; destroy/force does not ask). What they held goes to its home.")
def destroy(ctx: Context) -> None:
    caller = ctx.caller
    if not ctx.args:
        caller.msg("Usage: destroy THING [, THING ...]")
        return
    targets = []
    for query in ctx.args.split(","):
        target = find(ctx, query)
        if target is None:
            return
        if target.sessions:
            caller.msg(f"{show(target)} is being played; it is not destroyed.")
            return
        targets.append(target)
    if switch_of(ctx) == "force":
        caller.msg(destroy_all(targets))
        return
    ctx.session.ask("destroy.confirm", f"Destroy {', '.join(show(t) for t in targets)} "
                    "for good? [y/N]", ids=[t.id for t in targets])


def destroy_all(targets: list[WorldObject]) -> str:
    told = []
    for target in targets:
        label = show(target)
        told.append(f"{label} was destroyed." if target.delete()
                    else f"{label} refused to be destroyed.")
    return "\n".join(told)


@reply("destroy.confirm")
def destroy_confirm(ctx: Context) -> None:
    if ctx.args.strip().lower() not in ("y", "yes"):
        ctx.session.msg("Nothing was destroyed.")
        return
    world = current_world()
    targets = [o for o in (world.get(i) for i in ctx.data.get("ids", [])) if o is not None]
    ctx.session.msg(destroy_all(targets) if targets else "They are gone already.")


# ---------------------------------------------------------------- where things are


@builder("teleport", "tel",
         help="teleport [THING =] PLACE - move yourself (or a thing) anywhere at once.\n"
              "  tel #12            yourself, to object #12\n"
              "  tel lantern = here\n"
              "  teleport bob to Kitchen")
def teleport(ctx: Context) -> None:
    caller = ctx.caller
    args = ctx.args.replace(" to ", "=", 1) if "=" not in ctx.args else ctx.args
    what, sep, where = args.rpartition("=")
    if not where.strip():
        caller.msg("Usage: teleport [THING =] PLACE")
        return
    mover = find(ctx, what) if sep and what.strip() else caller
    if mover is None:
        return
    dest = find(ctx, where)
    if dest is None:
        return
    if dest is mover or dest.location is mover:
        caller.msg("You cannot put a thing inside itself.")
        return
    source = mover.location
    if not mover.move_to(dest, quiet=False):
        caller.msg(f"{show(mover)} did not go.")
        return
    if mover is not caller:
        caller.msg(f"Teleported {show(mover)} from {show(source)} to {show(dest)}.")
        from . import oob
        oob.items_moved(mover, source, dest)


@builder("find", "locate", "search",
         help="find NAME - every object of that name (or beginning with it) anywhere, "
              "with its #id and where it is; find #12 for one.")
def find_(ctx: Context) -> None:
    caller = ctx.caller
    if not ctx.args:
        caller.msg("Usage: find NAME")
        return
    found = search_object(ctx.args.strip(), exact=False)  # a builder's rare scan
    if not found:
        caller.msg(f"Nothing is called '{ctx.args}'.")
        return
    lines = [f"{len(found)} match{'es' if len(found) != 1 else ''}:"]
    for obj in found[:50]:
        kind = type(obj).__name__
        lines.append(f"  {show(obj)} [{kind}] in {show(obj.location)}")
    if len(found) > 50:
        lines.append(f"  ... and {len(found) - 50} more")
    caller.msg("\n".join(lines))


@builder("sethome",
         help="sethome [THING [= PLACE]] - where a thing (or you) goes home to; with no "
              "PLACE, here. Things held by a destroyed object go to their home.")
def sethome(ctx: Context) -> None:
    caller = ctx.caller
    what, sep, where = ctx.args.partition("=")
    target = find(ctx, what) if what.strip() else caller
    if target is None:
        return
    place = find(ctx, where) if sep and where.strip() else caller.location
    if place is None:
        return
    target.home = place
    caller.msg(f"The home of {show(target)} is now {show(place)}.")


@builder("typeclass", "type", "swap",
         help="typeclass THING [= TYPECLASS] - show a thing's class, or change it in "
              "place (its stored data stays): typeclass chest = Container. Paths: "
              "Container, typeclasses.Container, hearth_game.weapons.Sword.")
def typeclass(ctx: Context) -> None:
    caller = ctx.caller
    what, sep, path = ctx.args.partition("=")
    if not what.strip():
        caller.msg("Usage: typeclass THING [= TYPECLASS]")
        return
    target = find(ctx, what)
    if target is None:
        return
    if not sep or not path.strip():
        caller.msg(f"{show(target)} is of typeclass {target.typeclass_path}.")
        return
    try:
        cls = typeclass_of(path.strip(), Thing)
    except ValueError as exc:
        caller.msg(f"|r{exc}|n")
        return
    old = target.typeclass_path
    target.swap_typeclass(cls)
    caller.msg(f"{show(target)} changed from {old} to {target.typeclass_path}.")
