"""The portal side of a player's connection, with Evennia's session API.

Each wire protocol subclasses `PortalSession` and implements `send_text`, `send_prompt`,
`send_default` (out-of-band commands), `disconnect`, and `pause_input`/`resume_input`.
The portal keeps the authoritative copy of every synced field; the server's copy is
rebuilt from it on every attach.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, ClassVar, Protocol

from ipc.frames import SessionData, load_sync_data_into, sync_data_from

# What the portal takes from the server's copy: everything it does not own itself (the
# address and protocol are the connection's; the portal counts commands at each ack).
FROM_SERVER = ("uid", "uname", "logged_in", "conn_time", "server_data")


class InputGuard(Protocol):
    """The handler's edge checks (`portal.guard.PortalGuard`), as a session sees them."""

    def data_in(self, session: PortalSession, cmdname: str, args: list[Any],
                kwargs: dict[str, Any]) -> None: ...


class SessionHandler(Protocol):
    """What a session calls on its handler (`portal.sessions.PortalSessionHandler`); named
    here so that this module does not import the handler that imports it."""

    @property
    def guard(self) -> InputGuard: ...

    def data_in(self, session: PortalSession, cmdname: str, args: list[Any],
                kwargs: dict[str, Any]) -> None: ...

log = logging.getLogger(__name__)

MSG_OUTPUT_FAILED = "Some output for you could not be shown (see `encoding`); it was dropped."


