"""TTYPE and MTTS: round 1 is the client name, round 2 the terminal type, round 3
"MTTS <bits>". A client that repeats a name has nothing more to tell."""

from __future__ import annotations

from typing import Any, Final

from portal.telnet.codes import TTYPE, TTYPE_IS, TTYPE_SEND
from portal.telnet.events import MTTS_BITS
from portal.telnet.options.base import Host, Option

# Clients known to do xterm-256 colour when they report only their name.
_XTERM256_CLIENTS: Final = frozenset(
    {
        "ATLANTIS",
        "AXMUD",
        "BEIP",
        "BLOWTORCH",
        "CMUD",
        "KILDCLIENT",
        "MUDLET",
        "MUSHCLIENT",
        "POTATO",
        "PUTTY",
        "TINTIN++",
        "TINYFUGUE",
        "ZMUD",
    }
)


class Ttype(Option):
    def enabled(self, host: Host, local: bool) -> None:
        if not host.flags.get("TTYPE"):
            host._pending.add("ttype")
            host._ttype_names.clear()
            _ask(host)

    def disabled(self, host: Host, local: bool) -> None:
        host._ttype_waiting = False
        host._done("ttype")

    def subneg(self, host: Host, opt: int, payload: bytes) -> None:
        if not payload or payload[0] != TTYPE_IS:
            host._error("TTYPE subnegotiation without IS; ignored")
            return
        if not host._ttype_waiting:
            host._error("unsolicited TTYPE IS; ignored")
            return
        host._ttype_waiting = False
        name = payload[1:].decode("ascii", errors="replace").strip()
        names = host._ttype_names
        if names and name.upper() == names[-1].upper():
            _finish(host)
            return
        names.append(name)
        if len(names) == 1:
            _apply_client_name(host.flags, name)
        elif len(names) == 2:
            _apply_term(host.flags, name)
        else:
            _apply_mtts(host.flags, name)
        if len(names) >= 3:
            _finish(host)
        else:
            _ask(host)


def _ask(host: Host) -> None:
    host._ttype_waiting = True
    host._send_sb(TTYPE, bytes((TTYPE_SEND,)))


def _finish(host: Host) -> None:
    host.flags["TTYPE"] = True
    host._done("ttype")


def _apply_client_name(flags: dict[str, Any], name: str) -> None:
    upper = name.upper()
    base = upper.split()[0] if upper.split() else ""
    flags["CLIENTNAME"] = upper
    flags["ANSI"] = True  # every client that answers TTYPE does ANSI
    if base in _XTERM256_CLIENTS or _term_is_256(upper):
        flags["XTERM256"] = True
    if _term_is_truecolor(upper):
        flags["TRUECOLOR"] = True
    if base == "MUDLET":
        flags["NOPROMPTGOAHEAD"] = False  # Mudlet's prompt triggers want GA


def _apply_term(flags: dict[str, Any], term: str) -> None:
    flags["TERM"] = term
    upper = term.upper()
    if _term_is_256(upper):
        flags["XTERM256"] = True
    if _term_is_truecolor(upper):
        flags["XTERM256"] = True
        flags["TRUECOLOR"] = True


def _apply_mtts(flags: dict[str, Any], text: str) -> None:
    kind, _, number = text.partition(" ")
    number = number.strip()
    if kind.upper() != "MTTS" or not (number.isascii() and number.isdigit()) or len(number) > 10:
        return
    bits = int(number)
    for bit, name in MTTS_BITS:
        flags[name] = bool(bits & bit)



def _term_is_256(upper: str) -> bool:
    return upper.endswith(("-256COLOR", "-256COLOUR")) or upper == "XTERM"


def _term_is_truecolor(upper: str) -> bool:
    return upper.endswith(("-TRUECOLOR", "-DIRECT", "-24BIT"))

