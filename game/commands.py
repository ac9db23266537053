"""The default game's player commands, in Evennia's conventions.

`ctx.caller` is the character the player plays; `ctx.session` the connection. Every
world write a command makes is committed before its output leaves, and a command that
raises has its writes undone.
"""

from __future__ import annotations

from server.api import Command, Context, Game, WorldObject, command, oob
from server.session import ServerSession

from . import oob as gmcp
from .matching import pick
from .typeclasses import DIRECTIONS, Character

CONNECTION_SCREEN = """\
|b==============================================================|n
 Welcome to |g{name}|n, powered by Hearth.

 If you have an existing account, connect to it by typing:
      |wconnect <username> <password>|n
 or type |wconnect <username>|n and then your password, unseen.
 If you need to create an account, type (without the <>'s):
      |wcreate <username> <password>|n
 or |wcreate <username>|n, and choose the password unseen.

 Enter |whelp|n for more info. |wlook|n will re-show this screen.
|b==============================================================|n"""

SHORT = {short: full for full, short in DIRECTIONS.items()}


def connection_screen(ctx_name: str) -> str:
    return CONNECTION_SCREEN.format(name=ctx_name)


def visible(caller: WorldObject) -> list[WorldObject]:
    """What the caller can name: what it carries, then what is in its room (and the
    room itself is `here`)."""
    here = caller.location
    return [*caller.contents, *(here.contents if here is not None else [])]


# ---------------------------------------------------------------- looking and moving


@command("look", aliases=["l", "ls"], logged_in=None,
         help="look [at] [THING] - describe where you are, or a thing.\n"
              "  look            the room: its description, exits, who and what is here\n"
              "  look lantern    a thing you carry or see (look at lantern, l lantern)")
def look(ctx: Context) -> None:
    if not ctx.session.logged_in or ctx.session.puppet is None:
        ctx.session.msg(connection_screen(ctx.game.name))
        return
    caller = ctx.caller
    query = ctx.args.removeprefix("at ").strip()
    if not query or query.lower() in ("here",):
        if caller.location is not None:
            caller.msg(caller.location.return_appearance(caller))
        return
    target = pick(caller, query, visible(caller))
    if target is not None:
        caller.msg(target.return_appearance(caller))


def find_exit(here: WorldObject, name: str) -> WorldObject | None:
    want = name.lower()
    for exit_ in here.exits:
        if exit_.key.lower() == want or any(a.lower() == want for a in exit_.aliases):
            return exit_
    return None


def walk(ctx: Context, name: str) -> None:
    """Leave by the exit `name` (a direction or an exit's name)."""
    caller = ctx.caller
    here = caller.location
    if here is None:
        caller.msg("You are nowhere; there is nowhere to go.")
        return
    exit_ = find_exit(here, name)
    if exit_ is None and SHORT.get(name.lower()):
        exit_ = find_exit(here, SHORT[name.lower()])
    if exit_ is None or exit_.destination is None:
        caller.msg("You cannot go that way.")
        oob.room_wrongdir(ctx.session, DIRECTIONS.get(name.lower(), name.lower()))
        return
    exit_.at_traverse(caller, exit_.destination)


def _direction(full: str, short: str) -> None:
    def move(ctx: Context) -> None:
        walk(ctx, full)

    aliases = [short] if short != full else []
    command(full, aliases=aliases, category="Moving",
            help=f"{full} ({short}) - go {full}, if there is a way.")(move)


for _full, _short in DIRECTIONS.items():
    _direction(_full, _short)


@command("go", aliases=["walk", "move"], category="Moving",
         help="go EXIT - leave by an exit (a direction, or its name: go door). Typing the "
              "exit's name alone works too.")
def go(ctx: Context) -> None:
    if not ctx.args:
        ctx.caller.msg("Go where? Type |wexits|n to see the ways out.")
        return
    walk(ctx, ctx.args)


@command("exits", category="Moving", help="exits - list the ways out and where they lead.")
def exits(ctx: Context) -> None:
    here = ctx.caller.location
    ways = [] if here is None else here.exits
    if not ways:
        ctx.caller.msg("There is no way out of here.")
        return
    lines = ["Ways out:"]
    for exit_ in ways:
        names = "/".join([exit_.key, *exit_.aliases])
        where = exit_.destination.key if exit_.destination is not None else "nowhere"
        lines.append(f"  |w{names}|n to {where}")
    ctx.caller.msg("\n".join(lines))


