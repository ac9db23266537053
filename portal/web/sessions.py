"""Web sessions: one per page, over a websocket or ajax, outliving a dropped connection.

A browser page is identified by the `csessid` it sends (our page keeps a random one per
tab in sessionStorage, so a refresh sends the same one; Evennia's page sends its Django
session key). When a page's connection goes away without saying goodbye (a refresh, a
closed tab, a phone changing networks), its session is *detached*: the game keeps it,
output waits for it (bounded by `max_output_buffer`), and the next connection of the same
page (same `csessid` and protocol) takes it over, with its login, instead of leaving a
dead session behind. A detached session that nobody takes over within `web_linger`
seconds is ended, so dead sessions never pile up (Evennia issues #3442 and #2734).

Only the page itself may take a session over, so the id must be something a reader of
logs does not have. Our page's websocket sends its id as a secret in a header (the
`hearth.secret.<id>` subprotocol it offers beside `v1.evennia.com`), never in the URL:
such a session is *bound* and only that secret resumes it, from any address. Evennia's
page puts its csessid in the `/ws` URL, which proxies log: a session opened that way is
resumed only from the address that opened it. Ajax ids travel in POST bodies only.

`WebHub` keeps the sessions by `csessid` and runs one periodic sweep for all of them:
websocket pings, ajax keepalives and the end of detached sessions (`due()`, pure).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Final, Literal, Protocol

from portal.guard import TokenBucket
from portal.session import PortalSession
from portal.sessions import PortalSessionHandler
from portal.web.ajax import AjaxChannel, PollState
from portal.web.wire import Message, WireFormat, encode_array

log = logging.getLogger(__name__)

WEBSOCKET: Final = "webclient/websocket"
AJAX: Final = "webclient/ajax"
NO_CSESSID: Final = frozenset({"", "false", "null", "undefined", "none"})
LAST_WORDS: Final = 2.0  # seconds an ended ajax session's last output waits for a poll


class Link(Protocol):
    """The connection a websocket session currently writes to (`portal.web.server`)."""

    def send_messages(self, messages: list[Message]) -> None: ...
    def close_link(self, code: int, reason: str) -> None: ...


def clean_csessid(value: str) -> str:
    """A usable page id, or '' (no takeover) for Evennia's 'false' and for junk."""
    value = value.strip()
    if value.lower() in NO_CSESSID or len(value) > 128 or not value.isprintable():
        return ""
    return value


Action = Literal["none", "ping", "drop", "keepalive", "end"]


def due(kind: str, *, silent_for: float, detached_for: float | None, keepalive: float,
        linger: float) -> Action:
    """What the sweep does to one session (pure; `detached_for` None while attached).

    A websocket silent for `keepalive` is pinged, and dropped (detached) at twice that;
    a detached session of either kind is ended after `linger`; an ajax session whose page
    sent nothing for `linger` (its polls stopped) is ended too.
    """
    if detached_for is not None:
        return "end" if detached_for >= linger else "none"
    if kind == WEBSOCKET:
        if silent_for >= 2 * keepalive:
            return "drop"
        return "ping" if silent_for >= keepalive else "none"
    return "end" if silent_for >= linger else "keepalive"


