"""The server side of a player's connection, with Evennia's session API.

A `ServerSession` is rebuilt from the portal's copy whenever a server attaches
(`load_sync_data`, then `at_sync`). Every change of synced data (login, flags, the game's
`server_data`) marks the session dirty; the handler pushes dirty sessions to the portal at
the end of the command that changed them, so a crash restores them as well as a reload.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from ipc.frames import SYNCED_FIELDS, SessionData, load_sync_data_into, sync_data_from
from server.oob import SessionOob

if TYPE_CHECKING:
    from server.world.objects import WorldObject

_ENCODER = msgspec.msgpack.Encoder()

# The fields the portal's copy sets wholesale; the two dicts are rebuilt as tracked ones.
PLAIN_FIELDS = tuple(name for name in SYNCED_FIELDS
                     if name not in ("protocol_flags", "server_data"))



class SessionHandler(Protocol):
    """What a session calls on its handler (`server.sessions.ServerSessionHandler`); named
    here so that this module does not import the handler that imports it."""

    def disconnect(self, session: ServerSession, reason: str) -> None: ...

    def data_out(self, session: ServerSession, **kwargs: Any) -> None: ...

    def text_out(self, session: ServerSession, text: str) -> None: ...

    def run_input(self, session: ServerSession, cmdname: str, args: list[Any],
                  kwargs: dict[str, Any]) -> None: ...

    def notify_login(self, session: ServerSession) -> None: ...

    def note_dirty(self, session: ServerSession) -> None: ...

    def take_back_echo_on(self, session: ServerSession) -> bool: ...


# In `server_data` (so it survives a reload or crash): the reply handler that takes this
# session's next line (`ask`).
ASK_KEY = "_ask"


class TrackedDict(dict[str, Any]):
    """A dict that calls `on_change` whenever it is modified, and notes which keys."""

    def __init__(self, data: dict[str, Any], on_change: Callable[[], None]) -> None:
        super().__init__(data)
        self._on_change = on_change
        self.changed: set[str] = set()

    def _note(self, keys: Iterable[str]) -> None:
        self.changed.update(keys)
        self._on_change()

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self._note((key,))

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._note((key,))

    def update(self, *args: Any, **kwargs: Any) -> None:
        new = dict(*args, **kwargs)
        super().update(new)
        self._note(new)

    def pop(self, key: str, *default: Any) -> Any:
        value = super().pop(key, *default)
        self._note((key,))
        return value

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def clear(self) -> None:
        keys = list(self)
        super().clear()
        self._note(keys)


class ServerSession:
    """One player connection as the game sees it."""

    # Its state in slots, which every command reads (a game may still set attributes of
    # its own: they go to `__dict__`), so a session is one block of memory.
    __slots__ = (  # noqa: RUF023 (the order is the layout: what each command reads first)
        "sessid", "logged_in", "server_data", "sessionhandler", "cmd_total", "cmd_last",
        "cmd_last_visible", "puppet", "protocol_key", "address", "csessid", "uid", "uname",
        "conn_time", "protocol_flags", "ndb", "dirty", "_synced", "_oob", "__dict__",
        "__weakref__",
    )

    def __init__(self) -> None:
        self.sessid = 0
        self.protocol_key = ""
        self.address = ""
        self.csessid: str | None = None
        self.uid: int | None = None
        self.uname: str | None = None
        self.logged_in = False
        self.conn_time = 0.0
        self.cmd_last = 0.0
        self.cmd_last_visible = 0.0
        self.cmd_total = 0
        self.protocol_flags: TrackedDict = TrackedDict({}, self.mark_dirty)
        self.server_data: TrackedDict = TrackedDict({}, self.mark_dirty)
        self.sessionhandler: SessionHandler | None = None
        self.ndb: dict[str, Any] = {}  # in-memory only; gone after a reload
        # the character this session plays (`server.world`); its id is in server_data,
        # so after a reload or crash the session is bound to it again at sync
        self.puppet: WorldObject | None = None
        self.dirty = False
        self._synced = b""  # what the portal has of this session, encoded (`is_synced`)
        self._oob: SessionOob | None = None

    # ------------------------------------------------------------ Evennia's session API

    def get_sync_data(self) -> SessionData:
        data = sync_data_from(self)
        data.protocol_flags = dict(self.protocol_flags)
        data.server_data = dict(self.server_data)
        return data

    def get_changed_data(self) -> SessionData:
        """Sync data for a push to the portal: `protocol_flags` holds only the flags the
        game changed, so a push never undoes what the portal negotiated meanwhile."""
        data = self.get_sync_data()
        flags = self.protocol_flags
        data.protocol_flags = {key: flags[key] for key in flags.changed if key in flags}
        flags.changed.clear()
        return data

    def load_sync_data(self, data: SessionData) -> None:
        """Take the portal's copy; `protocol_flags` is merged, as Evennia does."""
        load_sync_data_into(self, data, PLAIN_FIELDS)
        dict.update(self.protocol_flags, data.protocol_flags)
        self.server_data = TrackedDict(data.server_data, self.mark_dirty)
        self._oob = None  # rebuilt from the new server_data when next used
        self.note_synced()

    def _sync_state(self) -> bytes:
        # the fields the game changes; flags changed by the game are tracked (TrackedDict)
        try:
            return _ENCODER.encode((self.uid, self.uname, self.logged_in, self.conn_time,
                                    self.server_data))
        except (TypeError, msgspec.EncodeError):
            return b"?"  # not encodable: the push will say why

    def note_synced(self) -> None:
        """The portal has this session's data as it is now."""
        self._synced = self._sync_state()

    def is_synced(self) -> bool:
        """Whether the portal's copy is this session's data (deep: nested changes count)."""
        return not self.dirty and self._synced == self._sync_state()

    def at_sync(self) -> None:
        """Called after the portal's copy was loaded (at every attach); a place for
        subclasses to rebuild what they derive from synced data."""

    def disconnect(self, reason: str = "") -> None:
        """Close this session (server-initiated): Core.Goodbye first for a GMCP client."""
        if self.sessionhandler is not None:
            self.oob.goodbye(reason)
            self.sessionhandler.disconnect(self, reason)

    def data_out(self, **kwargs: Any) -> None:
        """Send output: `text="..."`, `prompt="..."`, or any OOB command `name=(args, kwargs)`."""
        if self.sessionhandler is not None:
            self.sessionhandler.data_out(self, **kwargs)

    def data_in(self, **kwargs: Any) -> None:
        """Input for this session, as `cmdname=(args, kwargs)`; runs it as a command."""
        if self.sessionhandler is not None:
            for cmdname, (args, cmd_kwargs) in kwargs.items():
                self.sessionhandler.run_input(self, cmdname, list(args), dict(cmd_kwargs))

    # ------------------------------------------------------------ game-facing helpers

    @property
    def oob(self) -> SessionOob:
        """Out-of-band data to this client (GMCP/MSDP), only what it asked for
        (`server.oob`)."""
        if self._oob is None:
            self._oob = SessionOob(self)
        return self._oob

    def msg(self, text: str | None = None, **kwargs: Any) -> None:
        """Send `text` (colour markup allowed) and/or OOB commands to this player."""
        if not kwargs and text.__class__ is str:  # the common call, in one step
            handler = self.sessionhandler
            if handler is not None:
                handler.text_out(self, text)
            return
        if text is not None:
            kwargs["text"] = text
        self.data_out(**kwargs)

    def ask(self, reply_to: str, prompt: str, *, hidden: bool = False, **data: Any) -> None:
        """Send `prompt`; the player's next line goes to the reply handler `reply_to`
        (`server.api.reply`) with `data`, not to the command parser.

        With `hidden` the client stops echoing what the player types (telnet ECHO) until
        that line arrives, and the line is never logged. The question is kept in
        `server_data`, so a reload or crash in between does not turn the answer (a
        password) into a command that would be shown back to the player.
        """
        self.server_data[ASK_KEY] = {"to": reply_to, "hidden": hidden, "data": data}
        handler = self.sessionhandler
        if hidden and handler is not None and handler.take_back_echo_on(self):
            self.data_out(prompt=prompt)  # echo is still off from the last hidden answer
        elif hidden:
            self.data_out(echo=([], {"hidden": True}), prompt=prompt)
        else:
            self.data_out(prompt=prompt)

    def update_flags(self, **flags: Any) -> None:
        self.protocol_flags.update(flags)

    def login(self, uid: int, uname: str) -> None:
        self.uid = uid
        self.uname = uname
        self.logged_in = True
        self.conn_time = time.time()
        if self.sessionhandler is not None:
            self.sessionhandler.notify_login(self)

    def mark_dirty(self) -> None:
        if not self.dirty:
            self.dirty = True
            if self.sessionhandler is not None:
                self.sessionhandler.note_dirty(self)

    def __repr__(self) -> str:
        who = self.uname if self.logged_in else "(not logged in)"
        return f"<ServerSession {self.sessid} {self.protocol_key} {who}>"
