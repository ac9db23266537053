"""GMCP: `Package.Name json` out-of-band commands (the codec is `portal/oob.py`)."""

from __future__ import annotations

from portal.oob import OobReceived, decode_gmcp
from portal.telnet.options.oob import OobOption


class Gmcp(OobOption):
    flag = "GMCP"

    def decode(self, payload: bytes) -> list[OobReceived]:
        return [decode_gmcp(payload)]
