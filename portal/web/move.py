"""Web sessions in a portal hand-over (`run.py reload-portal`): they move, their pages
reconnect.

A websocket's or an ajax poll's TCP connection cannot move to the new portal (the page
holds the other end, and a refresh would open a new one anyway), but the session can, as
after a refresh: the old portal sends each live web session's state (`WebRecord`: synced
data, page id, held input, output not read yet), then tells its page to come back, and the
new portal holds the session detached, logged in, until the page does (or `web_linger`
ends it). The security rules of a refresh hold: a bound session resumes only by its
secret, an unbound one only from its own address, an ajax one by csessid and cuid.

Old portal (`WebHandOut`, driven by `portal.move.handover.HandOut`):

    stop(held)   take a record of every live session; stop taking its input (websocket:
                 reading paused; ajax: every request is parked, not answered)
    commit()     the new portal holds them: forget them here without ending them in the
                 game; a websocket page gets `connection_close` (restarting) and a 1012
                 close, and reconnects by itself; an ajax page's held poll is answered
                 empty with `Connection: close`, so its next poll goes to the new portal
                 (a parked request is dropped unanswered: the browser resends it on a new
                 connection, or the page opens the session again)
    undo()       the hand-over failed: each session goes on here (detached, if its page
                 was already sent away: it comes back here as after a refresh)

New portal: `adopt(server, record)` for each record, before the new portal listens.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from ipc.frames import SYNCED_FIELDS, InputItem, load_sync_data_into
from portal.handover_frames import WebRecord, fits, pack_messages, unpack_messages
from portal.web.server import WebServer
from portal.web.sessions import WEBSOCKET, AjaxSession, WebSession, WebsocketSession
from portal.web.wire import FORMATS, V1, Message

log = logging.getLogger(__name__)

LOST = "|rSome output for you was lost while the portal was upgraded.|n"
# everything synced but the login, which `restore_login` sets without telling the page
ADOPTED_FIELDS = tuple(name for name in SYNCED_FIELDS if name != "logged_in")


class WebHandOut:
    """The old portal's web sessions in one hand-over."""

    def __init__(self, server: WebServer) -> None:
        self.server = server
        self.moves: list[tuple[WebSession, WebRecord]] = []
        self.committed = False

    def stop(self, held: dict[int, list[InputItem]]) -> Sequence[tuple[WebSession, WebRecord]]:
        """Stop every live web session and take its record (`held`: the link's held
        input by sessid). A session too big for one message stays (and is closed with the
        sessions that cannot move)."""
        handler = self.server.handler
        self.server.moving = True
        for session in list(self.server.hub.sessions):
            if session.ended or session.moved_out or session.sessid not in handler.sessions:
                continue
            session.stop_input(True)
            whole = self._record(session, held.get(session.sessid, []))
            record = self._fitting(whole)
            if record is None:
                log.warning("web session %d: too big to move; it is closed", session.sessid)
                session.stop_input(False)
                replay_delayed(session, whole)
                continue
            self.moves.append((session, record))
        return self.moves

    def _record(self, session: WebSession, items: list[InputItem]) -> WebRecord:
        handler = self.server.handler
        return WebRecord(protocol_key=session.key, session=session.get_sync_data(),
                         csessid=session.csessid or "", cuid=session.cuid,
                         bound=session.bound, wire=session.format.name,
                         waiting=pack_messages(session.unread_output()), input=items,
                         delayed=handler.take_delayed(session),
                         announced=handler.announced(session))

    def _fitting(self, record: WebRecord) -> WebRecord | None:
        """`record`, or without its unread output (and a line saying so) if that is too
        big to move, or None if even that is."""
        if fits(record):
            return record
        fmt = FORMATS.get(record.wire, FORMATS[V1])
        lost = fmt.encode_text(LOST, record.session.protocol_flags, prompt=False)
        smaller = WebRecord(**{**_fields(record), "waiting": pack_messages([lost])})
        return smaller if fits(smaller) else None

    def commit(self) -> None:
        """The new portal holds them (the handler has forgotten them): send every page
        there; close every other HTTP connection."""
        self.committed = True
        for session, _ in self.moves:
            session.hand_out()
        for connection in list(self.server.connections):
            connection.hand_out()

    def undo(self) -> None:
        """The hand-over failed: every session takes input here again; one whose page was
        sent away is this portal's again, detached, with its input."""
        handler = self.server.handler
        self.server.moving = False
        for session, record in self.moves:
            if session.moved_out:
                session.take_back()
                handler.adopt(session, record.announced, record.input)
            session.stop_input(False)
            replay_delayed(session, record)
        self.server.unpark()


def _fields(record: WebRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in record.__struct_fields__}


def adopt(server: WebServer, record: WebRecord) -> WebSession:
    """New portal: the session `record` describes, detached, registered in the hub and
    the handler with its sessid, login and held input. Its page takes it over as after a
    refresh; `replay_delayed` once the run's counters are adopted."""
    handler, hub, data = server.handler, server.hub, record.session
    fmt = FORMATS.get(record.wire, FORMATS[V1])
    session: WebSession
    admitted: str | None = None
    waiting = unpack_messages(record.waiting)
    if record.protocol_key == WEBSOCKET:
        websocket = WebsocketSession(hub, fmt, record.csessid, record.cuid, record.bound)
        websocket.waiting = waiting
        websocket.waiting_bytes = sum(len(m) for m in waiting)
        websocket.detached_at = time.monotonic()
        session = websocket
    else:
        ajax = AjaxSession(hub, fmt, record.csessid, record.cuid)
        for message in waiting:
            ajax.channel.push(_text(message))
        if handler.admit(data.address) is None:  # counted here too, never refused now
            admitted = data.address
        ajax.gone = asyncio.get_running_loop().create_future()
        session = ajax
    session.init_session(record.protocol_key, data.address, handler)
    load_sync_data_into(session, data, ADOPTED_FIELDS)
    session.restore_login(data.logged_in)
    hub.add(session, admitted)
    handler.adopt(session, record.announced, record.input)
    return session


def replay_delayed(session: WebSession, record: WebRecord) -> None:
    """The input the rate limit held back goes through it again (new portal: once it
    numbers input on from the old portal's counter; old portal: the move failed)."""
    for item in record.delayed:
        session.data_in(*item)


def _text(message: Message) -> str:
    return message if isinstance(message, str) else message.decode("utf-8", "replace")


class WebTakeOver:
    """The new portal's web sessions in one take-over (`portal.move.takeover.TakeOver`)."""

    def __init__(self, server: WebServer) -> None:
        self.server = server
        self.sessions: list[tuple[WebSession, WebRecord]] = []

    @property
    def adopted(self) -> int:
        return len(self.sessions)

    def adopt(self, record: WebRecord) -> None:
        self.sessions.append((adopt(self.server, record), record))

    def replay_delayed(self) -> None:
        for session, record in self.sessions:
            replay_delayed(session, record)
