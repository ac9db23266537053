"""Telnet options, one module per family, each an `Option` (base.py).

An option module knows what its option does when it turns on or off and what its
subnegotiations mean; the Q method and the table of what we offer and accept live in
`portal/telnet/negotiation.py`. Adding an option is one file here and a row in that table.
Modules here import only `portal.telnet.codes`, `.events`, each other and the floor.
"""