class WebSession(PortalSession):
    """What both web transports share: encoding output, input checks, disconnecting."""

    def __init__(self, hub: WebHub, key: str, fmt: WireFormat, csessid: str, cuid: str,
                 bound: bool = False) -> None:
        PortalSession.__init__(self)
        self.hub = hub
        self.key = key
        self.format = fmt
        self.csessid = csessid or None
        self.cuid = cuid
        self.bound = bound  # csessid is a secret from a header (only it resumes the session)
        self.ended = False
        self.moved_out = False  # a portal hand-over gave it to the new portal
        self._write_scheduled = False
        self._logged_in = False

    @property
    def logged_in(self) -> bool:
        return self._logged_in

    @logged_in.setter
    def logged_in(self, value: bool) -> None:
        """The handler sets this on SLogin (and SSync): tell the page, as Evennia does."""
        if value and not self._logged_in and self.sessid:
            self.send_default("logged_in", [], {})
        self._logged_in = value

    def restore_login(self, logged_in: bool) -> None:
        """Adopted from the old portal: logged in as it was, without telling a page that
        is not there (its return is told, as after a refresh)."""
        self._logged_in = logged_in

    # ------------------------------------------------------------ input

    def receive_message(self, message: Message) -> None:
        """One websocket message or ajax `data` field from the page."""
        decoded = self.format.decode(message)
        if decoded is None:
            return  # as Evennia: a malformed message is ignored without a reply
        cmdname, args, kwargs = decoded
        if cmdname == "websocket_close":
            return  # Evennia's page says it is unloading; its close (or not) follows
        if cmdname == "text":  # the guard cleans it further, for every protocol
            line = str(args[0]) if args else ""
            if len(line.encode("utf-8")) > self.hub.handler.settings.max_line:
                self.send_text(f"|rLine too long ({len(line.encode())} bytes, limit "
                               f"{self.hub.handler.settings.max_line}); dropped.|n")
                return
            args = [line]
        self.data_in(cmdname, args, kwargs)

    # ------------------------------------------------------------ output

    def send_text(self, text: str, **kwargs: Any) -> None:
        self.queue_message(self.format.encode_text(text, self.protocol_flags, prompt=False))

    def send_prompt(self, text: str, **kwargs: Any) -> None:
        self.queue_message(self.format.encode_text(text, self.protocol_flags, prompt=True))

    def send_default(self, cmdname: str, args: list[Any], kwargs: dict[str, Any]) -> None:
        message = self.format.encode_oob(cmdname, args, kwargs)
        if message is not None:
            self.queue_message(message)

    def queue_message(self, message: Message) -> None:
        raise NotImplementedError

    def output_waiting(self) -> None:
        """Write once, at the end of this loop turn, however much the game sent."""
        if not self._write_scheduled:
            self._write_scheduled = True
            self.hub.handler.write_soon(self)

    def flush_output(self) -> None:
        self._write_scheduled = False

    # ------------------------------------------------------------ ending

    def disconnect(self, reason: str = "") -> None:
        """End the session (the game or the portal closes it): say why, then close."""
        if self.ended:
            return
        if reason:
            self.send_text(reason)
        restarting = self.hub.handler.coming_back
        # Evennia's pages and ours close on this; our page reconnects when `restarting`
        self.send_default("connection_close", [reason],
                          {"restarting": True} if restarting else {})
        self.flush_output()
        self.end(reason, code=1012 if restarting else 1000)

    def end(self, reason: str, code: int = 1000) -> None:
        """Forget the session everywhere; close its connection if it has one."""
        if self.ended or self.moved_out:
            return
        self.ended = True
        self.hub.forget(self)
        self.hub.handler.disconnect(self, reason)
        self.close_transport(code, reason)
        if self.gone is not None and not self.gone.done() and not self.has_link():
            self.gone.set_result(None)
        self.hub.release(self)

    def close_transport(self, code: int, reason: str) -> None:
        raise NotImplementedError

    def has_link(self) -> bool:
        raise NotImplementedError

    def page_present(self) -> bool:
        """True while a page is connected (a socket open, or an ajax poll held)."""
        raise NotImplementedError

    def sweep(self, now: float) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------ portal hand-over

    def unread_output(self) -> list[Message]:
        """Output its page has not read yet (it moves with the session)."""
        raise NotImplementedError

    def stop_input(self, stopped: bool) -> None:
        """A hand-over takes (True) or gives back (False) this session: no input is taken
        meanwhile."""
        raise NotImplementedError

    def hand_out(self) -> None:
        """The new portal holds this session now: forget it here without ending it in the
        game, and send its page to the new portal."""
        self.moved_out = True
        self.hub.forget(self)

    def take_back(self) -> None:
        """The hand-over failed after `hand_out`: this portal holds it again, detached
        until its page comes back (the caller gives it back to the handler)."""
        self.moved_out = False
        self.hub.add(self, None)


