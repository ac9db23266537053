"""The web port's thin asyncio shell: one `WebConnection` per TCP connection.

Bytes go to `HttpConnection` (h11); a request is routed: `GET /` and `/static/*` serve
the page, `POST /webclientdata` is Evennia's ajax transport, and a websocket upgrade on
`/ws` is accepted with the `websockets` library's sans-I/O `ServerProtocol` (its
`accept()` checks the handshake and picks the subprotocol; a second instance, created
OPEN, then frames the messages). No compression extension is offered: it would cost a
zlib context (hundreds of KB) per idle session.

Input gets telnet's budget (README, "Limits"): a websocket's bytes are parsed in slices
(`portal.web.websocket.WebsocketInput`: `read_max_bytes` bytes and `read_max_steps // 8`
frames at most, a frame costing about eight telnet steps), one slice per loop turn, with
reading paused while a backlog waits; pipelined HTTP requests are taken one per loop
turn, after the answer to the one before. The time each slice or request takes is charged
to the connection (`read_cpu_share` after `read_cpu_burst`, `portal.guard.WorkBudget`):
one that used more rests, not reading, before its next. Nothing of a connection runs
once it has closed.

Sessions are resumed only by their own page (`portal.web.sessions`): our page sends its
secret page id as a `hearth.secret.<id>` subprotocol offer (a header; the URL carries
none), and a request whose `Origin` is not allowed (`web_allowed_origins`, the page's own
host by default) is refused with 403 before it can name a session. A request without
`Origin` (a non-browser client) is let in: it still needs the secret.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import re
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, cast
from urllib.parse import urlsplit

from websockets.datastructures import Headers
from websockets.frames import Close, CloseCode
from websockets.http11 import Request as WsRequest
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from ipc.settings import PortalSettings
from portal.guard import WorkBudget
from portal.sessions import PortalSessionHandler
from portal.web.ajax import AjaxRequest, parse_form
from portal.web.http import BadRequest, HttpConnection, PeerClosed, Request
from portal.web.sessions import (
    AJAX,
    WEBSOCKET,
    AjaxSession,
    Link,
    WebHub,
    WebsocketSession,
    clean_csessid,
)
from portal.web.static import StaticFiles
from portal.web.websocket import FRAME_STEPS, WebsocketInput
from portal.web.wire import FORMATS, SUBPROTOCOLS, V1, Message, choose_subprotocol, encode_array

log = logging.getLogger(__name__)
# websockets logs every open and close at INFO; our own log lines say what matters.
WS_LOG = logging.getLogger("portal.web.websocket")
WS_LOG.setLevel(logging.WARNING)

MAX_HEAD: Final = 16384
MAX_HEADERS: Final = 64
REQUEST_TIMEOUT: Final = 30.0  # a request must arrive whole within this (slow loris)
JSON: Final = [("Content-Type", "application/json; charset=utf-8"),
               ("Cache-Control", "no-store")]
_OURS: Final = frozenset({"budget", "http"})  # pause reasons that do not stop parsing
SECRET_PREFIX: Final = "hearth.secret."
SECRET: Final = re.compile(r"[0-9A-Za-z_-]{16,128}")


def origin_allowed(origin: str | None, host: str | None, allowed: Sequence[str]) -> bool:
    """Whether a request with this `Origin` may use the web sessions: none (not a browser),
    one of `allowed` (`*`: any), or the page's own host name (the request's `Host`; the
    port is not compared, as a proxy's `Host $host` drops it)."""
    if origin is None:
        return True
    origin = origin.strip().lower().rstrip("/")
    if "*" in allowed or origin in (a.lower().rstrip("/") for a in allowed):
        return True
    try:
        name = urlsplit(origin).hostname
        own = urlsplit(f"//{(host or '').strip()}").hostname
    except ValueError:
        return False
    return bool(name) and name == own


def offered_secret(header: str | None) -> str:
    """Our page's secret page id from its `hearth.secret.<id>` subprotocol offer, or ''."""
    for offer in (header or "").split(","):
        offer = offer.strip()
        if offer.startswith(SECRET_PREFIX) and SECRET.fullmatch(offer[len(SECRET_PREFIX):]):
            return offer[len(SECRET_PREFIX):]
    return ""


