"""What GMCP and MSDP share: the OOB flag, and decoding a subnegotiation into events."""

from __future__ import annotations

from portal.oob import OobReceived
from portal.telnet.codes import GMCP, MSDP
from portal.telnet.options.base import Host, Option


class OobOption(Option):
    """An out-of-band option: `decode` turns a payload into commands (or ValueError)."""

    def decode(self, payload: bytes) -> list[OobReceived]:
        raise NotImplementedError

    def enabled(self, host: Host, local: bool) -> None:
        super().enabled(host, local)
        host.flags["OOB"] = True

    def disabled(self, host: Host, local: bool) -> None:
        super().disabled(host, local)
        host.flags["OOB"] = host._on(GMCP, local=True) or host._on(MSDP, local=True)

    def subneg(self, host: Host, opt: int, payload: bytes) -> None:
        try:
            events = self.decode(payload)
        except ValueError as exc:
            host._error(f"bad {self.flag} message: {exc}")
            return
        host._events.extend(events)