# ---------------------------------------------------------------- things


def _moved(obj: WorldObject, source: WorldObject | None, dest: WorldObject | None) -> None:
    gmcp.items_moved(obj, source, dest)


@command("get", aliases=["take", "pick"], category="Things",
         help="get THING [from CONTAINER] - pick something up.\n"
              "  get lantern          from the room\n"
              "  get coin from chest  out of a container\n"
              "  get 2.apple          the second of several apples")
def get(ctx: Context) -> None:
    caller = ctx.caller
    query = ctx.args.removeprefix("up ").strip()
    if not query:
        caller.msg("Get what?")
        return
    name, sep, box_name = query.partition(" from ")
    source: WorldObject | None = caller.location
    if sep:
        box = pick(caller, box_name, visible(caller))
        if box is None:
            return
        if not getattr(box, "takes_things", False):
            caller.msg(f"There is nothing to take out of {box.key}.")
            return
        source = box
    if source is None:
        return
    things = [o for o in source.contents if o is not caller and o.destination is None]
    target = pick(caller, name, things, "" if not sep else f" in {source.key}")
    if target is None:
        return
    if isinstance(target, Character):
        caller.msg(f"{target.key} would not like that.")
        return
    if not target.at_pre_get(caller):
        return
    if not target.move_to(caller, quiet=True):
        caller.msg(f"You cannot take {target.key}.")
        return
    target.at_get(caller)
    suffix = f" from {source.key}" if sep else ""
    caller.msg(f"You pick up {target.key}{suffix}.")
    if caller.location is not None:
        caller.location.msg_contents(f"{caller.key} picks up {target.key}{suffix}.",
                                     exclude=[caller])
    _moved(target, source if not sep else None, caller)


def carried(caller: WorldObject, query: str, verb: str) -> WorldObject | None:
    if not query:
        caller.msg(f"{verb.capitalize()} what?")
        return None
    return pick(caller, query, caller.contents, " that you carry")


@command("drop", category="Things", help="drop THING - put down something you carry.")
def drop(ctx: Context) -> None:
    caller = ctx.caller
    target = carried(caller, ctx.args, "drop")
    here = caller.location
    if target is None or here is None or not target.at_pre_drop(caller):
        return
    if not target.move_to(here, quiet=True):
        caller.msg(f"You cannot drop {target.key} here.")
        return
    target.at_drop(caller)
    caller.msg(f"You drop {target.key}.")
    here.msg_contents(f"{caller.key} drops {target.key}.", exclude=[caller])
    _moved(target, caller, here)


@command("put", category="Things",
         help="put THING in CONTAINER - put something you carry into a container "
              "(put coin in chest, put log in fire).")
def put(ctx: Context) -> None:
    caller = ctx.caller
    name, sep, box_name = ctx.args.partition(" in ")
    if not sep:
        name, sep, box_name = ctx.args.partition(" on ")
    if not sep or not name.strip() or not box_name.strip():
        caller.msg("Usage: put THING in CONTAINER")
        return
    target = carried(caller, name.strip(), "put")
    if target is None:
        return
    box = pick(caller, box_name.strip(), [o for o in visible(caller) if o is not target])
    if box is None:
        return
    if not getattr(box, "takes_things", False):
        caller.msg(f"You cannot put things in {box.key}.")
        return
    if not box.at_pre_object_receive(target, caller):
        caller.msg(f"{target.key} does not go in {box.key}.")
        return
    caller.msg(f"You put {target.key} in {box.key}.")  # before what the box says of it
    if caller.location is not None:
        caller.location.msg_contents(f"{caller.key} puts {target.key} in {box.key}.",
                                     exclude=[caller])
    if target.move_to(box, quiet=True):
        _moved(target, caller, None)


@command("give", category="Things",
         help="give THING to PLAYER - hand something you carry to someone here "
              "(also: give THING = PLAYER).")
