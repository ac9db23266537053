"""EOR (RFC 885) and SGA: options that only set a flag while on; the prompt mark they
choose (IAC EOR, IAC GA or nothing) is `TelnetProtocol._prompt_mark`."""

from __future__ import annotations

from portal.telnet.options.base import Flag

Eor = Flag("EOR")
Sga = Flag("NOGOAHEAD")
