"""Out-of-band messages shared by the doors: GMCP and MSDP encoded and decoded, with the
inputfunc names Evennia gives them. Telnet carries them in subnegotiations, the web client
in its wire format; both use this one mapping. Imports nothing of the portal."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["OobReceived", "decode_gmcp", "decode_msdp", "encode_gmcp", "encode_msdp"]

MSDP_VAR: Final = 1
MSDP_VAL: Final = 2
MSDP_TABLE_OPEN: Final = 3
MSDP_TABLE_CLOSE: Final = 4
MSDP_ARRAY_OPEN: Final = 5
MSDP_ARRAY_CLOSE: Final = 6

# Evennia's hard-wired GMCP names; everything else is derived from the name.
_EVENNIA_TO_GMCP: Final = {
    "client_options": "Core.Supports.Get",
    "get_inputfuncs": "Core.Commands.Get",
    "get_value": "Char.Value.Get",
    "repeat": "Char.Repeat.Update",
    "monitor": "Char.Monitor.Update",
}
_GMCP_TO_EVENNIA: Final = {v.lower(): k for k, v in _EVENNIA_TO_GMCP.items()}
# MSDP's generic commands are renamed so they do not collide with inputfuncs.
_MSDP_RENAMED: Final = frozenset({"list", "report", "reset", "send", "unreport"})
_MSDP_MAX_DEPTH: Final = 16
_MSDP_TOKEN: Final = re.compile(rb"[\x01-\x06]|[^\x01-\x06]+")
_MSDP_STRIP: Final = bytes(range(7))


@dataclass(frozen=True, slots=True)
class OobReceived:
    """An out-of-band command from GMCP or MSDP, named as Evennia names inputfuncs."""

    cmdname: str
    args: list[Any]
    kwargs: dict[str, Any]



@dataclass(slots=True)
class _Oob:
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)

    def add(self, value: Any) -> None:
        if isinstance(value, dict):
            self.kwargs.update(value)
        elif isinstance(value, list):
            self.args.extend(value)
        else:
            self.args.append(value)


def _gmcp_cmdname(package: str) -> str:
    """GMCP "Package.Name" -> inputfunc name, following Evennia's telnet_oob."""
    lower = package.lower()
    if lower in _GMCP_TO_EVENNIA:
        return _GMCP_TO_EVENNIA[lower]
    return lower.replace(".", "_").removeprefix("core_")


def decode_gmcp(payload: bytes) -> OobReceived:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError("not utf-8") from exc
    parts = text.split(None, 1)
    if not parts:
        raise ValueError("empty message")
    oob = _Oob()
    if len(parts) == 2:
        try:
            oob.add(json.loads(parts[1]))
        except (ValueError, RecursionError):
            oob.args.append(parts[1])  # not JSON: pass the raw text on, as Evennia does
    oob.kwargs = {k: v for k, v in oob.kwargs.items() if k}
    return OobReceived(_gmcp_cmdname(parts[0]), oob.args, oob.kwargs)


def _gmcp_package(cmdname: str) -> str:
    if "." in cmdname:  # already a GMCP name (Room.WrongDir, Char.StatusVars): sent as given
        return cmdname
    if cmdname in _EVENNIA_TO_GMCP:
        return _EVENNIA_TO_GMCP[cmdname]
    if "_" in cmdname:
        return ".".join(w if w.isupper() else w.capitalize() for w in cmdname.split("_"))
    return "Core." + (cmdname if cmdname.istitle() else cmdname.capitalize())


def encode_gmcp(cmdname: str, args: list[Any], kwargs: dict[str, Any]) -> bytes:
    package = _gmcp_package(cmdname)
    data: Any
    if args:
        data = args[0] if len(args) == 1 else args
        if kwargs:
            data = [data, kwargs]
    elif kwargs:
        data = kwargs
    else:
        return package.encode("utf-8")
    return f"{package} {json.dumps(data, ensure_ascii=False, default=str)}".encode()


def _msdp_text(value: Any) -> bytes:
    if isinstance(value, bool):
        value = int(value)
    text = "" if value is None else str(value)
    return text.encode("utf-8", errors="replace").translate(None, _MSDP_STRIP)


