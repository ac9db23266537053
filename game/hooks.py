"""The default game's hooks: the starter area on a cold start, the room on every login."""

from __future__ import annotations

from server.api import Game, hook
from server.session import ServerSession

from . import oob, starter
from .commands import connection_screen
from .typeclasses import Character


@hook("at_server_start")
def use_our_character(game: Game) -> None:
    """Characters made from now on (at `create`) are of the game's typeclass."""
    game.world.character_typeclass = Character


@hook("at_server_cold_start")
def build_starter_area(game: Game) -> None:
    """First start, reset, start after a shutdown: Hearthstead, unless it is there."""
    starter.build()


@hook("at_session_connect")
def show_connection_screen(game: Game, session: ServerSession) -> None:
    if not session.logged_in:  # an SSH login arrives logged in already
        session.msg(connection_screen(game.name))


@hook("at_session_login")
def entered(game: Game, session: ServerSession) -> None:
    """Every way in (typed, GMCP login, SSH): the room, and the client's panels. The
    room hears "X has entered the hall." from the character (`at_post_puppet`)."""
    character = session.puppet
    if character is None:
        return
    if character.location is None:  # made before there was a world to start in
        start = game.world.start_location
        if start is not None:
            character.move_to(start, quiet=True, move_hooks=False)
    if character.location is not None:
        session.msg(character.location.return_appearance(character))
    oob.send_character(session, character)
    oob.send_room(session, character)
