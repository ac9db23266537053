"""Web client wire formats: Evennia's `v1.evennia.com` and the mudstandards.org subprotocols.

Sans-I/O: a format turns one websocket message (or one ajax `data` field) into at most one
input, and one output command into at most one message. `str` messages travel as TEXT
frames and `bytes` as BINARY frames. Decoding never raises: what cannot be understood is
`None` (Evennia ignores such messages without a reply, and so do we).

- `v1.evennia.com` (Evennia's own client and ours): every message is a JSON array
  `["cmdname", [args], {kwargs}]`; text and prompts go out as HTML (`portal.web.html`).
- `json.mudstandards.org`: BINARY frames carry ANSI text both ways; TEXT frames carry
  `{"proto", "id", "data"}` envelopes (GMCP, prompts).
- `gmcp.mudstandards.org`: BINARY text as above; TEXT frames are `Package.Name json`.
- `terminal.mudstandards.org`: ANSI text only, no out-of-band data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

import msgspec

from portal.colour import render, strip
from portal.oob import decode_gmcp, encode_gmcp  # one GMCP mapping for every door
from portal.web.html import escape_text, to_html

Input = tuple[str, list[Any], dict[str, Any]]
Message = str | bytes

V1: Final = "v1.evennia.com"
JSON_STD: Final = "json.mudstandards.org"
GMCP_STD: Final = "gmcp.mudstandards.org"
TERMINAL: Final = "terminal.mudstandards.org"
# Evennia 6.1's order of preference: the first one the client also offers is chosen.
SUBPROTOCOLS: Final = (JSON_STD, GMCP_STD, TERMINAL, V1)
MAX_CMDNAME: Final = 64


def choose_subprotocol(offered: list[str]) -> str:
    """The format for a client offering `offered` (v1 when it offers none we know)."""
    return next((name for name in SUBPROTOCOLS if name in offered), V1)


# ---------------------------------------------------------------- Evennia's JSON arrays


def decode_array(data: str | bytes) -> Input | None:
    """`["cmdname", [args], {kwargs}]` (args and kwargs may be left out) or None."""
    try:
        value = _decode(data)
    except (msgspec.DecodeError, RecursionError):  # not JSON, not UTF-8, too deep
        return None
    if not isinstance(value, list) or not 1 <= len(value) <= 3:
        return None
    cmdname = value[0]
    args = value[1] if len(value) > 1 else []
    kwargs = value[2] if len(value) > 2 else {}
    if not isinstance(cmdname, str) or not 0 < len(cmdname) <= MAX_CMDNAME:
        return None
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        return None
    return cmdname, args, kwargs


def encode_array(cmdname: str, args: list[Any], kwargs: Mapping[str, Any]) -> str:
    try:
        return _encode([cmdname, args, kwargs]).decode("utf-8")
    except (TypeError, ValueError, OverflowError):  # a value JSON has no form for
        return json.dumps([cmdname, args, kwargs], ensure_ascii=False, default=str)


_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder(enc_hook=str).encode


def text_html(text: str, flags: Mapping[str, Any]) -> str:
    """Text for a web page: colour as HTML, or plain (escaped) when colour is off."""
    if flags.get("NOCOLOR") or flags.get("SCREENREADER"):
        return escape_text(strip(text))
    return to_html(text)


class EvenniaV1:
    name = V1
    oob = True

    def decode(self, message: Message) -> Input | None:
        if isinstance(message, bytes):
            return None  # v1 is TEXT frames only
        return decode_array(message)

    def encode_text(self, text: str, flags: Mapping[str, Any], *, prompt: bool) -> Message:
        return encode_array("prompt" if prompt else "text", [text_html(text, flags)], {})

    def encode_oob(self, cmdname: str, args: list[Any], kwargs: dict[str, Any]) -> Message | None:
        kwargs = {k: v for k, v in kwargs.items() if k != "options"}
        return encode_array(cmdname, args, kwargs)


# ---------------------------------------------------------------- mudstandards.org


def _text_input(message: Message) -> Input | None:
    """A BINARY (or terminal) frame: one line of text input."""
    try:
        text = message.decode("utf-8") if isinstance(message, bytes) else message
    except UnicodeDecodeError:
        return None
    text = text.strip()
    return ("text", [text], {}) if text else None


def _ansi(text: str, flags: Mapping[str, Any], prompt: bool) -> bytes:
    return (render(text, flags) + ("" if prompt else "\r\n")).encode("utf-8")


class Terminal:
    name = TERMINAL
    oob = False

    def decode(self, message: Message) -> Input | None:
        return _text_input(message)

    def encode_text(self, text: str, flags: Mapping[str, Any], *, prompt: bool) -> Message:
        return _ansi(text, flags, prompt)

    def encode_oob(self, cmdname: str, args: list[Any], kwargs: dict[str, Any]) -> Message | None:
        return None


def _gmcp_input(text: str) -> Input | None:
    try:
        event = decode_gmcp(text.encode("utf-8"))
    except ValueError:
        return None
    return event.cmdname, event.args, event.kwargs


class GmcpStandard(Terminal):
    name = GMCP_STD
    oob = True

    def decode(self, message: Message) -> Input | None:
        if isinstance(message, bytes):
            return _text_input(message)
        return _gmcp_input(message)

    def encode_oob(self, cmdname: str, args: list[Any], kwargs: dict[str, Any]) -> Message | None:
        if cmdname == "options":
            return None
        kwargs = {k: v for k, v in kwargs.items() if k != "options"}
        return encode_gmcp(cmdname, args, kwargs).decode("utf-8")


class JsonStandard(Terminal):
    name = JSON_STD
    oob = True

    def decode(self, message: Message) -> Input | None:
        if isinstance(message, bytes):
            return _text_input(message)
        try:
            envelope = json.loads(message)
        except (ValueError, RecursionError):
            return None
        if not isinstance(envelope, dict):
            return None
        proto, ident, data = envelope.get("proto"), envelope.get("id", ""), envelope.get("data")
        if not isinstance(proto, str) or not isinstance(ident, str):
            return None
        if not isinstance(data, str):
            data = "" if data is None else json.dumps(data)
        if proto == "gmcp":
            return _gmcp_input(f"{ident} {data}" if data else ident)
        if proto == "text":
            return ("text", [data], {}) if data else None
        return self._generic(ident or proto, data)

    def _generic(self, cmdname: str, data: str) -> Input | None:
        if not cmdname or len(cmdname) > MAX_CMDNAME:
            return None
        try:
            value = json.loads(data) if data else {}
        except (ValueError, RecursionError):
            value = data
        if isinstance(value, dict):
            return cmdname, [], value
        return cmdname, value if isinstance(value, list) else [value], {}

    def encode_text(self, text: str, flags: Mapping[str, Any], *, prompt: bool) -> Message:
        if prompt:
            return json.dumps({"proto": "prompt", "id": "", "data": render(text, flags)},
                              ensure_ascii=False)
        return _ansi(text, flags, prompt)

    def encode_oob(self, cmdname: str, args: list[Any], kwargs: dict[str, Any]) -> Message | None:
        if cmdname == "options":
            return None
        kwargs = {k: v for k, v in kwargs.items() if k != "options"}
        package, _, data = encode_gmcp(cmdname, args, kwargs).decode("utf-8").partition(" ")
        return json.dumps({"proto": "gmcp", "id": package, "data": data}, ensure_ascii=False)


WireFormat = EvenniaV1 | Terminal
FORMATS: Final[dict[str, WireFormat]] = {
    V1: EvenniaV1(), JSON_STD: JsonStandard(), GMCP_STD: GmcpStandard(), TERMINAL: Terminal(),
}
