"""The public listening sockets: bound (or taken from systemd) by the supervisor, inherited
by every portal it starts.

Theory of operation
-------------------
A listening socket belongs to the supervisor, not to a portal. The supervisor binds each
player-facing port once, before it spawns the first portal, and passes the descriptors to
every portal it starts (`pass_fds`; the portal finds their numbers in its `ChildEnv`). A
portal that crashes or is rebooted only closes its own copy: the port stays open, and
connections made while no portal runs wait in the kernel's backlog until the next portal
accepts them, so none is refused.

Under systemd socket activation (`LISTEN_PID`, `LISTEN_FDS`, `LISTEN_FDNAMES`; see
sd_listen_fds(3) and `docs/hearth.socket`) the supervisor takes systemd's sockets instead of
binding its own; each is named after its protocol key (`telnet`, `telnet-ssl`, `ssh`,
`web`). A key systemd did not pass is bound here as usual.
"""

from __future__ import annotations

import contextlib
import errno
import socket
from collections.abc import Mapping

from ipc.settings import PortalSettings
from supervisor.ports import holder_of

SD_LISTEN_FDS_START = 3
# systemd's FileDescriptorName= may not contain "/", so telnet/ssl is named telnet-ssl there.
SYSTEMD_NAMES = {"telnet-ssl": "telnet/ssl"}


class ListenError(OSError):
    """A port could not be bound; the message names the key, the address and the reason."""


def wanted_ports(portal: PortalSettings) -> dict[str, int]:
    """Protocol key -> configured port, for every listener the settings turn on."""
    ports = {"telnet": portal.telnet_port}
    for key, name in (("telnet/ssl", "telnet_ssl_port"), ("ssh", "ssh_port"),
                      ("web", "web_port")):
        port = getattr(portal, name, None)
        if port is not None:
            ports[key] = port
    return ports


def bind(key: str, interface: str, port: int, backlog: int) -> socket.socket:
    """A listening TCP socket on `interface:port` (port 0: any free one)."""
    family = socket.AF_INET6 if ":" in interface else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((interface, port))
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        why = in_use(port) if exc.errno == errno.EADDRINUSE else exc.strerror
        raise ListenError(exc.errno, f"cannot listen for {key} on {interface}:{port}: "
                                     f"{why}") from None
    sock.setblocking(False)
    return sock


def in_use(port: int) -> str:
    """Why the port cannot be bound, naming the process that holds it when that is visible."""
    holder = holder_of(port)
    return f"the port is in use by {holder}" if holder else "the port is in use"


def from_systemd(environ: Mapping[str, str], pid: int) -> dict[str, socket.socket]:
    """The sockets systemd passed to process `pid`, by protocol key ({} when none).

    sd_listen_fds(3): they are descriptors 3 .. 3+LISTEN_FDS-1, meant for us only when
    LISTEN_PID is our pid; LISTEN_FDNAMES names them, colon-separated.
    """
    if environ.get("LISTEN_PID") != str(pid):
        return {}
    try:
        count = int(environ.get("LISTEN_FDS", "0"))
    except ValueError:
        return {}
    names = environ.get("LISTEN_FDNAMES", "").split(":")
    sockets: dict[str, socket.socket] = {}
    for index in range(count):
        name = names[index] if index < len(names) else ""
        key = SYSTEMD_NAMES.get(name, name)
        sock = socket.socket(fileno=SD_LISTEN_FDS_START + index)
        sock.setblocking(False)
        sockets[key] = sock
    return sockets


class Listeners:
    """The listening sockets this supervisor holds, by protocol key."""

    def __init__(self) -> None:
        self.sockets: dict[str, socket.socket] = {}
        self._configured: dict[str, int] = {}  # key -> port the settings asked for
        self._from_systemd: set[str] = set()

    def adopt_systemd(self, environ: Mapping[str, str], pid: int) -> list[str]:
        """Take systemd's sockets (socket activation); returns the keys taken."""
        for key, sock in from_systemd(environ, pid).items():
            self.sockets[key] = sock
            self._from_systemd.add(key)
        return sorted(self._from_systemd)

    def open(self, portal: PortalSettings) -> None:
        """Bind every port the settings want and this supervisor does not hold yet; close the
        ones the settings no longer want or now want elsewhere (a `reboot` applies them).
        Raises ListenError, naming the port, when one cannot be bound."""
        wanted = wanted_ports(portal)
        for key in list(self.sockets):
            if key in self._from_systemd:
                continue
            if wanted.get(key) != self._configured.get(key):
                self._close(key)
        for key, port in wanted.items():
            if key not in self.sockets:
                self.sockets[key] = bind(key, portal.interface, port, portal.listen_backlog)
                self._configured[key] = port

    def fds(self) -> dict[str, int]:
        """Protocol key -> descriptor number, as the portal inherits it."""
        return {key: sock.fileno() for key, sock in self.sockets.items()}

    def ports(self) -> dict[str, int]:
        return {key: int(sock.getsockname()[1]) for key, sock in self.sockets.items()}

    def _close(self, key: str) -> None:
        sock = self.sockets.pop(key)
        self._configured.pop(key, None)
        with contextlib.suppress(OSError):
            sock.close()

    def close(self) -> None:
        for key in list(self.sockets):
            self._close(key)