class WebsocketSession(WebSession):
    """A page connected over a websocket; `link` is None while it is detached."""

    def __init__(self, hub: WebHub, fmt: WireFormat, csessid: str, cuid: str,
                 bound: bool = False) -> None:
        super().__init__(hub, WEBSOCKET, fmt, csessid, cuid, bound)
        self.link: Link | None = None
        self.waiting: list[Message] = []  # output while detached or before the next flush
        self.waiting_bytes = 0
        self.detached_at: float | None = None
        self.last_heard = time.monotonic()
        self.pinged = False

    def attach(self, link: Link) -> None:
        """A connection (the first, or a refreshed page's) now carries this session."""
        old, self.link = self.link, link
        returning = old is not None or self.detached_at is not None
        if old is not None:
            old.close_link(4000, "this session was opened again elsewhere")
        self.detached_at = None
        self.last_heard = time.monotonic()
        if self.gone is None or self.gone.done():
            self.gone = asyncio.get_running_loop().create_future()
        if returning and self.logged_in:
            self.send_default("logged_in", [], {})  # the new page does not know yet
        if self.waiting:
            self.output_waiting()

    def detach(self, link: Link) -> None:
        """`link`'s socket closed. Unless the session has ended, it now waits for its page
        to come back (a refresh, a reconnect)."""
        if link is not self.link:
            return  # a connection this session already left
        self.link = None
        if not self.ended:
            self.detached_at = time.monotonic()
        if self.gone is not None and not self.gone.done():
            self.gone.set_result(None)

    def heard(self) -> None:
        self.last_heard = time.monotonic()
        self.pinged = False

    def queue_message(self, message: Message) -> None:
        if self.ended and self.link is None:
            return
        self.waiting.append(message)
        self.waiting_bytes += len(message)
        if self.waiting_bytes > self.hub.handler.settings.max_output_buffer:
            log.warning("session %d (%s): %d bytes of output wait for a page that does not "
                        "read; ending it", self.sessid, self.address, self.waiting_bytes)
            self.waiting.clear()
            self.waiting_bytes = 0
            self.end("output not read", code=1008)
            return
        self.output_waiting()

    def flush_output(self) -> None:
        super().flush_output()
        if self.link is not None and self.waiting:
            messages, self.waiting, self.waiting_bytes = self.waiting, [], 0
            self.link.send_messages(messages)

    def close_transport(self, code: int, reason: str) -> None:
        """Close the socket; `gone` is set when it has closed (`detach`)."""
        if self.link is not None:
            self.link.close_link(code, reason)

    def has_link(self) -> bool:
        return self.link is not None

    def page_present(self) -> bool:
        return self.link is not None

    def pause_input(self) -> None:
        if self.link is not None:
            self.hub.pause(self.link, True, "held")

    def resume_input(self) -> None:
        if self.link is not None:
            self.hub.pause(self.link, False, "held")

    def throttle_input(self, paused: bool) -> None:
        if self.link is not None:
            self.hub.pause(self.link, paused, "rate")

    def sweep(self, now: float) -> None:
        detached = None if self.detached_at is None else now - self.detached_at
        action = due(WEBSOCKET, silent_for=now - self.last_heard, detached_for=detached,
                     keepalive=self.hub.keepalive, linger=self.hub.linger)
        if action == "end":
            self.end("the page went away")
        elif action == "drop" and self.link is not None:
            log.info("session %d (%s): no answer to a ping; waiting for the page to come "
                     "back", self.sessid, self.address)
            link = self.link
            self.detach(link)
            link.close_link(1011, "no answer to ping")
        elif action == "ping" and not self.pinged and self.link is not None:
            self.pinged = True
            self.hub.ping(self.link)

    def unread_output(self) -> list[Message]:
        return list(self.waiting)

    def stop_input(self, stopped: bool) -> None:
        if self.link is not None:
            self.hub.pause(self.link, stopped, "handover")

    def hand_out(self) -> None:
        """Tell the page to reconnect (it does, within a second, to the new portal, which
        has its unread output) and close its socket with 1012 (service restart)."""
        super().hand_out()
        link, self.link = self.link, None
        if link is None:
            return
        close = self.format.encode_oob("connection_close", [""], {"restarting": True})
        link.send_messages([close] if close is not None else [])
        link.close_link(1012, "the portal is being upgraded")

    def take_back(self) -> None:
        super().take_back()
        if self.link is None and self.detached_at is None:
            self.detached_at = time.monotonic()


