"""systemd's sd_notify protocol, without libsystemd.

Under ``Type=notify`` systemd passes a datagram socket in ``NOTIFY_SOCKET``
and waits for ``READY=1`` on it; with ``WatchdogSec=`` it also passes
``WATCHDOG_USEC`` and expects ``WATCHDOG=1`` at least that often (sd_notify(3),
sd_watchdog_enabled(3)). Outside systemd ``NOTIFY_SOCKET`` is unset and every
call here is a cheap no-op that returns False.

Send ``READY=1`` only once the supervised server has completed its own ready
handshake, so that ``systemctl start`` returns when players can connect.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

__all__ = ["notify", "ready", "status", "stopping", "watchdog", "watchdog_interval"]


def notify(message: str, env: Mapping[str, str] = os.environ) -> bool:
    """Send ``message`` (``KEY=value`` lines) to systemd.

    Returns True if the datagram was sent; False if ``NOTIFY_SOCKET`` is unset
    or unusable, or sending failed. A missing notify socket must never take
    the supervisor down, so no error is raised.
    """
    address = _socket_address(env.get("NOTIFY_SOCKET", ""))
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message.encode(), address)
    except OSError:
        return False
    return True


def _socket_address(value: str) -> str | None:
    """The address to send to: a path, or an abstract name (``@name``)."""
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None  # unset, or a kind we don't speak (e.g. vsock:)


def ready(env: Mapping[str, str] = os.environ) -> bool:
    """Startup is complete."""
    return notify("READY=1", env)


def watchdog(env: Mapping[str, str] = os.environ) -> bool:
    """Keep-alive ping; send every `watchdog_interval` seconds."""
    return notify("WATCHDOG=1", env)


def stopping(env: Mapping[str, str] = os.environ) -> bool:
    """Shutdown has begun."""
    return notify("STOPPING=1", env)


def status(text: str, env: Mapping[str, str] = os.environ) -> bool:
    """Set the one-line status ``systemctl status`` shows."""
    # A newline would start another KEY=value assignment.
    return notify("STATUS=" + " ".join(text.splitlines()), env)


def watchdog_interval(env: Mapping[str, str] = os.environ, pid: int | None = None) -> float | None:
    """Seconds between `watchdog` pings, or None if no watchdog is asked for.

    That is half of ``WATCHDOG_USEC``, as sd_watchdog_enabled(3) advises. If
    ``WATCHDOG_PID`` is set it must be ``pid`` (default: this process),
    otherwise the watchdog is meant for another process.
    """
    watchdog_pid = env.get("WATCHDOG_PID")
    if watchdog_pid and watchdog_pid != str(os.getpid() if pid is None else pid):
        return None
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 2_000_000 if usec > 0 else None
