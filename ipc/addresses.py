"""Which client addresses a rule covers: `unlimited_addresses`, shared by portal and server."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable


class Networks:
    """A set of networks (`"127.0.0.0/8"`, `"::1"`); `address in networks` tells whether
    the client address falls in one. An address that is not an IP address (a Unix socket
    peer, garbage) is in none; an IPv4-mapped IPv6 address counts as its IPv4 address."""

    def __init__(self, networks: Iterable[str] = ()) -> None:
        self._networks = [ipaddress.ip_network(n, strict=False) for n in networks]

    def __contains__(self, address: object) -> bool:
        if not self._networks or not isinstance(address, str):
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self._networks)