def _msdp_value(value: Any, depth: int = 0) -> bytes:
    if depth < _MSDP_MAX_DEPTH and isinstance(value, dict):
        inner = b"".join(
            bytes((MSDP_VAR,)) + _msdp_text(k) + bytes((MSDP_VAL,)) + _msdp_value(v, depth + 1)
            for k, v in value.items()
        )
        return bytes((MSDP_TABLE_OPEN,)) + inner + bytes((MSDP_TABLE_CLOSE,))
    if depth < _MSDP_MAX_DEPTH and isinstance(value, list | tuple):
        inner = b"".join(bytes((MSDP_VAL,)) + _msdp_value(v, depth + 1) for v in value)
        return bytes((MSDP_ARRAY_OPEN,)) + inner + bytes((MSDP_ARRAY_CLOSE,))
    return _msdp_text(value)


def encode_msdp(cmdname: str, args: list[Any], kwargs: dict[str, Any]) -> bytes:
    head = bytes((MSDP_VAR,)) + _msdp_text(cmdname.upper()) + bytes((MSDP_VAL,))
    if not args and not kwargs:
        return head
    out = b""
    if args:
        out += head + _msdp_value(args[0] if len(args) == 1 else list(args))
    if kwargs:
        out += head + _msdp_value(dict(kwargs))
    return out


class _MsdpReader:
    """Recursive-descent reader for MSDP VAR/VAL/TABLE/ARRAY, depth-limited."""

    def __init__(self, payload: bytes) -> None:
        self.tokens: list[bytes] = _MSDP_TOKEN.findall(payload)
        self.pos = 0

    def peek(self) -> int | None:
        """Control code of the next token, 0 for text, None at the end."""
        if self.pos >= len(self.tokens):
            return None
        tok = self.tokens[self.pos]
        return tok[0] if len(tok) == 1 and tok[0] <= MSDP_ARRAY_CLOSE else 0

    def pairs(self, depth: int, closer: int | None) -> list[tuple[str, list[Any]]]:
        result: list[tuple[str, list[Any]]] = []
        while (code := self.peek()) is not None:
            self.pos += 1
            if code == closer:
                return result
            if code != MSDP_VAR:
                raise ValueError(f"expected MSDP_VAR, got code {code}")
            name = self.text()
            values: list[Any] = []
            while self.peek() == MSDP_VAL:
                self.pos += 1
                values.append(self.value(depth))
            result.append((name, values))
        if closer is not None:
            raise ValueError("unterminated table")
        return result

    def text(self) -> str:
        if self.peek() != 0:
            return ""
        self.pos += 1
        return self.tokens[self.pos - 1].decode("utf-8", errors="replace")

    def value(self, depth: int) -> Any:
        if depth >= _MSDP_MAX_DEPTH:
            raise ValueError("nested too deeply")
        code = self.peek()
        if code == MSDP_TABLE_OPEN:
            self.pos += 1
            return {k: _collapse(v) for k, v in self.pairs(depth + 1, MSDP_TABLE_CLOSE)}
        if code == MSDP_ARRAY_OPEN:
            self.pos += 1
            return self.array(depth + 1)
        return self.text()

    def array(self, depth: int) -> list[Any]:
        items: list[Any] = []
        while (code := self.peek()) is not None:
            self.pos += 1
            if code == MSDP_ARRAY_CLOSE:
                return items
            if code != MSDP_VAL:
                raise ValueError(f"expected MSDP_VAL in array, got code {code}")
            items.append(self.value(depth))
        raise ValueError("unterminated array")


def _collapse(values: list[Any]) -> Any:
    if not values:
        return ""
    return values[0] if len(values) == 1 else values


def decode_msdp(payload: bytes) -> list[OobReceived]:
    events: list[OobReceived] = []
    for name, values in _MsdpReader(payload).pairs(0, None):
        if not name:
            continue
        oob = _Oob()
        for value in values:
            oob.add(value)
        cmdname = name.lower()
        if cmdname in _MSDP_RENAMED:
            cmdname = "msdp_" + cmdname
        events.append(OobReceived(cmdname, oob.args, oob.kwargs))
    return events
