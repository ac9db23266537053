"""The telnet door: the sans-I/O protocol (`protocol.py`: `parser.py` for bytes,
`negotiation.py` for the Q method and the option table, `options/` one module per option
family) and its asyncio shell (`session.py`). Imports the shared floor (`portal.*` modules,
`portal.oob`) and `ipc`; never another door (`portal.ssh`, `portal.web`) nor `portal.move`.
"""

from portal.oob import OobReceived
from portal.telnet.codes import *  # noqa: F403  (the codes are part of the protocol's API)
from portal.telnet.events import (
    FlagsChanged,
    InputError,
    LineReceived,
    ProtocolError,
    TelnetEvent,
    default_flags,
)
from portal.telnet.protocol import TelnetProtocol

__all__ = [
    "FlagsChanged",
    "InputError",
    "LineReceived",
    "OobReceived",
    "ProtocolError",
    "TelnetEvent",
    "TelnetProtocol",
    "default_flags",
]