class PortalSession:
    # What the player path reads on every line, in slots (with a `__dict__` for the
    # rest, `protocol_key` among it): a session's hot state is one block of memory.
    __slots__ = (  # noqa: RUF023 (the order is the layout: what each line reads comes first)
        "sessid", "guard_state", "_paused", "cmd_total", "cmd_last", "cmd_last_visible",
        "protocol_flags", "logged_in", "address", "csessid", "uid", "uname", "conn_time",
        "server_data", "sessionhandler", "gone", "output_failed", "__dict__", "__weakref__",
    )
    protocol_key = "base"
    # Whether this class overrides `input_answered` (set for each subclass): the handler
    # calls it only then, since it runs for every answered input.
    hears_answers: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.hears_answers = cls.input_answered is not PortalSession.input_answered

    def __init__(self) -> None:
        self.sessid = 0
        self.address = ""
        self.csessid: str | None = None
        self.uid: int | None = None
        self.uname: str | None = None
        self.logged_in = False
        self.conn_time = 0.0
        self.cmd_last = 0.0
        self.cmd_last_visible = 0.0
        self.cmd_total = 0
        self.protocol_flags: dict[str, Any] = {}
        self.server_data: dict[str, Any] = {}
        self.sessionhandler: SessionHandler | None = None
        self.gone: asyncio.Future[None] | None = None  # done once the socket is closed
        self.output_failed = False  # logged once per session
        self._paused: set[str] = set()  # why reading from the client stops (see _set_paused)
        self.guard_state: Any = None  # the guard's own state for this session (portal.guard)

    # ------------------------------------------------------------ Evennia's session API

    def init_session(
        self, protocol_key: str, address: str, sessionhandler: SessionHandler
    ) -> None:
        self.protocol_key = protocol_key
        self.address = address
        self.sessionhandler = sessionhandler
        self.conn_time = self.cmd_last = self.cmd_last_visible = time.time()

    def get_sync_data(self) -> SessionData:
        return sync_data_from(self)

    def load_sync_data(self, data: SessionData) -> None:
        """Take the server's changes. The portal counts commands itself (at each ack),
        so `cmd_total` and the `cmd_last*` times are not taken from the server; flags the
        server pushes are merged over the negotiated ones."""
        load_sync_data_into(self, data, FROM_SERVER)
        self.protocol_flags.update(data.protocol_flags)

    def at_sync(self) -> None:
        """Called after the server's data was loaded."""

    def data_in(self, cmdname: str, args: list[Any], kwargs: dict[str, Any]) -> None:
        """Every protocol's input enters here: the handler's guard cleans and checks it
        (portal/guard.py), rate-limits it, and queues it for the game."""
        if self.sessionhandler is not None:
            self.sessionhandler.guard.data_in(self, cmdname, args, kwargs)

    def data_out(self, **kwargs: Any) -> None:
        """Evennia's form: `data_out(text="hi", prompt="> ", gmcp_cmd=([args], {kw}))`."""
        for cmdname, value in kwargs.items():
            if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], dict):
                self.send_output(cmdname, list(value[0]), value[1])
            else:
                self.send_output(cmdname, [value], {})

    def send_output(self, cmdname: str, args: list[Any], kwargs: dict[str, Any]) -> None:
        """Dispatch one output command to `send_<cmdname>` or `send_default`.

        Never raises: output that fails for this player (a bug, or flags the game set that
        the protocol cannot honour) is logged once and the player told, and the rest of the
        batch still reaches everyone else."""
        try:
            if cmdname == "text" and not kwargs:  # most output: one call less
                text = args[0] if args else ""
                self.send_text(text if text.__class__ is str else str(text))
            else:
                self._dispatch_output(cmdname, args, kwargs)
        except Exception as exc:
            self._output_failed(cmdname, exc)

    def _output_failed(self, cmdname: str, exc: Exception) -> None:
        if not self.output_failed:
            self.output_failed = True
            log.exception("session %d (%s): %s output failed", self.sessid, self.address,
                          cmdname)
        else:
            log.debug("session %d: %s output failed again: %r", self.sessid, cmdname, exc)
        try:
            self.send_text(MSG_OUTPUT_FAILED)
        except Exception:  # the notice itself cannot be shown: the log has it
            log.debug("session %d: could not tell the player", self.sessid)

    def _dispatch_output(self, cmdname: str, args: list[Any], kwargs: dict[str, Any]) -> None:
        if cmdname == "text":
            self.send_text(str(args[0]) if args else "", **kwargs)
        elif cmdname == "prompt":
            self.send_prompt(str(args[0]) if args else "", **kwargs)
        else:
            self.send_default(cmdname, args, kwargs)

    # ------------------------------------------------------------ for protocols to implement

    def send_text(self, text: str, **kwargs: Any) -> None:
        raise NotImplementedError

    def send_prompt(self, text: str, **kwargs: Any) -> None:
        self.send_text(text, **kwargs)

    def send_default(self, cmdname: str, args: list[Any], kwargs: dict[str, Any]) -> None:
        """Out-of-band output; protocols without OOB ignore it."""

    def disconnect(self, reason: str = "") -> None:
        raise NotImplementedError

    def flush_output(self) -> None:
        """Write output queued since the handler's `write_soon(self)`."""

    def pause_input(self) -> None:
        """Stop reading from the client (its input buffer is full)."""
        self._set_paused("input", True)

    def resume_input(self) -> None:
        """Read from the client again."""
        self._set_paused("input", False)

    def input_answered(self) -> None:
        """One input of this session was answered: the server acknowledged it, after all
        the output it caused (which has been given to `send_output` already)."""

    def throttle_input(self, paused: bool) -> None:
        """The guard holds input over the command rate: stop (True) or go on (False)
        reading, independently of `pause_input`. A door that cannot pause leaves
        `_pause_changed` as is; its input waits in the guard (bounded), then is dropped
        with a message."""
        self._set_paused("rate", paused)

    # ------------------------------------------------------------ pausing the client

    def _set_paused(self, reason: str, paused: bool) -> None:
        """Read from the client only while no reason (input held, output backed up, over
        the command rate, ...) forbids it; `_pause_changed` acts on it for the door."""
        was = bool(self._paused)
        if paused:
            self._paused.add(reason)
        else:
            self._paused.discard(reason)
        self._pause_changed(paused, was != bool(self._paused))

    def _pause_changed(self, paused: bool, flipped: bool) -> None:
        """The door's hook: `reason` was just set (`paused`) or cleared; `flipped` when
        reading must now stop or start (`self._paused` says which)."""
