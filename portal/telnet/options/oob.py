"""GMCP and MSDP: out-of-band commands both ways (the codec is `portal/oob.py`)."""

from __future__ import annotations

from portal.oob import decode_gmcp, decode_msdp
from portal.telnet.codes import GMCP, MSDP
from portal.telnet.options.base import Host, Option


class _Oob(Option):
    def enabled(self, host: Host, local: bool) -> None:
        super().enabled(host, local)
        host.flags["OOB"] = True

    def disabled(self, host: Host, local: bool) -> None:
        super().disabled(host, local)
        host.flags["OOB"] = host._on(GMCP, local=True) or host._on(MSDP, local=True)


class Gmcp(_Oob):
    flag = "GMCP"

    def subneg(self, host: Host, opt: int, payload: bytes) -> None:
        try:
            event = decode_gmcp(payload)
        except ValueError as exc:
            host._error(f"bad GMCP message: {exc}")
            return
        host._events.append(event)


class Msdp(_Oob):
    flag = "MSDP"

    def subneg(self, host: Host, opt: int, payload: bytes) -> None:
        try:
            events = decode_msdp(payload)
        except ValueError as exc:
            host._error(f"bad MSDP message: {exc}")
            return
        host._events.extend(events)
