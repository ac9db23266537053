"""CHARSET (RFC 2066): we ask for UTF-8 once the client agrees to the option, and answer
the client's own REQUEST."""

from __future__ import annotations

from portal.telnet.codes import CHARSET, CHARSET_ACCEPTED, CHARSET_REJECTED, CHARSET_REQUEST
from portal.telnet.events import codec
from portal.telnet.options.base import Host, Option


class Charset(Option):
    def enabled(self, host: Host, local: bool) -> None:
        if local and not host._charset_waiting:
            host._charset_waiting = True
            host._pending.add("charset")
            host._send_sb(CHARSET, bytes((CHARSET_REQUEST,)) + b";UTF-8")

    def disabled(self, host: Host, local: bool) -> None:
        if local:
            host._charset_waiting = False
            host._done("charset")

    def subneg(self, host: Host, opt: int, payload: bytes) -> None:
        code, body = (payload[0], payload[1:]) if payload else (-1, b"")
        if code == CHARSET_REQUEST:
            _receive_request(host, body)
        elif code in (CHARSET_ACCEPTED, CHARSET_REJECTED) and host._charset_waiting:
            host._charset_waiting = False
            host._done("charset")
            if code == CHARSET_ACCEPTED:
                _accept(host, body.decode("ascii", errors="replace").strip())
        else:
            host._error(f"unexpected CHARSET subnegotiation (code {code}); ignored")


def _accept(host: Host, name: str) -> None:
    if name.upper() not in ("UTF-8", "UTF8"):
        host._error(f"client accepted charset {name!r}, which we did not offer; ignored")
        return
    host.flags["ENCODING"] = "utf-8"
    host.flags["CHARSET"] = "UTF-8"
    host.flags["UTF-8"] = True


def _receive_request(host: Host, body: bytes) -> None:
    # While our own REQUEST is outstanding the client must answer ours (RFC 2066).
    chosen = None if host._charset_waiting else _choose_charset(body)
    if chosen is None:
        host._send_sb(CHARSET, bytes((CHARSET_REJECTED,)))
        return
    host._send_sb(CHARSET, bytes((CHARSET_ACCEPTED,)) + chosen.encode("ascii"))
    host.flags["ENCODING"] = codec(chosen)
    host.flags["CHARSET"] = chosen.upper()


def _choose_charset(body: bytes) -> str | None:
    """Pick a charset from a client's REQUEST (`[TTABLE <ver>] <sep>name<sep>name...`)."""
    if body.startswith(b"[TTABLE]"):
        body = body[len(b"[TTABLE]") + 1 :]
    if len(body) < 2:
        return None
    names = body[1:].decode("ascii", errors="replace").split(chr(body[0]))
    for name in names:
        if name.upper() in ("UTF-8", "UTF8"):
            return name
    # codec() maps unknown names to utf-8, so this finds the first other known charset.
    return next((name for name in names if name and codec(name) != "utf-8"), None)

