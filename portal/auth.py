"""SSH logins waiting for the game server's answer.

The portal has no database: every SSH authentication step is an `AuthRequest` to the
attached server, answered by an `AuthResult`. While no server is attached (a reload, a
restart after a crash) requests wait here and are sent when one attaches; a request sent
to a server that went away before answering is sent again to the next one, so a login is
never refused or lost because the game was restarting. How long a login waits is the
caller's bound (`ask(..., timeout)`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from ipc.frames import AuthMethod, AuthRequest, AuthResult, Frame


class AuthRequests:
    """Requests not yet answered, by id; `attach`/`detach` follow the server link."""

    def __init__(self) -> None:
        self._next_id = 1
        self._waiting: dict[int, tuple[AuthRequest, asyncio.Future[AuthResult]]] = {}
        self._send: Callable[[Frame], Any] | None = None

    def __len__(self) -> int:
        return len(self._waiting)

    async def ask(self, method: AuthMethod, username: str, timeout: float,
                  **fields: Any) -> AuthResult:
        """Send a request (now, or once a server is attached) and wait for its answer.

        Raises TimeoutError after `timeout` seconds; the request is then forgotten."""
        request = AuthRequest(request_id=self._next_id, method=method, username=username,
                              **fields)
        self._next_id += 1
        future: asyncio.Future[AuthResult] = asyncio.get_running_loop().create_future()
        self._waiting[request.request_id] = (request, future)
        if self._send is not None:
            self._send(request)
        try:
            return await asyncio.wait_for(future, timeout)
        finally:  # answered, timed out, or cancelled (the client gave up on this attempt)
            self._waiting.pop(request.request_id, None)

    def attach(self, send: Callable[[Frame], Any]) -> None:
        """A server is attached: send it every request still waiting."""
        self._send = send
        for request, _future in list(self._waiting.values()):
            send(request)

    def detach(self) -> None:
        """The server went away: what it did not answer waits for the next one."""
        self._send = None

    def receive_result(self, result: AuthResult) -> None:
        """An answer from the server; one for a forgotten request is ignored."""
        entry = self._waiting.get(result.request_id)
        if entry is not None and not entry[1].done():
            entry[1].set_result(result)
