"""NAWS (RFC 1073): the client reports its window size."""

from __future__ import annotations

from portal.telnet.options.base import Host, Option
from portal.window import clamp_window


class Naws(Option):
    def enabled(self, host: Host, local: bool) -> None:
        host.flags["AUTORESIZE"] = True
        host._pending.add("naws")

    def disabled(self, host: Host, local: bool) -> None:
        host.flags["AUTORESIZE"] = False
        host._done("naws")

    def subneg(self, host: Host, opt: int, payload: bytes) -> None:
        if len(payload) != 4:
            host._error(f"NAWS subnegotiation of {len(payload)} bytes (want 4); ignored")
            return
        width = clamp_window(payload[0] << 8 | payload[1])
        height = clamp_window(payload[2] << 8 | payload[3])
        # 0 means "unknown" (RFC 1073): keep what we had.
        if width and host.flags["SCREENWIDTH"] != {0: width}:
            host.flags["SCREENWIDTH"] = {0: width}
        if height and host.flags["SCREENHEIGHT"] != {0: height}:
            host.flags["SCREENHEIGHT"] = {0: height}
        host._done("naws")
