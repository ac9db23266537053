"""The connection screen: `create` and `connect`, with the password typed unseen.

`connect NAME PASSWORD` and `create NAME PASSWORD` stay (clients' auto-login scripts use
them). `connect NAME` asks for the password, and `create NAME` for a password and its
confirmation, with the client's echo turned off (`session.ask(..., hidden=True)`); the
answers go to the reply handlers below, never to the command parser or a log.
Every password check goes through `game.logins`, which throttles and queues them.
"""

from __future__ import annotations

from collections.abc import Callable

from server.accounts import MIN_PASSWORD
from server.api import Account, AccountError, Context, command, reply


@command("create", logged_in=False,
         help="create NAME [PASSWORD] - make a new account (without PASSWORD you are asked "
              "for one, unseen).")
async def create(ctx: Context) -> None:
    name, password = _name_and_password(ctx)
    if not name:
        ctx.session.msg("Usage: create <username> [<password>]")
    elif password:
        await _create(ctx, name, password)
    elif _told(ctx, lambda: ctx.game.logins.check_new_account(name, ctx.session.address)):
        ctx.session.ask("create.password", "Choose a password:", hidden=True, name=name)


@reply("create.password")
def create_password(ctx: Context) -> None:
    if len(ctx.args) < MIN_PASSWORD:
        ctx.session.msg(f"|rPasswords need at least {MIN_PASSWORD} characters; start again "
                        "with: create NAME|n")
        return
    ctx.session.ndb["new_password"] = ctx.args  # memory only: never synced or stored
    ctx.session.ask("create.confirm", "Type it again:", hidden=True, **ctx.data)


@reply("create.confirm")
async def create_confirm(ctx: Context) -> None:
    first = ctx.session.ndb.pop("new_password", None)
    if first is None:  # the game reloaded in between, and memory with it
        ctx.session.msg("|rThe game restarted meanwhile; start again with: create NAME|n")
    elif first != ctx.args:
        ctx.session.msg("|rThe two passwords differ; start again with: create NAME|n")
    else:
        await _create(ctx, str(ctx.data["name"]), first)


@command("connect", aliases=["conn", "con"], logged_in=False,
         help="connect NAME [PASSWORD] - log in (without PASSWORD you are asked for it, "
              "unseen).")
async def connect(ctx: Context) -> None:
    name, password = _name_and_password(ctx)
    if not name:
        ctx.session.msg("Usage: connect <username> [<password>]")
    elif password:
        await _connect(ctx, name, password)
    elif _told(ctx, lambda: ctx.game.logins.check_allowed(name, ctx.session.address)):
        ctx.session.ask("connect.password", "Password:", hidden=True, name=name)


@reply("connect.password")
async def connect_password(ctx: Context) -> None:
    if not ctx.args:
        ctx.session.msg("No password given; nothing was checked.")
        return
    await _connect(ctx, str(ctx.data["name"]), ctx.args)


def _name_and_password(ctx: Context) -> tuple[str, str]:
    name, _, password = ctx.args.partition(" ")
    return name, password.strip()


def _told(ctx: Context, check: Callable[[], None]) -> bool:
    """Run `check`; on AccountError tell the player and return False."""
    try:
        check()
    except AccountError as exc:
        ctx.session.msg(f"|r{exc}|n")
        return False
    return True


async def _connect(ctx: Context, name: str, password: str) -> None:
    try:
        account = await ctx.game.logins.check_password(name, password, ctx.session.address)
        await _enter(ctx, account)
    except AccountError as exc:
        ctx.session.msg(f"|r{exc}|n")


async def _create(ctx: Context, name: str, password: str) -> None:
    try:
        account = await ctx.game.logins.create_account(name, password, ctx.session.address)
    except AccountError as exc:
        ctx.session.msg(f"|r{exc}|n")
        return
    ctx.session.msg(f"A new account '{account.name}' was created. Welcome!")
    if not ctx.world.characters_of(account.uid):  # its character, in the start room
        ctx.world.create_character(account.uid, account.name)
    await _enter(ctx, account)


async def _enter(ctx: Context, account: Account) -> None:
    """Log in (AccountError if the account is playing elsewhere and that is refused); the
    `at_session_login` hook (game/hooks.py) greets the room and looks, for every way in."""
    if ctx.session.logged_in:
        return
    await ctx.game.login(ctx.session, account.uid, account.name)
