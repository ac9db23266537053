"""Commands that show and set how the game talks to a player's client."""

from __future__ import annotations

import codecs
import json

from server.api import Context, command


@command("@flags", aliases=["@protocol"], logged_in=None,
         help="@flags [FLAG ...] - what your client told the game (all flags, or those named).")
def flags(ctx: Context) -> None:
    session = ctx.session
    wanted = ctx.args.upper().split()
    shown = sorted(k for k in session.protocol_flags if not wanted or k in wanted)
    lines = [f"protocol: {session.protocol_key}"]
    for key in shown:
        value = json.dumps(session.protocol_flags[key], sort_keys=True, default=str)
        lines.append(f"flag {key} = {value}".replace("|", "||"))
    lines.append(f"({len(shown)} flags)")
    ctx.session.msg("\n".join(lines))


@command("encoding", logged_in=None,
         help="encoding [NAME] - show or set your client's character set (utf-8, latin-1, cp437).")
def encoding(ctx: Context) -> None:
    session = ctx.session
    if not ctx.args:
        session.msg(f"Your encoding is {session.protocol_flags.get('ENCODING', 'utf-8')}.")
        return
    try:
        name = codecs.lookup(ctx.args).name
    except LookupError:
        session.msg(f"|rUnknown encoding '{ctx.args}'.|n")
        return
    session.protocol_flags["ENCODING"] = name
    session.msg(f"Your encoding is now {name}.")
