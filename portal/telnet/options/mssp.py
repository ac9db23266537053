"""MSSP: the server's status table, for crawlers, sent when the client agrees."""

from __future__ import annotations

from typing import Final

from portal.telnet.codes import MSSP, MSSP_VAL, MSSP_VAR
from portal.telnet.options.base import Host, Option

# A client may ask for MSSP (a table built from the whole portal) only this often.
MAX_MSSP: Final = 4


class Mssp(Option):
    flag = "MSSP"

    def enabled(self, host: Host, local: bool) -> None:
        super().enabled(host, local)
        if host._mssp_sent >= MAX_MSSP:
            host._error(f"MSSP asked for more than {MAX_MSSP} times; not sent again")
            return
        host._mssp_sent += 1
        payload = b"".join(
            bytes((MSSP_VAR,)) + _mssp_text(k) + bytes((MSSP_VAL,)) + _mssp_text(v)
            for k, v in host._mssp_table().items()
        )
        host._send_sb(MSSP, payload)


def _mssp_text(value: str) -> bytes:
    return value.encode("utf-8", errors="replace").translate(None, b"\x00\x01\x02")
