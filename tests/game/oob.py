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

from server.api import inputfunc
from server.session import ServerSession


@inputfunc("ping")
def ping(session: ServerSession, args: list[Any], kwargs: dict[str, Any]) -> None:
    """Core.Ping: answered at once, so a client can time its round trip."""
    session.data_out(ping=(args, kwargs))


@inputfunc("char_echo")
def char_echo(session: ServerSession, args: list[Any], kwargs: dict[str, Any]) -> None:
    """Char.Echo: the data sent back unchanged (a test of the whole OOB path)."""
    session.data_out(char_echo=(args, kwargs))