class AjaxSession(WebSession):
    """A page connected by ajax long polls (`portal.web.ajax.AjaxChannel` holds the state)."""

    def __init__(self, hub: WebHub, fmt: WireFormat, csessid: str, cuid: str) -> None:
        super().__init__(hub, AJAX, fmt, csessid, cuid)
        self.channel = AjaxChannel(time.monotonic(), keepalive=hub.keepalive,
                                   max_queued=hub.handler.settings.max_output_buffer)
        self.held: Callable[[str], None] | None = None  # answers the held poll
        self.paused_by: set[str] = set()  # input held, or over the command rate
        self.held_inputs: list[Callable[[], None]] = []  # answers deferred while paused
        settings = hub.handler.settings
        # requests that cost without output to show for it (input, keepalive, a poll with
        # nothing queued) come at most at the command rate, whatever the connections
        self.requests = (TokenBucket.full(settings.commands_per_second, settings.command_burst,
                                          time.monotonic())
                         if settings.commands_per_second > 0 else None)

    def request_wait(self, mode: str, now: float) -> float:
        """Seconds the request `mode` must wait for its turn (0: take it now)."""
        if self.requests is None or (mode == "receive" and self.channel.queue):
            return 0.0
        return 0.0 if self.requests.take(now) else max(self.requests.wait(now), 0.001)

    def queue_message(self, message: Message) -> None:
        if self.ended:
            return
        text = message if isinstance(message, str) else message.decode("utf-8", "replace")
        if not self.channel.push(text):
            log.warning("session %d (%s): %d bytes of output wait for polls that do not "
                        "come; ending it", self.sessid, self.address, self.channel.queued_bytes)
            self.channel.queue.clear()
            self.end("output not read")
            return
        self.output_waiting()

    def flush_output(self) -> None:
        super().flush_output()
        answer = self.channel.answer()
        if answer is not None:
            self._answer(answer)

    def poll(self, answer: Callable[[str], None], batch: bool) -> None:
        """A `receive` request; `answer(body)` answers it, now or later."""
        now_answer, replaced = self.channel.poll(time.monotonic(), batch=batch)
        if replaced is not None:
            self._answer(replaced)
        if now_answer is not None:
            answer(now_answer)
        else:
            self.held = answer

    def take_over(self, cuid: str) -> None:
        """A new load of the page (same csessid, new cuid) takes this session over."""
        self.cuid = cuid
        held, self.held = self.held, None
        if held is not None:
            self.channel.poll_lost()
            held(encode_array("connection_close",
                              ["This session was opened again in another window."], {}))
        if self.logged_in:
            self.send_default("logged_in", [], {})  # the new page does not know yet

    def poll_lost(self, answer: Callable[[str], None]) -> None:
        if answer is self.held:
            self.held = None
            self.channel.poll_lost()

    def _answer(self, body: str) -> None:
        held, self.held = self.held, None
        if held is not None:
            held(body)

    def close_transport(self, code: int, reason: str) -> None:
        """Answer the held poll with what is left; with no poll held (the page is between
        two polls), keep it as the session's last words for the next poll to take, for
        `LAST_WORDS` seconds: the goodbye and `connection_close` reach the page."""
        self.channel.close()
        if self.held is not None:
            self._answer(self.channel._take() if self.channel.queue else "\"\"")
        elif self.channel.queue and self.csessid:
            # Evennia's page takes one message per poll: its last, `connection_close`
            words = self.channel._take() if self.channel.batch else self.channel.queue[-1]
            self.hub.keep_last_words(self, words)
            if self.gone is None or self.gone.done():
                self.gone = asyncio.get_running_loop().create_future()
        self.channel.queue.clear()

    def words_taken(self) -> None:
        """The last words were answered to a poll, or expired."""
        if self.gone is not None and not self.gone.done():
            self.gone.set_result(None)

    def has_link(self) -> bool:
        """True only while last words wait for a poll (answered polls leave nothing)."""
        return self.hub.has_last_words(self)

    def page_present(self) -> bool:
        return self.channel.state is PollState.HELD

    @property
    def paused(self) -> bool:
        """While True, `input` requests are answered only later: the page sends its next
        line after the answer, so it waits, as a telnet client whose socket is not read."""
        return bool(self.paused_by)

    def _set_paused(self, reason: str, paused: bool) -> None:
        if paused:
            self.paused_by.add(reason)
            return
        self.paused_by.discard(reason)
        if not self.paused_by:
            answers, self.held_inputs = self.held_inputs, []
            for answer in answers:
                answer()

    def pause_input(self) -> None:
        self._set_paused("held", True)

    def resume_input(self) -> None:
        self._set_paused("held", False)

    def throttle_input(self, paused: bool) -> None:
        self._set_paused("rate", paused)

    def sweep(self, now: float) -> None:
        keepalive = self.channel.tick(now)
        if keepalive is not None:
            self._answer(keepalive)
        action = due(AJAX, silent_for=self.channel.idle_for(now), detached_for=None,
                     keepalive=self.hub.keepalive, linger=self.hub.linger)
        if action == "end":
            self.end("the page stopped polling")

    def unread_output(self) -> list[Message]:
        return list(self.channel.queue)

    def stop_input(self, stopped: bool) -> None:
        """(The web server parks every ajax request while a hand-over runs.)"""

    def hand_out(self) -> None:
        """Answer the input requests waiting on the game: that input moves. The held poll
        is answered by its connection (`WebConnection.hand_out`), so the page's next poll
        reaches the new portal."""
        super().hand_out()
        answers, self.held_inputs = self.held_inputs, []
        for answer in answers:
            answer()


