"""The one interface of a telnet option family, and what it may touch of the protocol."""

from __future__ import annotations

from typing import Any, Protocol

from portal.telnet.events import TelnetEvent


class Host(Protocol):
    """The part of `TelnetProtocol` an option works on (its state lives there, so that a
    hand-over snapshot is one flat record)."""

    flags: dict[str, Any]
    _events: list[TelnetEvent]
    _pending: set[str]
    _want_echo: bool
    _ttype_names: list[str]
    _ttype_waiting: bool
    _charset_waiting: bool
    _mssp_sent: int
    _mccp_starts: int

    def _on(self, opt: int, *, local: bool) -> bool: ...
    def _send_sb(self, opt: int, payload: bytes) -> None: ...
    def _error(self, reason: str) -> None: ...
    def _done(self, key: str) -> None: ...
    def _start_mccp(self) -> None: ...
    def _end_mccp(self) -> None: ...
    def _mssp_table(self) -> dict[str, str]: ...


class Option:
    """One option family. `local` is True for our side (we WILL, the peer says DO), False
    for the peer's (it WILLs, we say DO). Effects are idempotent: `disabled` may repeat."""

    flag = ""  # a boolean protocol flag that is True while the option is on on our side

    def agrees(self, host: Host, local: bool) -> bool:
        """Whether we accept the peer's request now (the table says whether at all)."""
        return True

    def enabled(self, host: Host, local: bool) -> None:
        if local and self.flag:
            host.flags[self.flag] = True

    def disabled(self, host: Host, local: bool) -> None:
        if local and self.flag:
            host.flags[self.flag] = False

    def subneg(self, host: Host, opt: int, payload: bytes) -> None:
        host._error(f"subnegotiation for option {opt}, which is not enabled; ignored")


class Flag(Option):
    """An option that only sets a flag while it is on (SGA, EOR)."""

    def __init__(self, flag: str = "") -> None:
        self.flag = flag