def _refusal(text: str) -> bytes:
    """A whole 503 response for a refused connection (no request has been read yet)."""
    body = text.encode("utf-8") + b"\n"
    return (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


def forwarded_address(peer: str, header: str | None,
                      trusted: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> str:
    """The client's address: `peer`, unless `peer` is a trusted proxy that says otherwise.

    X-Forwarded-For is read from the right (the entry our proxy added) and the first
    address that is not itself a trusted proxy is the client's; junk is ignored.
    """
    if not header or not _in(peer, trusted):
        return peer
    for entry in reversed(header.split(",")[-16:]):
        entry = entry.strip()
        try:
            ipaddress.ip_address(entry)
        except ValueError:
            return peer
        if not _in(entry, trusted):
            return entry
    return peer


def _in(address: str, networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]
        ) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


@dataclass
class WebServer:
    """What every connection of the web port shares."""

    handler: PortalSessionHandler
    settings: PortalSettings
    game_name: str
    hub: WebHub
    static: StaticFiles
    trusted: list[ipaddress.IPv4Network | ipaddress.IPv6Network]
    connections: set[WebConnection] = field(default_factory=set)  # open, for a hand-over
    moving: bool = False  # a hand-over runs: ajax requests are parked (`portal.web.move`)

    def unpark(self) -> None:
        """A hand-over failed: answer the ajax requests it parked."""
        for connection in list(self.connections):
            connection.unpark()

    @classmethod
    def create(cls, handler: PortalSessionHandler, settings: PortalSettings,
               game_name: str) -> WebServer:
        hub = WebHub(handler, linger=settings.web_linger, keepalive=settings.web_keepalive,
                     ping=lambda link: cast(WebConnection, link).ping(),
                     pause=lambda link, paused, why: cast(WebConnection, link).pause(paused,
                                                                                   why))
        trusted = [ipaddress.ip_network(p, strict=False) for p in settings.web_trusted_proxies]
        return cls(handler, settings, game_name, hub, StaticFiles(game_name), trusted)

    def connection(self) -> WebConnection:
        return WebConnection(self)

    @property
    def max_message(self) -> int:
        """Largest websocket message or ajax body: a whole max_line, JSON-escaped."""
        return 2 * self.settings.max_line + 1024


class WebConnection(asyncio.Protocol):
    """One TCP connection: HTTP requests, then possibly a websocket carrying a session."""

    def __init__(self, server: WebServer) -> None:
        self.server = server
        self.http = HttpConnection(max_head=MAX_HEAD, max_headers=MAX_HEADERS,
                                   max_body=server.max_message + 1024)
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self.admitted: str | None = None  # the address admitted for this connection
        self.ws: ServerProtocol | None = None
        self.wsin: WebsocketInput | None = None
        self.session: WebsocketSession | None = None
        self.held: tuple[AjaxSession, Any] | None = None  # a poll waiting on this connection
        self.timer: asyncio.TimerHandle | None = None
        self.paused: set[str] = set()
        settings = server.settings
        self.work = WorkBudget.full(settings.read_cpu_share, settings.read_cpu_burst,
                                    time.monotonic())
        self.more: asyncio.Handle | None = None  # the next slice or request, scheduled
        self.closed = False
        self.peer_closed = False  # the page's close frame was handled
        self.waiting: asyncio.TimerHandle | None = None  # an ajax request waits its turn
        self.parked: Request | None = None  # an ajax request that came during a hand-over

    # ------------------------------------------------------------ asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.server.connections.add(self)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if isinstance(peer, tuple) else str(peer or "")
        # A trusted proxy is admitted per client it forwards (at upgrade or ajax init).
        if not _in(self.peer, self.server.trusted) and not self._admit(self.peer):
            return
        self._arm_timer()

    def data_received(self, data: bytes) -> None:
        start = time.perf_counter()
        if self.wsin is not None:
            self.wsin.receive_data(data)
            if self.more is None and not self._blocked():
                self._websocket_slice()
        else:
            self.http.receive_data(data)
            self._http_events()
        self._charge(start)

    def eof_received(self) -> bool | None:
        if self.wsin is not None:
            self.wsin.receive_eof()
            self._websocket_written()
        else:
            self.http.receive_data(b"")
            self._http_events()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connections.discard(self)
        self.parked = None
        for handle in (self.more, self.waiting):
            if handle is not None:
                handle.cancel()
        self.more = self.waiting = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.held is not None:
            session, answer = self.held
            self.held = None
            session.poll_lost(answer)
        if self.session is not None:
            self.session.detach(cast(Link, self))
        if self.admitted is not None:
            self.server.handler.release(self.admitted)
            self.admitted = None

    def pause_writing(self) -> None:
        self.pause(True, "output")

    def resume_writing(self) -> None:
        self.pause(False, "output")

    # ------------------------------------------------------------ helpers

    def _admit(self, address: str) -> bool:
        refusal = self.server.handler.admit(address)
        if refusal is not None:
            assert self.transport is not None
            self.transport.write(_refusal(refusal))
            self.transport.close()
            return False
        self.admitted = address
        return True

    def _arm_timer(self) -> None:
        if self.timer is None:
            self.timer = asyncio.get_running_loop().call_later(REQUEST_TIMEOUT, self._timed_out)

    def _timed_out(self) -> None:
        self.timer = None
        if self.ws is None and self.held is None and self.transport is not None:
            self.transport.close()  # an idle keep-alive connection or a slow request

    def _write(self, data: bytes) -> None:
        transport = self.transport
        if not data or transport is None or transport.is_closing():
            return
        transport.write(data)
        if transport.get_write_buffer_size() > self.server.settings.max_output_buffer:
            log.warning("web connection %s stopped reading; %d bytes wait; dropping it",
                        self.peer, transport.get_write_buffer_size())
            transport.abort()

    def pause(self, paused: bool, reason: str = "input") -> None:
        if paused == (reason in self.paused):
            return  # nothing changes (the common case, once per read)
        was = bool(self.paused)
        if paused:
            self.paused.add(reason)
        else:
            self.paused.discard(reason)
            if reason != "budget" and not self._blocked() and (
                    "budget" in self.paused or (self.wsin is not None and self.wsin.backlog)):
                self._schedule_more()  # what waited to be parsed may go on now
        transport = self.transport
        if transport is None or transport.is_closing() or was == bool(self.paused):
            return
        if self.paused:
            transport.pause_reading()
        else:
            transport.resume_reading()

    # ------------------------------------------------------------ the input budget

    def _charge(self, start: float) -> None:
        """Charge the work since `start` to this connection; rest (not reading) if it took
        more than its share, or while a websocket backlog waits for the next turn."""
        now = time.monotonic()
        self.work.spend(time.perf_counter() - start, now)
        rest = self.work.delay(now)
        waiting = rest > 0 or (self.wsin is not None and self.wsin.backlog > 0)
        self.pause(waiting, "budget")
        if waiting and not self._blocked():
            self._schedule_more(rest)

    def _blocked(self) -> bool:
        """A websocket's input waits for more than the budget: input held while the game
        restarts, the command rate, output the page does not read (`pause` goes on)."""
        return bool(self.paused) and self.wsin is not None and not self.paused <= _OURS

    def _schedule_more(self, delay: float = 0.0) -> None:
        if self.more is not None or self.closed:
            return
        loop = asyncio.get_running_loop()
        if delay > 0:
            self.more = loop.call_later(delay, self._receive_more)
        else:
            self.more = loop.call_soon(self._receive_more)

    def _receive_more(self) -> None:
        """The next slice of a websocket's backlog, or the next pipelined request."""
        self.more = None
        if self.closed:
            return
        start = time.perf_counter()
        if self.work.delay(time.monotonic()) > 0:
            pass  # still resting: _charge schedules the next try
        elif self.wsin is not None:
            if not self._blocked():
                self._websocket_slice()
        else:
            self._http_events()
        self._charge(start)

    def address(self, request: Request) -> str:
        return forwarded_address(self.peer, request.headers.get("x-forwarded-for"),
                                 self.server.trusted)

    # ------------------------------------------------------------ HTTP

    def _http_events(self) -> None:
        if self.closed:
            return
        for event in self.http.events_received():
            match event:
                case Request():
                    if self.timer is not None:
                        self.timer.cancel()
                        self.timer = None
                    self._route(event)
                case BadRequest(status=status, reason=reason):
                    log.info("web %s: bad request (%d %s)", self.peer, status, reason)
                case PeerClosed():
                    if self.held is None and self.transport is not None:
                        self.transport.close()
            if self.ws is not None:
                return  # the rest of the bytes belonged to the websocket
        self._write(self.http.data_to_send())
        if self.http.closing and self.transport is not None:
            self.transport.close()
        self.pause(self.http.reading_paused, "http")

    def _respond(self, status: int, headers: list[tuple[str, str]], body: bytes,
                 close: bool = False) -> None:
        self.http.send_response(status, headers, body, close=close)
        self._write(self.http.data_to_send())
        if self.http.closing and self.transport is not None:
            self.transport.close()
            return
        self._arm_timer()
        # a request pipelined behind this one: on a later turn, within the budget
        self._schedule_more(self.work.delay(time.monotonic()))

    def _route(self, request: Request) -> None:
        if request.path in ("/ws", "/webclientdata") and not origin_allowed(
                request.headers.get("origin"), request.headers.get("host"),
                self.server.settings.web_allowed_origins):
            log.info("web %s: refused a request to %s from origin %r", self.peer,
                     request.path, request.headers.get("origin", "")[:100])
            self._respond(403, [("Content-Type", "text/plain")],
                          b"this page's origin may not use the game's sessions\n", close=True)
            return
        if request.path == "/ws":
            if request.upgrade and request.method == "GET":
                self._upgrade(request)
            else:
                self._respond(426, [("Upgrade", "websocket")], b"websocket only\n")
            return
        if request.path == "/webclientdata":
            if request.method != "POST":
                self._respond(405, [("Allow", "POST")], b"POST only\n")
            else:
                self._ajax(request)
            return
        found = self.server.static.get(request.path)
        if found is None:
            self._respond(404, [("Content-Type", "text/plain")], b"not found\n")
        elif request.method not in ("GET", "HEAD"):
            self._respond(405, [("Allow", "GET")], b"GET only\n")
        else:
            self._respond(200, found.headers, found.body)

    # ------------------------------------------------------------ websocket

    def _upgrade(self, request: Request) -> None:
        handshake = ServerProtocol(subprotocols=[Subprotocol(s) for s in SUBPROTOCOLS],
                                   select_subprotocol=_select_subprotocol, logger=WS_LOG)
        response = handshake.accept(WsRequest(request.target, Headers(request.raw_headers)))
        if response.status_code != 101:
            self._respond(response.status_code, [("Content-Type", "text/plain")],
                          bytes(response.body), close=True)
            return
        address = self.address(request)
        if self.admitted is None and not self._admit(address):
            return
        protocol = response.headers.get("Sec-WebSocket-Protocol") or V1
        trailing = self.http.send_switch(list(response.headers.raw_items()))
        self._write(self.http.data_to_send())
        self.ws = ServerProtocol(state=State.OPEN, max_size=self.server.max_message,
                                 logger=WS_LOG)
        settings = self.server.settings
        self.wsin = WebsocketInput(self.ws, max_bytes=settings.read_max_bytes,
                                   max_frames=max(1, settings.read_max_steps // FRAME_STEPS))
        self.pause(False, "http")
        self._open_session(request, address, protocol)
        if trailing:
            self.wsin.receive_data(trailing)
            self._websocket_slice()

    def _open_session(self, request: Request, address: str, protocol: str) -> None:
        csessid, cuid, browser = _page_query(request.query)
        secret = offered_secret(request.headers.get("sec-websocket-protocol"))
        bound = bool(secret)
        if bound:
            csessid = secret  # the URL's id, if any, is not what resumes this page
        hub = self.server.hub
        link = cast(Link, self)
        old = hub.takeover(WEBSOCKET, csessid, cuid, bound=bound, address=address)
        if isinstance(old, WebsocketSession):
            log.info("session %d (%s): taken over by its page's new connection",
                     old.sessid, address)
            self.session = old
            old.attach(link)
            return
        fmt = FORMATS[protocol]
        session = WebsocketSession(hub, fmt, csessid, cuid, bound)
        session.init_session(WEBSOCKET, address, self.server.handler)
        session.protocol_flags.update(_web_flags(f"websocket:{browser}" if browser
                                                 else "websocket", protocol, fmt.oob))
        self.session = session
        session.attach(link)
        hub.add(session, None)
        self.server.handler.connect(session)

    def _websocket_slice(self) -> None:
        """Parse one budget's worth of the websocket's backlog and hand out its messages."""
        wsin = self.wsin
        assert wsin is not None
        messages = wsin.receive_more()
        session = self.session
        if wsin.frames_seen and session is not None:
            session.heard()
        for message in messages:
            if session is None or session.link is not self:
                break  # closing, or the session moved to a newer connection
            session.receive_message(message)
        close = wsin.protocol.close_rcvd
        if close is not None and not self.peer_closed:
            self.peer_closed = True
            self._closed_by_peer(close)
        self._websocket_written()

    def _websocket_written(self) -> None:
        ws = self.ws
        assert ws is not None
        self._write(b"".join(ws.data_to_send()))
        if ws.state is State.CLOSED or ws.close_expected():
            self._websocket_ended(ws)

    def _closed_by_peer(self, close: Close | None) -> None:
        """A normal close (1000) from the page ends the session; anything else (1001 on a
        refresh, an error) leaves it for the page's next connection to take over."""
        session = self.session
        if session is not None and close is not None and close.code == CloseCode.NORMAL_CLOSURE \
                and session.link is self:
            session.end(close.reason or "the page closed the connection")

    def _websocket_ended(self, ws: ServerProtocol) -> None:
        session = self.session
        sent = ws.close_sent
        if session is not None and session.link is self and sent is not None and sent.code in (
                CloseCode.MESSAGE_TOO_BIG, CloseCode.PROTOCOL_ERROR,
                CloseCode.INVALID_DATA):
            log.info("session %d (%s): websocket error %d %s; ending it",
                     session.sessid, session.address, sent.code, sent.reason)
            session.end(f"websocket error: {sent.reason}")
        if self.transport is not None:
            self.transport.close()

    # Link, for WebsocketSession

    def send_messages(self, messages: list[Message]) -> None:
        ws = self.ws
        if ws is None or ws.state is not State.OPEN:
            return
        for message in messages:
            if isinstance(message, str):
                ws.send_text(message.encode("utf-8"))
            else:
                ws.send_binary(message)
        self._write(b"".join(ws.data_to_send()))

    def close_link(self, code: int, reason: str) -> None:
        ws = self.ws
        if ws is not None and ws.state is State.OPEN:
            ws.send_close(code, reason.encode("utf-8")[:120].decode("utf-8", "ignore"))
            self._write(b"".join(ws.data_to_send()))
        if self.transport is not None:
            self.transport.close()

    def ping(self) -> None:
        ws = self.ws
        if ws is not None and ws.state is State.OPEN:
            ws.send_ping(b"hearth")
            self._write(b"".join(ws.data_to_send()))

    # ------------------------------------------------------------ ajax

    def _ajax(self, request: Request) -> None:
        if self.server.moving:  # answered after the hand-over, by this portal or the next
            self.parked = request
            return
        parsed = parse_form(request.body)
        if isinstance(parsed, str):
            self._respond(400, JSON, json.dumps({"error": parsed}).encode())
            return
        if parsed.mode == "init":
            self._ajax_init(request, parsed)
            return
        csessid = clean_csessid(parsed.csessid)
        session = self.server.hub.find_ajax(csessid, parsed.cuid)
        if session is None or session.ended:
            words = self.server.hub.take_last_words(csessid, parsed.cuid) \
                if parsed.mode == "receive" else None
            if words is not None:  # the session ended between two polls: its goodbye
                self._respond(200, JSON, words.encode())
                return
            gone = encode_array("connection_close", ["This session has ended."], {})
            self._respond(410, JSON, gone.encode())
            return
        wait = session.request_wait(parsed.mode, time.monotonic())
        if wait > 0:  # over the command rate: this connection waits (and does not read)
            self.waiting = asyncio.get_running_loop().call_later(
                wait, self._ajax_again, request)
            return
        session.channel.seen(time.monotonic())
        match parsed.mode:
            case "input":
                session.receive_message(parsed.data)
                if session.paused:  # answered when the game has caught up
                    session.held_inputs.append(lambda: self._answer_json('""'))
                    return
                self._respond(200, JSON, b'""')
            case "receive":
                self.held = (session, self._answer_poll)
                session.poll(self._answer_poll, parsed.batch)
            case "keepalive":
                self._respond(200, JSON, b'""')
            case _:  # close
                session.end("the page closed")
                self._respond(200, JSON, b'""')

    # ------------------------------------------------------------ portal hand-over

    def hand_out(self) -> None:
        """(Old portal, the move is done; `portal.web.move`) Nothing more of this HTTP
        connection is served here. A held or parked poll is answered empty with
        `Connection: close`: the page's next poll reaches the new portal. Another parked
        or waiting request is dropped unanswered (a browser resends a request on a reused
        connection that closed without an answer; if not, the page opens its session
        again). An idle connection is closed. Websockets are closed by their session."""
        transport = self.transport
        if self.ws is not None or transport is None or transport.is_closing():
            return
        parked = parse_form(self.parked.body) if self.parked is not None else None
        poll = self.held is not None or (
            isinstance(parked, AjaxRequest) and parked.mode == "receive")
        if self.held is not None:
            session, answer = self.held
            self.held = None
            session.poll_lost(answer)
        if self.waiting is not None:
            self.waiting.cancel()
            self.waiting = None
            transport.abort()
        elif poll:
            self.parked = None
            self._respond(200, JSON, b'""', close=True)
        elif self.parked is not None:
            transport.abort()
        else:
            transport.close()

    def unpark(self) -> None:
        request, self.parked = self.parked, None
        if request is not None and not self.closed:
            start = time.perf_counter()
            self._ajax(request)
            self._charge(start)

    def _ajax_again(self, request: Request) -> None:
        self.waiting = None
        if not self.closed:
            start = time.perf_counter()
            self._ajax(request)
            self._charge(start)

    def _ajax_init(self, request: Request, parsed: AjaxRequest) -> None:
        hub = self.server.hub
        csessid = clean_csessid(parsed.csessid)
        host = request.headers.get("host", "")
        reply = json.dumps({"msg": f"{self.server.game_name} ({host})",
                            "csessid": parsed.csessid}).encode()
        old = hub.takeover(AJAX, csessid, parsed.cuid)
        if isinstance(old, AjaxSession):
            log.info("session %d (%s): taken over by its page's new load", old.sessid,
                     old.address)
            old.take_over(parsed.cuid)
            self._respond(200, JSON, reply)
            return
        address = self.address(request)
        refusal = self.server.handler.admit(address)
        if refusal is not None:
            self._respond(503, JSON, json.dumps({"error": refusal}).encode())
            return
        session = AjaxSession(hub, FORMATS[V1], csessid, parsed.cuid)
        session.init_session(AJAX, address, self.server.handler)
        session.gone = asyncio.get_running_loop().create_future()
        browser = f"ajax:{parsed.browser}" if parsed.browser else "ajax"
        session.protocol_flags.update(_web_flags(browser, "", True))
        hub.add(session, address)
        self.server.handler.connect(session)
        self._respond(200, JSON, reply)

    def _answer_poll(self, body: str) -> None:
        self.held = None
        self._answer_json(body)

    def _answer_json(self, body: str) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self._respond(200, JSON, body.encode("utf-8"))


def _select_subprotocol(protocol: ServerProtocol,
                        offered: Sequence[Subprotocol]) -> Subprotocol | None:
    """Evennia 6.1's choice; a client offering only names we do not know gets none back
    (and the v1 format), a client offering none gets v1."""
    if not offered:
        return None
    chosen = choose_subprotocol(list(offered))
    return Subprotocol(chosen) if chosen in offered else None


def _page_query(query: str) -> tuple[str, str, str]:
    """Evennia's `?csessid&cuid&browser` (plain fields, not key=value), each bounded."""
    parts = [p[:128] for p in query.split("&", 2)] + ["", "", ""]
    csessid, cuid, browser = parts[0], parts[1], parts[2]
    if cuid and not browser:
        cuid, browser = "", cuid  # Evennia's two-field form: csessid&browser
    return clean_csessid(csessid), cuid, "".join(c for c in browser if c.isprintable())[:64]


def _web_flags(client: str, protocol: str, oob: bool) -> dict[str, Any]:
    suffix = f" [{protocol}]" if protocol else ""
    return {"CLIENTNAME": f"Evennia Webclient ({client}){suffix}", "UTF-8": True,
            "ANSI": True, "XTERM256": True, "TRUECOLOR": True, "OOB": oob,
            "WEBCLIENT": True}