def _page_key(session: WebSession) -> tuple[str, str, bool]:
    return session.key, session.csessid or "", session.bound


class WebHub:
    """Every web session by page id, the takeover rule, and the periodic sweep."""

    def __init__(self, handler: PortalSessionHandler, *, linger: float, keepalive: float,
                 ping: Callable[[Link], None],
                 pause: Callable[[Link, bool, str], None]) -> None:
        self.handler = handler
        self.linger = linger
        self.keepalive = keepalive
        self.ping = ping
        self.pause = pause
        self.sessions: set[WebSession] = set()
        # by (protocol, csessid, bound): a URL's csessid never finds a bound session
        self.by_page: dict[tuple[str, str, bool], list[WebSession]] = {}
        self.admitted: dict[WebSession, str] = {}  # ajax sessions: the address admitted
        # ended ajax sessions' undelivered output, by page load, until a poll takes it
        self.last_words: dict[tuple[str, str], tuple[AjaxSession, str, float]] = {}
        self._timer: asyncio.TimerHandle | None = None

    def add(self, session: WebSession, admitted_as: str | None) -> None:
        self.sessions.add(session)
        if session.csessid:
            self.by_page.setdefault(_page_key(session), []).append(session)
        if admitted_as is not None:
            self.admitted[session] = admitted_as
        if self._timer is None:
            self._schedule()

    def takeover(self, key: str, csessid: str, cuid: str, *, bound: bool = False,
                 address: str | None = None) -> WebSession | None:
        """The session a returning page (same csessid and protocol) should take over.

        `bound`: `csessid` is a header's secret, and only bound sessions are looked at.
        `address`: if given, an unbound session is taken over only from its own address.

        A websocket session is taken over when its socket has closed (a refresh) or by the
        very same page load (same cuid: a reconnect before we noticed the old socket die);
        a live session of another load with the same csessid (a duplicated tab, or
        Evennia's page in two tabs, which share the Django session key) is left alone.
        An ajax session is always taken over by a new load: Chromium keeps an aborted
        poll's connection open after a refresh, so a held poll proves nothing; the old
        page, if it still exists, is told (`AjaxSession.take_over`).
        """
        candidates = self.by_page.get((key, csessid, bound), []) if csessid else []
        for session in reversed(candidates):
            if address is not None and not bound and session.address != address:
                continue
            if session.cuid == cuid or not session.page_present() or key == AJAX:
                return session
        return None

    def forget(self, session: WebSession) -> None:
        self.sessions.discard(session)
        if session.csessid:
            page = self.by_page.get(_page_key(session), [])
            if session in page:
                page.remove(session)
            if not page:
                self.by_page.pop(_page_key(session), None)

    def release(self, session: WebSession) -> None:
        address = self.admitted.pop(session, None)
        if address is not None:
            self.handler.release(address)

    def keep_last_words(self, session: AjaxSession, body: str) -> None:
        assert session.csessid is not None
        self.last_words[(session.csessid, session.cuid)] = (
            session, body, time.monotonic() + LAST_WORDS)
        if self._timer is None:
            self._schedule()

    def has_last_words(self, session: AjaxSession) -> bool:
        words = self.last_words.get((session.csessid or "", session.cuid))
        return words is not None and words[0] is session

    def take_last_words(self, csessid: str, cuid: str) -> str | None:
        """What an ended session left for this page load's next poll (once), if anything."""
        words = self.last_words.pop((csessid, cuid), None)
        if words is None:
            return None
        words[0].words_taken()
        return words[1]

    def find_ajax(self, csessid: str, cuid: str) -> AjaxSession | None:
        for session in self.by_page.get((AJAX, csessid, False), []):
            if isinstance(session, AjaxSession) and session.cuid == cuid:
                return session
        return None

    def _schedule(self) -> None:
        interval = max(0.05, min(self.keepalive, self.linger) / 5)
        self._timer = asyncio.get_running_loop().call_later(interval, self._sweep)

    def _sweep(self) -> None:
        self._timer = None
        now = time.monotonic()
        for session in list(self.sessions):
            try:
                session.sweep(now)
            except Exception:
                log.exception("sweeping web session %d", session.sessid)
        for page, (session, _, until) in list(self.last_words.items()):
            if now >= until:
                del self.last_words[page]
                session.words_taken()
        if self.sessions or self.last_words:
            self._schedule()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
