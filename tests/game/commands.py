"""The default game's commands, in Evennia's conventions."""

from __future__ import annotations

from server.api import Context, Game, command, oob
from server.session import ServerSession

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

ROOM = "Hearth Hall"
ROOM_DESC = "A long hall with a fire that never goes out. Travellers gather to talk here."


def connection_screen(ctx_name: str) -> str:
    return CONNECTION_SCREEN.format(name=ctx_name)


@command("look", aliases=["l"], logged_in=None, help="look - describe where you are.")
def look(ctx: Context) -> None:
    if not ctx.session.logged_in:
        ctx.session.msg(connection_screen(ctx.game.name))
        return
    ctx.session.msg(describe_room(ctx.game, ctx.session))


def room_oob(session: ServerSession) -> None:
    """Room.Info for clients' mappers (MSDP: ROOM_VNUM, ROOM_NAME, ...)."""
    oob.room_info(session, num=1, name=ROOM, area="Hearth", environment="indoors", exits={})


def describe_room(game: Game, session: ServerSession) -> str:
    here = sorted(s.uname or "?" for s in game.logged_in() if s is not session)
    others = ", ".join(here) if here else "nobody else"
    return f"|c{ROOM}|n\n{ROOM_DESC}\nHere: {others}."


@command("say", aliases=["'", '"'], help="say TEXT - say something to everyone in the hall.")
def say(ctx: Context) -> None:
    if not ctx.args:
        ctx.session.msg("Say what?")
        return
    talker = ctx.session.uname or "?"
    mine, theirs = f'You say, "{ctx.args}"', f'{talker} says, "{ctx.args}"'
    ctx.session.msg(mine)
    oob.comm_channel_text(ctx.session, "say", talker, mine)
    for other in ctx.game.logged_in():
        if other is not ctx.session:
            other.msg(theirs)
            oob.comm_channel_text(other, "say", talker, theirs)  # for clients that asked


@command("who", help="who - list the players who are online.")
def who(ctx: Context) -> None:
    players = sorted(s.uname or "?" for s in ctx.game.logged_in())
    ctx.session.msg(f"Players online ({len(players)}): " + ", ".join(players))


@command("ping", logged_in=None, help="ping [TEXT] - the game answers pong TEXT at once.")
def ping(ctx: Context) -> None:
    ctx.session.msg(f"pong {ctx.args}".rstrip())


@command("help", aliases=["?"], logged_in=None,
         help="help [COMMAND] - list commands or explain one.")
def help_(ctx: Context) -> None:
    available = [c for c in ctx.game.commands()
                 if c.logged_in in (None, ctx.session.logged_in)
                 and ctx.game.has_perm(ctx.session, c.needs)]
    if ctx.args:
        for cmd in available:
            if ctx.args.lower() in (cmd.key, *cmd.aliases):
                ctx.session.msg(cmd.help or f"{cmd.key}: no help written.")
                return
        ctx.session.msg(f"No help found for '{ctx.args}'.")
        return
    names = ", ".join(c.key for c in available)
    ctx.session.msg(f"Commands: {names}\nType |whelp COMMAND|n for more.")


@command("quit", aliases=["@quit", "exit"], logged_in=None, help="quit - leave the game.")
def quit_(ctx: Context) -> None:
    ctx.session.disconnect("Goodbye! Come back soon.")  # the disconnect hook tells the others


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

    command(action, admin=True,
            help=f"{action} - (admin) ask the supervisor to {action} the game.")(run)


_admin_request("reload", "|yThe game is reloading its code...|n", everyone=False)
_admin_request("reset", "|yThe game is resetting...|n", everyone=False)
_admin_request("reboot", "|rThe game is rebooting; you will be disconnected.|n", everyone=True)
_admin_request("shutdown", "|rThe game is shutting down!|n", everyone=True)
