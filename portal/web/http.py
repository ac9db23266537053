"""HTTP/1.1 for the web port: h11 parses and frames, this class bounds and summarises.

Sans-I/O, like h11 itself: feed `receive_data(bytes)` (b"" at EOF), take whole requests
from `events_received()`, answer each with `send_response()` or, for a websocket upgrade,
`send_switch()`, and write `data_to_send()`. Requests on one connection are answered in
order, one at a time (h11's rule): bytes that arrive while a request waits for its answer
(a long poll) are kept in `backlog` and parsed after the answer; the shell stops reading
when the backlog passes `max_backlog`, so a pipelining client cannot grow memory. The
backlog goes to h11 only once h11 has no whole request left of its own (handing it over at
every answer grew h11's buffer by a backlog per request: 1 GB in 30 s of pipelining).

Limits (hostile input is normal input): the request head (line and headers) is at most
`max_head` bytes and `max_headers` fields, the body at most `max_body` bytes. A request
over a limit or that h11 cannot parse gives a `BadRequest` event and an error response
is already queued; the connection closes after it. Nothing here raises on bad bytes.
A request with both `Content-Length` and `Transfer-Encoding` is refused the same way
(400, then close; RFC 9112 section 6.3): a proxy in front may have framed it the other
way, and what follows its body could be a smuggled request.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import unquote

import h11

SERVER_NAME: Final = b"Hearth"


@dataclass(frozen=True, slots=True)
class Request:
    """A complete request: `path` is unquoted, `query` is the raw text after `?`."""

    method: str
    target: str
    path: str
    query: str
    headers: dict[str, str]  # lower-case names; a repeated field joined with ", "
    raw_headers: list[tuple[str, str]] = field(repr=False)
    body: bytes = b""
    upgrade: bool = False  # asks to switch protocols (a websocket handshake)


@dataclass(frozen=True, slots=True)
class BadRequest:
    """The client broke HTTP or a limit; an error response is queued and then we close."""

    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class PeerClosed:
    """The client closed its side (EOF)."""


HttpEvent = Request | BadRequest | PeerClosed


class HttpConnection:
    def __init__(self, *, max_head: int = 16384, max_headers: int = 64,
                 max_body: int = 65536) -> None:
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=max_head)
        self.max_headers = max_headers
        self.max_body = max_body
        self.max_backlog = max_head + max_body
        self.backlog = bytearray()
        self.switched = False  # after send_switch: bytes belong to the new protocol
        self._events: list[HttpEvent] = []
        self._out: list[bytes] = []
        self._head: h11.Request | None = None
        self._body = bytearray()
        self._answering = False  # a request was handed out and awaits its response
        self._failed = False
        self._eof = False

    # ------------------------------------------------------------ receiving

    def receive_data(self, data: bytes) -> None:
        """Take bytes from the wire (b"" means EOF); then read `events_received()`."""
        if self.switched or self._failed:
            return
        if self._answering:
            self.backlog += data
            if not data:  # the peer is gone; h11 hears of it after the answer
                self._eof = True
                self._events.append(PeerClosed())
            return
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        try:
            self._h11.receive_data(data)
        except RuntimeError:  # data after EOF or in a closed state: nothing more to parse
            return
        self._parse()

    def events_received(self) -> list[HttpEvent]:
        events, self._events = self._events, []
        return events

    @property
    def reading_paused(self) -> bool:
        """True while the shell should not read (the backlog is full)."""
        return len(self.backlog) > self.max_backlog

    @property
    def closing(self) -> bool:
        """True once the connection must close after the queued output."""
        return self._failed or self._h11.our_state in (h11.MUST_CLOSE, h11.CLOSED)

    def _parse(self) -> None:
        while not self._answering and not self._failed:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                self._fail(exc.error_status_hint, str(exc) or "bad request")
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            self._handle(event)

    def _handle(self, event: object) -> None:
        if isinstance(event, h11.Request):
            self._start(event)
        elif isinstance(event, h11.Data):
            self._body += event.data
            if len(self._body) > self.max_body:
                self._fail(413, "request body too large")
        elif isinstance(event, h11.EndOfMessage):
            self._finish()
        elif isinstance(event, h11.ConnectionClosed):
            self._events.append(PeerClosed())
            self._failed = True  # nothing more will come

    def _start(self, head: h11.Request) -> None:
        if len(head.headers) > self.max_headers:
            self._fail(431, "too many header fields")
            return
        names = {name for name, _ in head.headers}
        if b"content-length" in names and b"transfer-encoding" in names:
            self._fail(400, "Content-Length with Transfer-Encoding")
            return
        for name, value in head.headers:
            if name == b"content-length" and int(value) > self.max_body:  # h11 checked digits
                self._fail(413, "request body too large")
                return
        self._head = head
        self._body = bytearray()

    def _finish(self) -> None:
        head = self._head
        if head is None:
            return
        self._head = None
        target = head.target.decode("ascii", "replace")
        raw_path, _, query = target.partition("?")
        raw = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in head.headers]
        headers: dict[str, str] = {}
        for name, value in raw:
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        upgrade = self._h11.their_state is h11._state.MIGHT_SWITCH_PROTOCOL
        self._answering = True
        self._events.append(Request(
            method=head.method.decode("ascii", "replace"), target=target,
            path=unquote(raw_path), query=query, headers=headers, raw_headers=raw,
            body=bytes(self._body), upgrade=upgrade))

    def _fail(self, status: int, reason: str) -> None:
        self._events.append(BadRequest(status, reason))
        if self._h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            body = f"{status} {reason}\n".encode()
            with contextlib.suppress(h11.LocalProtocolError):  # then we just close
                self._respond(status, [("Content-Type", "text/plain; charset=utf-8"),
                                       ("Connection", "close")], body)
        self._failed = True

    # ------------------------------------------------------------ sending

    def send_response(self, status: int, headers: list[tuple[str, str]], body: bytes,
                      *, close: bool = False) -> None:
        """Answer the request from `events_received()`; then parse what waited behind it."""
        if self._failed or not self._answering:
            return
        if close:
            headers = [*headers, ("Connection", "close")]
        self._respond(status, headers, body)
        self._answering = False
        if self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE:
            self._h11.start_next_cycle()
            self._parse()  # h11 may already hold the next request
            if self._answering or self._failed:
                return  # the backlog stays here (bounded) until h11 has used up its own
            backlog, self.backlog = bytes(self.backlog), bytearray()
            if backlog:
                self._feed(backlog)
            if self._eof:
                self._feed(b"")

    def _respond(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        all_headers = [*headers, ("Content-Length", str(len(body))), ("Server", "Hearth")]
        h = self._h11
        self._out.append(h.send(h11.Response(status_code=status, headers=all_headers)) or b"")
        if body:
            self._out.append(h.send(h11.Data(data=body)) or b"")
        self._out.append(h.send(h11.EndOfMessage()) or b"")

    def send_switch(self, headers: list[tuple[str, str]]) -> bytes:
        """Accept the upgrade with 101; return the bytes the client sent after its request."""
        h = self._h11
        self._out.append(h.send(h11.InformationalResponse(status_code=101,
                                                          headers=headers)) or b"")
        self.switched = True
        self._answering = False
        trailing, _closed = h.trailing_data
        return bytes(trailing) + bytes(self.backlog)

    def data_to_send(self) -> bytes:
        out, self._out = b"".join(self._out), []
        return out
