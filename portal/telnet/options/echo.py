"""ECHO: we echo (the client hides what it types) only while `set_echo(True)` wants it."""

from __future__ import annotations

from portal.telnet.options.base import Host, Option


class Echo(Option):
    def agrees(self, host: Host, local: bool) -> bool:
        return host._want_echo
