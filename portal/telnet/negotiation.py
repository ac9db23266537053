"""Option negotiation: the Q method (RFC 1143) and the one table of options.

Each option has one state for our side (we WILL, the peer says DO) and one for the peer's
side (we DO, the peer says WILL), each NO, YES, WANTNO or WANTYES plus a one-bit queue, so
a peer that repeats itself can never drive us into a loop. An option not in `TABLE` is
refused once; later requests for it are ignored. What an option does lives in `options/`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Final, cast

from portal.telnet.codes import (
    CHARSET,
    DO,
    DONT,
    ECHO,
    EOR,
    GMCP,
    LINEMODE,
    MCCP2,
    MSDP,
    MSSP,
    NAWS,
    SGA,
    TTYPE,
    WILL,
    WONT,
)
from portal.telnet.events import TelnetEvent
from portal.telnet.options.base import Host, Option
from portal.telnet.options.charset import Charset
from portal.telnet.options.echo import Echo
from portal.telnet.options.eor import Eor, Sga
from portal.telnet.options.gmcp import Gmcp
from portal.telnet.options.linemode import Linemode
from portal.telnet.options.mccp2 import Mccp2
from portal.telnet.options.msdp import Msdp
from portal.telnet.options.mssp import Mssp
from portal.telnet.options.naws import Naws
from portal.telnet.options.ttype import Ttype


@dataclass(frozen=True, slots=True)
class Row:
    """One option: on which side we accept it (`us`: we perform it when the peer says DO;
    `him`: the peer performs it), which side we offer at the start, and whether settling
    waits for the answer to our offer."""

    opt: int
    option: Option
    us: bool = False
    him: bool = False
    offer_us: bool = False
    offer_him: bool = False
    awaited: bool = True


# Offers go out in this order. DO LINEMODE, as Evennia asks: a plain BSD/inetutils `telnet`
# told WILL SGA without LINEMODE drops to character mode with local echo (every Enter shows
# as `^M`); LINEMODE (MODE EDIT) keeps it editing whole lines. MUD clients refuse it.
# Not awaited: MSSP is for crawlers (TinTin++ 2.02 never answers WILL MSSP); LINEMODE
# changes no flag. ECHO is accepted only while `set_echo(True)` wants it.
TABLE: Final = (
    Row(SGA, Sga, us=True, him=True, offer_us=True),
    Row(EOR, Eor, us=True, offer_us=True),
    Row(CHARSET, Charset(), us=True, him=True, offer_us=True),
    Row(MCCP2, Mccp2(), us=True, offer_us=True),
    Row(MSSP, Mssp(), us=True, offer_us=True, awaited=False),
    Row(GMCP, Gmcp(), us=True, offer_us=True),
    Row(MSDP, Msdp(), us=True, offer_us=True),
    Row(NAWS, Naws(), him=True, offer_him=True),
    Row(TTYPE, Ttype(), him=True, offer_him=True),
    Row(LINEMODE, Linemode(), him=True, offer_him=True, awaited=False),
    Row(ECHO, Echo(), us=True),
)
_ROWS: Final = {row.opt: row for row in TABLE}
OFFERS: Final = tuple((row.opt, True) for row in TABLE if row.offer_us) + tuple(
    (row.opt, False) for row in TABLE if row.offer_him)


class Q(IntEnum):
    NO = 0
    YES = 1
    WANTNO = 2
    WANTYES = 3


@dataclass(slots=True)
class Side:
    state: Q = Q.NO
    opposite: bool = False


class Negotiation:
    """The negotiation layer of `TelnetProtocol` (a base class: its state is flat on the
    protocol for the hand-over snapshot). `_send_cmd` is the protocol's output."""

    flags: dict[str, Any]
    _events: list[TelnetEvent]

    def __init__(self) -> None:
        self._us: dict[int, Side] = {}
        self._him: dict[int, Side] = {}
        self._refused: set[tuple[bool, int]] = set()
        self._want_echo = False
        self._pending: set[str] = set()
        self._ttype_names: list[str] = []
        self._ttype_waiting = False
        self._charset_waiting = False
        self._mssp_sent = 0
        self._mccp_starts = 0

    def _send_cmd(self, cmd: int, opt: int) -> None:
        raise NotImplementedError

    def _error(self, reason: str) -> None:
        raise NotImplementedError

    @property
    def _host(self) -> Host:
        """This protocol as its options see it (`TelnetProtocol` is the whole `Host`)."""
        return cast("Host", self)

    def _done(self, key: str) -> None:
        self._pending.discard(key)

    def _offer_all(self) -> None:
        for opt, local in OFFERS:
            self._offer(opt, local=local)

    def _receive_subneg(self, opt: int, payload: bytes) -> None:
        row = _ROWS.get(opt)
        if row is not None and ((row.us and self._on(opt, local=True))
                                or (row.him and self._on(opt, local=False))):
            row.option.subneg(self._host, opt, payload)
        else:
            self._error(f"subnegotiation for option {opt}, which is not enabled; ignored")

    def _side(self, opt: int, local: bool) -> Side:
        table = self._us if local else self._him
        side = table.get(opt)
        if side is None:
            side = table[opt] = Side()
        return side

    def _on(self, opt: int, *, local: bool) -> bool:
        side = (self._us if local else self._him).get(opt)
        return side is not None and side.state is Q.YES

    def _offer(self, opt: int, *, local: bool) -> None:
        if self._side(opt, local).state is Q.NO:
            if _ROWS[opt].awaited:
                self._pending.add(_offer_key(opt, local))
            self._request(opt, local=local, enable=True)

    def _request(self, opt: int, *, local: bool, enable: bool) -> None:
        """Our own wish to turn an option on or off (RFC 1143 section 7)."""
        side = self._side(opt, local)
        yes, no = (WILL, WONT) if local else (DO, DONT)
        state = side.state
        if state is Q.NO and enable:
            self._move(side, Q.WANTYES, opt, local)
            self._send_cmd(yes, opt)
        elif state is Q.YES and not enable:
            self._move(side, Q.WANTNO, opt, local)
            self._send_cmd(no, opt)
        elif state is Q.WANTNO:
            side.opposite = enable
        elif state is Q.WANTYES:
            side.opposite = not enable

    def _receive_negotiation(self, cmd: int, opt: int) -> None:
        local = cmd in (DO, DONT)
        self._done(_offer_key(opt, local))
        if opt not in _ROWS:
            self._refuse_unknown(cmd, opt, local)
        elif cmd in (WILL, DO):
            self._receive_enable(opt, local)
        else:
            self._receive_disable(opt, local)

    def _refuse_unknown(self, cmd: int, opt: int, local: bool) -> None:
        if cmd in (WONT, DONT) or (local, opt) in self._refused:
            return
        self._refused.add((local, opt))
        self._send_cmd(WONT if local else DONT, opt)

    def _receive_enable(self, opt: int, local: bool) -> None:
        side = self._side(opt, local)
        yes, no = (WILL, WONT) if local else (DO, DONT)
        state = side.state
        if state is Q.NO:
            if self._agrees(opt, local):
                # Reply first: enabling may start MCCP2 or send a subnegotiation.
                self._send_cmd(yes, opt)
                self._move(side, Q.YES, opt, local)
            else:
                self._send_cmd(no, opt)
        elif state is Q.WANTNO:
            # An error by the peer (it answered our "no" with "yes"): RFC 1143 settles it.
            self._move(side, Q.YES if side.opposite else Q.NO, opt, local)
            side.opposite = False
        elif state is Q.WANTYES:
            if side.opposite:
                side.opposite = False
                self._move(side, Q.WANTNO, opt, local)
                self._send_cmd(no, opt)
            else:
                self._move(side, Q.YES, opt, local)

    def _receive_disable(self, opt: int, local: bool) -> None:
        side = self._side(opt, local)
        yes, no = (WILL, WONT) if local else (DO, DONT)
        state = side.state
        if state is Q.YES:
            self._move(side, Q.NO, opt, local)
            self._send_cmd(no, opt)
        elif state is Q.WANTNO and side.opposite:
            side.opposite = False
            self._move(side, Q.WANTYES, opt, local)
            self._send_cmd(yes, opt)
        elif state in (Q.WANTNO, Q.WANTYES):
            side.opposite = False
            self._move(side, Q.NO, opt, local)

    def _move(self, side: Side, new: Q, opt: int, local: bool) -> None:
        old, side.state = side.state, new
        if old is new:
            return
        if new is Q.YES:
            self._enabled(opt, local)
        elif old is Q.YES or new is Q.NO:
            self._disabled(opt, local)  # effects are idempotent: WANTNO -> NO repeats it

    # --- option effects ------------------------------------------------------------

    def _agrees(self, opt: int, local: bool) -> bool:
        row = _ROWS.get(opt)
        if row is None or not (row.us if local else row.him):
            return False
        return row.option.agrees(self._host, local)

    def _enabled(self, opt: int, local: bool) -> None:
        _ROWS[opt].option.enabled(self._host, local)

    def _disabled(self, opt: int, local: bool) -> None:
        _ROWS[opt].option.disabled(self._host, local)


def _offer_key(opt: int, local: bool) -> str:
    return f"{'us' if local else 'him'}:{opt}"
