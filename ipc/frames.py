"""Every frame that crosses a Hearth socket, declared once.

Two links use these frames:

- the **game link** between the portal and a server (Evennia's AMP operation codes);
- the **control link** between the supervisor and everyone who talks to it: the CLI and
  the two children.

Every frame is a frozen, tagged msgspec Struct. New fields always get defaults, because a
freshly started server may meet a portal that has run for weeks (msgspec's schema
evolution rules). A connection opens with `Hello`; the answer is `Welcome` or `Refused`.
"""

from __future__ import annotations

from typing import Any, Final, Literal

import msgspec

PROTOCOL_VERSION = 1

# Why a server starts (PSync), or stops (StopServer, ServerStopped).
Mode = Literal["start", "reload", "reset", "crash", "shutdown"]
# What the supervisor saw of a server that ended (ServerLost).
LossReason = Literal["crash", "hang", "fatal"]
# Who is at the other end of a connection; a child process is a "portal" or a "server".
Role = Literal["server", "portal", "cli"]
ChildRole = Literal["server", "portal"]


class Frame(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Base of every frame; the tag is the class name."""


class SessionData(msgspec.Struct, kw_only=True):
    """The synced fields of one session (Evennia's SESSION_SYNC_ATTRS)."""

    sessid: int
    protocol_key: str
    address: str
    csessid: str | None = None
    uid: int | None = None
    uname: str | None = None
    logged_in: bool = False
    conn_time: float = 0.0
    cmd_last: float = 0.0
    cmd_last_visible: float = 0.0
    cmd_total: int = 0
    protocol_flags: dict[str, Any] = msgspec.field(default_factory=dict)
    server_data: dict[str, Any] = msgspec.field(default_factory=dict)


SYNCED_FIELDS: tuple[str, ...] = SessionData.__struct_fields__


def sync_data_from(session: object) -> SessionData:
    """Read every synced field off a session object, the portal's or the server's."""
    return SessionData(**{name: getattr(session, name) for name in SYNCED_FIELDS})


def load_sync_data_into(session: object, data: SessionData, fields: tuple[str, ...]) -> None:
    """Set `fields` of `data` on a session object (the one place fields are copied)."""
    for name in fields:
        setattr(session, name, getattr(data, name))


IDLE_ARGS: Final = ["idle"]  # the keep-alive's arguments (compare, never change)


def counts_as_command(cmdname: str, args: list[Any]) -> bool:
    """Whether an answered input counts in `cmd_total` and `cmd_last` (Evennia's rule:
    text, except the keep-alive "idle"); portal and server both count by this rule, the
    player path inline as `args != IDLE_ARGS` (one list compare)."""
    return cmdname == "text" and args != IDLE_ARGS


# ---------------------------------------------------------------- handshake (both links)


class Hello(Frame, frozen=True):
    """First frame of every connection: who is calling and with which secret."""

    role: str  # "server", "portal", "cli" (a wrong one is refused by name, not undecodable)
    pid: int
    version: int = PROTOCOL_VERSION
    secret: str = ""
    standby: bool = False  # a server started for a hand-over (reload / reset)


class Welcome(Frame, frozen=True):
    run_id: str = ""
    version: int = PROTOCOL_VERSION


class Refused(Frame, frozen=True):
    reason: str


class Heartbeat(Frame, frozen=True):
    sent: float


# ---------------------------------------------------------------- game link: portal -> server


class PConn(Frame, frozen=True):
    """A session opened (Evennia PCONN)."""

    session: SessionData


class PConnSync(Frame, frozen=True):
    """A session's negotiated flags changed (Evennia PCONNSYNC)."""

    sessid: int
    protocol_flags: dict[str, Any]


class PDisconn(Frame, frozen=True):
    """A client went away (Evennia PDISCONN)."""

    sessid: int
    reason: str = ""


class CommandCount(msgspec.Struct, array_like=True):
    """A session's command counters, which change with every answered command."""

    sessid: int
    cmd_total: int
    cmd_last: float
    cmd_last_visible: float


class PSync(Frame, frozen=True):
    """The portal's answer to a server's hello: every session, and why the server starts.

    `mode` is "start" (cold boot), "reload", "reset" or "crash" (the previous server died).
    Thousands of sessions do not fit one frame: they come in several PSync frames, all but
    the last with `more=True`; the server attaches when the last one arrives.

    A standby gets its sessions ahead, while the old server still serves (`presync=True`:
    it only builds them). Its attach then carries only what changed since: `sessions` that
    changed or are new, `gone` for those that closed, and every session's `counters`.
    """

    mode: Mode
    run_id: str
    sessions: list[SessionData]
    more: bool = False
    presync: bool = False
    gone: list[int] = msgspec.field(default_factory=list)
    counters: list[CommandCount] = msgspec.field(default_factory=list)


class InputItem(msgspec.Struct, array_like=True):
    """One line or command a player sent; `seq` is unique within a portal run."""

    seq: int
    sessid: int
    cmdname: str
    args: list[Any]
    kwargs: dict[str, Any]


class DataIn(Frame, frozen=True):
    items: list[InputItem]


class StopServer(Frame, frozen=True):
    """The portal asks its attached server to stop: "reload", "reset" or "shutdown"."""

    mode: Mode


class Detach(Frame, frozen=True):
    """The portal hands its players to a new portal (`reload-portal`): send what you have,
    close this link, hold your output and dial again; a portal of the same run (the new
    one, or this one if the move failed) takes the held output after the sync."""


AuthMethod = Literal["query", "password", "publickey"]


class AuthRequest(Frame, frozen=True):
    """May this SSH user in? The portal has no database: the server answers (AuthResult).

    `query` asks whether `username` names an account (then it must authenticate);
    `password` and `publickey` check a secret. `public_key` is one OpenSSH line
    ("ssh-ed25519 AAAA..."); `failures` counts the connection's failed attempts so far.
    A request the server did not answer before it went away is sent to the next one.
    """

    request_id: int
    method: AuthMethod
    username: str
    password: str = ""
    public_key: str = ""
    address: str = ""
    failures: int = 0


# ---------------------------------------------------------------- game link: server -> portal


class SyncDone(Frame, frozen=True):
    """The server rebuilt its sessions from PSync and takes input from now on."""


class SLogin(Frame, frozen=True):
    sessid: int
    uid: int
    uname: str


class SSync(Frame, frozen=True):
    """Session data changed on the server (Evennia SSYNC); fields replace the portal's copy."""

    sessions: list[SessionData]


class SDisconn(Frame, frozen=True):
    sessid: int
    reason: str = ""


class SDisconnAll(Frame, frozen=True):
    reason: str = ""


class OutputItem(msgspec.Struct, array_like=True):
    sessid: int
    cmdname: str
    args: list[Any]
    kwargs: dict[str, Any]


class DataOut(Frame, frozen=True):
    items: list[OutputItem]


class Ack(Frame, frozen=True):
    """Inputs the server has finished with; sent after the output they caused."""

    seqs: list[int]


class ServerStopped(Frame, frozen=True):
    """The server ran its stop hooks, pushed its final SSync, and is about to exit."""

    mode: Mode


class AuthResult(Frame, frozen=True):
    """The answer to AuthRequest `request_id`. For `query`, `ok` means "an account: it must
    authenticate"; otherwise `ok` means the secret was right. `uname` is the account's own
    spelling of the name."""

    request_id: int
    ok: bool
    uid: int = 0
    uname: str = ""
    message: str = ""


class AdminRequest(Frame, frozen=True):
    """An admin in the game asked for "reload", "reset", "reboot" or "shutdown"."""

    action: str
    sessid: int = 0


GameFrame = (
    Hello
    | Welcome
    | Refused
    | Heartbeat
    | PConn
    | PConnSync
    | PDisconn
    | PSync
    | DataIn
    | StopServer
    | Detach
    | AuthRequest
    | SyncDone
    | SLogin
    | SSync
    | SDisconn
    | SDisconnAll
    | DataOut
    | Ack
    | ServerStopped
    | AuthResult
    | AdminRequest
)


# ---------------------------------------------------------------- control link


class Command(Frame, frozen=True):
    """CLI -> supervisor: one of start's follow-ups: stop, reload, reset, reboot, status."""

    name: str
    args: dict[str, Any] = msgspec.field(default_factory=dict)


class Reply(Frame, frozen=True):
    ok: bool
    message: str = ""
    data: dict[str, Any] = msgspec.field(default_factory=dict)


class Progress(Frame, frozen=True):
    """A step the supervisor reports to a waiting CLI before the final Reply."""

    message: str


class Ready(Frame, frozen=True):
    """child -> supervisor: the child is ready (portal listening; server attached or standby)."""

    info: dict[str, Any] = msgspec.field(default_factory=dict)


class StartFailed(Frame, frozen=True):
    """child -> supervisor: the child could not start; `message` is its traceback."""

    message: str


class ChildStatus(Frame, frozen=True):
    """child -> supervisor, on change: figures the status command shows."""

    info: dict[str, Any]


class Handover(Frame, frozen=True):
    """supervisor -> portal: stop the attached server with `mode` and attach the standby."""

    mode: Mode
    standby_pid: int


class HandoverResult(Frame, frozen=True):
    """portal -> supervisor: how a hand-over ended."""

    ok: bool
    message: str = ""


class PortalMove(Frame, frozen=True):
    """supervisor -> old portal: a new portal is ready on the hand-over socket `path`; move
    every connection to it (portal.handover_frames). The answer is `HandoverResult`."""

    path: str


class ServerLost(Frame, frozen=True):
    """supervisor -> portal: the server process ended; `reason` is "crash", "hang" or "fatal".

    `poison_seq` names the input the server was running when it hung, so it is not
    replayed into the next server (0 when unknown).
    """

    pid: int
    reason: LossReason
    message: str = ""
    poison_seq: int = 0


class PortalRequest(Frame, frozen=True):
    """portal -> supervisor: an admin's in-game request ("reload", "reset", "reboot", ...).

    `sessid` is the admin's session, which alone hears how it went (0: nobody).
    """

    action: str
    sessid: int = 0


class Shutdown(Frame, frozen=True):
    """supervisor -> child: stop cleanly (players are told `reason`)."""

    reason: str = ""


class Announce(Frame, frozen=True):
    """supervisor -> portal: tell players something (to one session, or all when 0)."""

    text: str
    sessid: int = 0


ControlFrame = (
    Hello
    | Welcome
    | Refused
    | Heartbeat
    | Command
    | Reply
    | Progress
    | Ready
    | StartFailed
    | ChildStatus
    | Handover
    | HandoverResult
    | PortalMove
    | ServerLost
    | PortalRequest
    | Shutdown
    | Announce
)
