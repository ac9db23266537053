"""The default game's hooks."""

from __future__ import annotations

from server.api import Game, hook, oob
from server.session import ServerSession

from .commands import connection_screen, describe_room, room_oob


@hook("at_session_connect")
def show_connection_screen(game: Game, session: ServerSession) -> None:
    if not session.logged_in:  # an SSH login arrives logged in already
        session.msg(connection_screen(game.name))


@hook("at_session_login")
def entered(game: Game, session: ServerSession) -> None:
    for other in game.logged_in():
        if other is not session:
            other.msg(f"{session.uname} has entered the hall.")
    session.msg(describe_room(game, session))
    oob.char_name(session, session.uname or "")
    room_oob(session)


@hook("at_session_disconnect")
def left(game: Game, session: ServerSession) -> None:
    if session.logged_in:
        for other in game.logged_in():
            if other is not session:
                other.msg(f"{session.uname} has left the hall.")
