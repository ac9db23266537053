"""MCCP2: our output zlib-compressed; the stream itself is kept by `TelnetProtocol`."""

from __future__ import annotations

from typing import Final

from portal.telnet.options.base import Host, Option

# A client may restart MCCP2 (a new zlib stream) only this often per connection.
MAX_MCCP_STARTS: Final = 8


class Mccp2(Option):
    def agrees(self, host: Host, local: bool) -> bool:
        return host._mccp_starts < MAX_MCCP_STARTS

    def enabled(self, host: Host, local: bool) -> None:
        host._start_mccp()

    def disabled(self, host: Host, local: bool) -> None:
        host._end_mccp()