def give(ctx: Context) -> None:
    caller = ctx.caller
    name, sep, whom = ctx.args.partition(" to ")
    if not sep:
        name, sep, whom = ctx.args.partition("=")
    if not sep or not name.strip() or not whom.strip():
        caller.msg("Usage: give THING to PLAYER")
        return
    target = carried(caller, name.strip(), "give")
    if target is None:
        return
    here = caller.location
    people = [o for o in (here.contents if here else []) if isinstance(o, Character)
              and o is not caller]
    receiver = pick(caller, whom.strip(), people, " here")
    if receiver is None or not target.at_pre_give(caller, receiver):
        return
    if not target.move_to(receiver, quiet=True):
        caller.msg(f"{receiver.key} cannot take {target.key}.")
        return
    target.at_give(caller, receiver)
    caller.msg(f"You give {target.key} to {receiver.key}.")
    receiver.msg(f"{caller.key} gives you {target.key}.")
    if here is not None:
        here.msg_contents(f"{caller.key} gives {target.key} to {receiver.key}.",
                          exclude=[caller, receiver])
    _moved(target, caller, receiver)


@command("inventory", aliases=["inv", "i"], category="Things",
         help="inventory (inv, i) - list what you carry.")
def inventory(ctx: Context) -> None:
    caller = ctx.caller
    things = caller.contents
    if not things:
        caller.msg("You are not carrying anything.")
        return
    caller.msg("You are carrying:\n" + "\n".join(f"  {o.key}" for o in things))


@command("read", category="Things", help="read THING - read a sign, a book, a notice.")
def read(ctx: Context) -> None:
    caller = ctx.caller
    if not ctx.args:
        caller.msg("Read what?")
        return
    target = pick(caller, ctx.args, visible(caller))
    if target is None:
        return
    text = target.db.text
    caller.msg(f"{target.key} reads:\n{text}" if text else f"There is nothing to read on "
                                                            f"{target.key}.")


# ---------------------------------------------------------------- talking


def _to_room(ctx: Context, mine: str, theirs: str, channel: str) -> None:
    """`mine` to the typing session, `theirs` to every other session in the room (the
    player's other connections too, as to anyone), with Comm.Channel.Text to the
    clients that asked for it."""
    caller, me = ctx.caller, ctx.session
    talker = caller.key
    me.msg(mine)
    oob.comm_channel_text(me, channel, talker, mine)
    here = caller.location
    if here is None:
        return
    for session in ctx.world.sessions_in(here):
        if session is not me:
            session.msg(theirs)
            oob.comm_channel_text(session, channel, talker, theirs)


@command("say", aliases=["'", '"'], category="Talking",
         help="say TEXT - say something to everyone in the room ('TEXT works too).")
def say(ctx: Context) -> None:
    if not ctx.args:
        ctx.session.msg("Say what?")
        return
    name = ctx.caller.key
    _to_room(ctx, f'You say, "{ctx.args}"', f'{name} says, "{ctx.args}"', "say")


@command("pose", aliases=["emote", ":"], category="Talking",
         help="pose TEXT - show the room what you do: 'pose waves.' shows 'alice waves.'")
def pose(ctx: Context) -> None:
    if not ctx.args:
        ctx.session.msg("Pose what?")
        return
    text = ctx.args
    space = "" if text[0] in ",.:;'" else " "
    line = f"{ctx.caller.key}{space}{text}"
    _to_room(ctx, line, line, "emote")


def _split_target(args: str) -> tuple[str, str]:
    """"bob = hello" or "bob hello" -> ("bob", "hello")."""
    if "=" in args:
        who, _, text = args.partition("=")
    else:
        who, _, text = args.partition(" ")
    return who.strip(), text.strip()


@command("whisper", category="Talking",
         help="whisper PLAYER = TEXT - say something only someone in the room hears.")
def whisper(ctx: Context) -> None:
    caller = ctx.caller
    who, text = _split_target(ctx.args)
    if not who or not text:
        caller.msg("Usage: whisper PLAYER = TEXT")
        return
    here = caller.location
    people = [o for o in (here.contents if here else []) if isinstance(o, Character)
              and o is not caller]
    target = pick(caller, who, people, " here")
    if target is None:
        return
    caller.msg(f'You whisper to {target.key}, "{text}"')
    target.msg(f'{caller.key} whispers, "{text}"')
    if here is not None:
        here.msg_contents(f"{caller.key} whispers something to {target.key}.",
                          exclude=[caller, target])


def player_sessions(game: Game, name: str) -> list[ServerSession]:
    want = name.lower()
    return [s for s in game.logged_in() if (s.uname or "").lower() == want]


