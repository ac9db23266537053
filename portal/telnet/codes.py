"""Telnet command, option and subnegotiation codes (RFC 854/855, the MUD protocols)."""

from __future__ import annotations

from typing import Final

# Telnet commands (RFC 854, RFC 885).
IAC: Final = 255
DONT: Final = 254
DO: Final = 253
WONT: Final = 252
WILL: Final = 251
SB: Final = 250
GA: Final = 249
SE: Final = 240
EOR_MARK: Final = 239

# Options.
ECHO: Final = 1
SGA: Final = 3
TTYPE: Final = 24
EOR: Final = 25
NAWS: Final = 31
LINEMODE: Final = 34
CHARSET: Final = 42
MSDP: Final = 69
MSSP: Final = 70
MCCP2: Final = 86
GMCP: Final = 201

# Subnegotiation codes.
TTYPE_IS: Final = 0
TTYPE_SEND: Final = 1
CHARSET_REQUEST: Final = 1
CHARSET_ACCEPTED: Final = 2
CHARSET_REJECTED: Final = 3
MSSP_VAR: Final = 1
MSSP_VAL: Final = 2
LINEMODE_MODE: Final = 1
LINEMODE_EDIT: Final = 1  # the client edits the line and sends it whole
LINEMODE_TRAPSIG: Final = 2  # and turns ^C etc. into telnet commands

