"""Who holds a TCP port, for the one-line error of a port already in use."""

from __future__ import annotations

import psutil


def holder_of(port: int) -> str:
    """`pid N (name)` of the process listening on TCP `port`, or "" when it cannot be seen.

    psutil lists every process's sockets only for root (or the same user's); anything else
    yields "" rather than a guess.
    """
    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return ""
    for conn in connections:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            if not conn.pid:
                return ""
            try:
                return f"pid {conn.pid} ({psutil.Process(conn.pid).name()})"
            except psutil.Error:
                return f"pid {conn.pid}"
    return ""