@command("page", aliases=["tell"], category="Talking",
         help="page PLAYER = TEXT - send a message to a player anywhere in the game "
              "(tell bob hello works too).")
def page(ctx: Context) -> None:
    who, text = _split_target(ctx.args)
    if not who or not text:
        ctx.session.msg("Usage: page PLAYER = TEXT")
        return
    targets = player_sessions(ctx.game, who)
    if not targets:
        ctx.session.msg(f"Nobody called '{who}' is playing now. Type |wwho|n to see who is.")
        return
    name = targets[0].uname or who
    me = ctx.session.uname or "?"
    mine, theirs = f"You paged {name} with: '{text}'", f"{me} pages: {text}"
    ctx.session.msg(mine)
    oob.comm_channel_text(ctx.session, "page", me, mine)
    for session in targets:
        session.msg(theirs)
        oob.comm_channel_text(session, "page", me, theirs)


@command("who", category="Talking", help="who - list the players who are online.")
def who(ctx: Context) -> None:
    players = sorted(s.uname or "?" for s in ctx.game.logged_in())
    ctx.session.msg(f"Players online ({len(players)}): " + ", ".join(players))


# ---------------------------------------------------------------- the system


@command("ping", logged_in=None, category="System",
         help="ping [TEXT] - the game answers pong TEXT at once.")
def ping(ctx: Context) -> None:
    ctx.session.msg(f"pong {ctx.args}".rstrip())


def _available(ctx: Context) -> list[Command]:
    return [c for c in ctx.game.commands()
            if c.logged_in in (None, ctx.session.logged_in)
            and ctx.game.has_perm(ctx.session, c.needs)]


@command("help", aliases=["?"], logged_in=None, category="System",
         help="help [COMMAND] - list the commands by category, or explain one.")
def help_(ctx: Context) -> None:
    available = _available(ctx)
    if ctx.args:
        want = ctx.args.lower().lstrip("@")
        for cmd in available:
            if want in (cmd.key.lstrip("@"), *(a.lstrip("@") for a in cmd.aliases)):
                names = ", ".join(cmd.aliases)
                also = f"\n(also: {names})" if names else ""
                ctx.session.msg((cmd.help or f"{cmd.key}: no help written.") + also)
                return
        ctx.session.msg(f"No help found for '{ctx.args}'.")
        return
    groups: dict[str, list[str]] = {}
    for cmd in available:
        if cmd.category == "Moving" and cmd.key in DIRECTIONS:
            continue  # one line for them below
        groups.setdefault(cmd.category, []).append(cmd.key)
    lines = []
    for category in sorted(groups, key=_category_order):
        lines.append(f"|w{category}:|n " + ", ".join(sorted(groups[category])))
    if ctx.session.logged_in:
        lines.append("|wDirections:|n n, s, e, w, ne, nw, se, sw, u, d, in, out "
                     "(or an exit's name)")
    lines.append("Type |whelp COMMAND|n for more.")
    ctx.session.msg("\n".join(lines))


ORDER = ("General", "Moving", "Things", "Talking", "Building", "System", "Admin")


def _category_order(name: str) -> tuple[int, str]:
    return (ORDER.index(name) if name in ORDER else len(ORDER), name)


@command("quit", aliases=["@quit", "exit"], logged_in=None, category="System",
         help="quit - leave the game.")
def quit_(ctx: Context) -> None:
    ctx.session.disconnect("Goodbye! Come back soon.")  # the others hear "has left"


def _admin_request(action: str, notice: str, everyone: bool) -> None:
    """An admin command; the supervisor tells the admin alone how it went.

    Only what disconnects players (`everyone`) is announced to them beforehand: a reload
    changes nothing they can see, and a failed one changes nothing at all.
    """

    def run(ctx: Context) -> None:
        if everyone:
            ctx.game.broadcast(notice)
        else:
            ctx.session.msg(notice)
        ctx.game.request(action, ctx.session)

    command(action, admin=True, category="Admin",
            help=f"{action} - (admin) ask the supervisor to {action} the game.")(run)


_admin_request("reload", "|yThe game is reloading its code...|n", everyone=False)
_admin_request("reset", "|yThe game is resetting...|n", everyone=False)
_admin_request("reboot", "|rThe game is rebooting; you will be disconnected.|n", everyone=True)
_admin_request("shutdown", "|rThe game is shutting down!|n", everyone=True)
