"""Commands that show and set how the game talks to a player's client."""

from __future__ import annotations

import codecs
import json

from server.api import Context, command

# Printable ASCII, whitespace, backslash escapes and a 70-letter word (idna refuses labels
# over 63): a real character set writes and reads these unchanged.
_PROBE = "".join(chr(c) for c in range(32, 127)) + "\t\r\n\\u00e9\\x41" + "w" * 70


def text_encoding(name: str) -> str | None:
    """The codec name if `name` is a real character set, else None.

    Only text encodings that keep ASCII as it is are taken, so `encoding utf-8` typed by a
    player in any of them still reads as itself: nobody can lock themselves out. (The
    portal checks the same again before it applies it.)
    """
    if not 0 < len(name) <= 64:
        return None
    try:
        info = codecs.lookup(name)
        if not getattr(info, "_is_text_encoding", True):
            return None
        data = _PROBE.encode(info.name)
        if data != _PROBE.encode("ascii") or data.decode(info.name) != _PROBE:
            return None
    except Exception:  # any codec may fail in any way: that is what we are finding out
        return None
    return info.name


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
    name = text_encoding(ctx.args.strip())
    if name is None:
        session.msg(f"|rUnknown encoding '{ctx.args}'. Name a character set such as "
                    "utf-8, latin-1 or cp437.|n")
        return
    session.protocol_flags["ENCODING"] = name
    session.msg(f"Your encoding is now {name}.")
