"""MSDP: VAR/VAL/TABLE/ARRAY out-of-band commands (the codec is `portal/oob.py`)."""

from __future__ import annotations

from portal.oob import OobReceived, decode_msdp
from portal.telnet.options.oob import OobOption


class Msdp(OobOption):
    flag = "MSDP"

    def decode(self, payload: bytes) -> list[OobReceived]:
        return decode_msdp(payload)
