"""LINEMODE (RFC 1184): asked for so that a plain `telnet` edits whole lines (MODE EDIT)."""

from __future__ import annotations

from portal.telnet.codes import LINEMODE, LINEMODE_EDIT, LINEMODE_MODE, LINEMODE_TRAPSIG
from portal.telnet.options.base import Host, Option


class Linemode(Option):
    def enabled(self, host: Host, local: bool) -> None:
        host._send_sb(LINEMODE, bytes((LINEMODE_MODE, LINEMODE_EDIT | LINEMODE_TRAPSIG)))

    def subneg(self, host: Host, opt: int, payload: bytes) -> None:
        pass  # MODE ACK, SLC, FORWARDMASK: the client edits lines; nothing for us to do
