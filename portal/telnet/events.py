"""What the telnet protocol reports to its glue, and the protocol flags it keeps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from portal.guard import text_encoding
from portal.oob import OobReceived

# MTTS bit -> flag name (https://tintin.mudhalla.net/protocols/mtts/).
MTTS_BITS: Final = (
    (1, "ANSI"),
    (2, "VT100"),
    (4, "UTF-8"),
    (8, "XTERM256"),
    (16, "MOUSE_TRACKING"),
    (32, "OSC_COLOR_PALETTE"),
    (64, "SCREENREADER"),
    (128, "PROXY"),
    (256, "TRUECOLOR"),
    (512, "MNES"),
    (1024, "MSLP"),
    (2048, "SSL"),
)


@dataclass(slots=True)
class LineReceived:
    """One input line, decoded, without its line ending. (Not frozen: one is made for
    every line a player types, and a frozen dataclass takes twice as long to make.)"""

    text: str




@dataclass(frozen=True, slots=True)
class FlagsChanged:
    """A full copy of the protocol flags, after settling and after each later change."""

    flags: dict[str, Any]


@dataclass(frozen=True, slots=True)
class InputError:
    """Player input was dropped; the glue sends `message` to the player."""

    message: str


@dataclass(frozen=True, slots=True)
class ProtocolError:
    """Invalid or hostile telnet bytes were ignored; the glue logs `reason`."""

    reason: str


TelnetEvent = LineReceived | OobReceived | FlagsChanged | InputError | ProtocolError




def default_flags() -> dict[str, Any]:
    """Protocol flags of a fresh telnet session (Evennia's names and defaults).

    SCREENWIDTH/SCREENHEIGHT are keyed by window id (int 0); msgpack keeps int keys.
    """
    flags: dict[str, Any] = {
        "ENCODING": "utf-8",
        "SCREENREADER": False,
        "INPUTDEBUG": False,
        "RAW": False,
        "NOCOLOR": False,
        "LOCALECHO": False,
        "NOPKEEPALIVE": True,
        "FORCEDENDLINE": True,
        "TTYPE": False,
        "CLIENTNAME": "",
        "TERM": "",
        "NOGOAHEAD": True,
        "NOPROMPTGOAHEAD": True,
        "SCREENWIDTH": {0: 78},
        "SCREENHEIGHT": {0: 45},
        "AUTORESIZE": False,
        "EOR": False,
        "CHARSET": "",
        "MCCP": False,
        "MSSP": False,
        "GMCP": False,
        "MSDP": False,
        "OOB": False,
        "MXP": False,
    }
    for _bit, name in MTTS_BITS:
        flags.setdefault(name, False)
    flags["ANSI"] = True
    return flags


def copy_flags(flags: dict[str, Any]) -> dict[str, Any]:
    return {k: dict(v) if isinstance(v, dict) else v for k, v in flags.items()}


def codec(name: object) -> str:
    """The Python codec for an ENCODING flag; anything but a real text encoding is utf-8."""
    return text_encoding(name) or "utf-8"

