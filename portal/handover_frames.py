"""What one portal hands the next in a live hand-over (`run.py reload-portal`).

Theory of operation
-------------------
The new portal listens on a private SOCK_SEQPACKET Unix socket in the runtime folder
(0600); the old one dials it. A seqpacket socket keeps message boundaries, so each frame
is one message, and plain telnet connections' descriptors travel in the same message as
their `SessionMove`s (SCM_RIGHTS): a `SessionBatch` carries as many as fit in one message
(at most MAX_FDS descriptors, MAX_MESSAGE bytes). In order:

    old -> new   MoveHello(version)
    old -> new   SessionBatch (connections with their descriptors, in order) ...
    old -> new   WebBatch (web sessions: no descriptor, their pages reconnect) ...
    old -> new   MoveDone(run_id, next_sessid, next_seq, next_mode, sessions, web)
    new -> old   Taken(ok, message)       the new portal holds every connection now
    old -> new   LetGo()                  the old portal closed its ipc listener
    new -> old   Bound(ok, message)       the new portal listens on portal.sock

Anything else, or the socket closing before `Bound`, means the hand-over failed: the old
portal still holds every descriptor and goes on serving. Every frame is a tagged msgspec
Struct; new fields get defaults (a newer portal may take over from an older one, which
sends one `SessionMove` per message, version 1, and no `WebBatch` before version 3).

A web session's connection cannot move (a websocket's or a poll's TCP stream belongs to
the page), but its session can: the old portal sends each live one's state (`WebRecord`),
then tells its page to reconnect and closes the connection; the new portal holds it
detached, logged in, with its unread output, until the page comes back (by its secret,
or its csessid from its own address, as after a refresh) or `web_linger` ends it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import msgspec

from ipc.frames import InputItem, Mode, SessionData

MOVE_VERSION = 3  # 3: web sessions move (WebBatch)
# A session bigger than one message (huge server_data) is not moved.
MAX_MESSAGE = 160 * 1024  # under the default socket buffer (net.core.wmem_max)
MAX_FDS = 250  # descriptors per message (the kernel's SCM_MAX_FD is 253)
BATCH_ENVELOPE = 64  # bytes a SessionBatch adds around its moves (tag, key, list header)


class TelnetState(msgspec.Struct, kw_only=True):
    """A `TelnetProtocol`'s whole state (see its `snapshot()`); plain values only."""

    flags: dict[Any, Any]
    reported: dict[Any, Any]
    settled: bool
    us: dict[int, tuple[int, bool]]  # option -> (RFC 1143 state, queue bit), our side
    him: dict[int, tuple[int, bool]]  # the client's side
    refused: list[tuple[bool, int]] = msgspec.field(default_factory=list)
    want_echo: bool = False
    initiated: bool = True
    pending: list[str] = msgspec.field(default_factory=list)
    ttype_names: list[str] = msgspec.field(default_factory=list)
    ttype_waiting: bool = False
    charset_waiting: bool = False
    mccp: bool = False  # compressing when the snapshot ended the stream: start it again
    parse_state: int = 0
    neg_cmd: int = 0
    line: bytes = b""  # the partial input line
    discarded: int = 0
    after_cr: bool = False
    sb_opt: int = 0
    sb: bytes = b""
    sb_overflow: bool = False
    backlog: bytes = b""  # received, not parsed yet (over the parser's budget)
    line_started: float | None = None  # CLOCK_MONOTONIC, the same in every process
    mssp_sent: int = 0
    mccp_starts: int = 0


class MoveFrame(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Base of every hand-over frame; the tag is the class name."""


class MoveHello(MoveFrame, frozen=True):
    version: int = MOVE_VERSION
    pid: int = 0


class SessionMove(MoveFrame, frozen=True):
    """One telnet connection; its descriptor rides in the same message.

    `session` is its synced data (sessid 0 while negotiation had not settled), `input`
    its held input with the link's sequence numbers, `early` the input typed before it
    was announced, `delayed` the input its rate limit held back, `announced` whether the
    server knows it.
    """

    protocol_key: str
    session: SessionData
    telnet: TelnetState
    input: list[InputItem] = msgspec.field(default_factory=list)
    early: list[tuple[str, list[Any], dict[str, Any]]] = msgspec.field(default_factory=list)
    announced: bool = False
    # input the rate limit held back (after `input`; it goes through the new guard again)
    delayed: list[tuple[str, list[Any], dict[str, Any]]] = msgspec.field(default_factory=list)


class SessionBatch(MoveFrame, frozen=True):
    """Several connections; their descriptors ride in the same message, in this order."""

    moves: list[SessionMove]


class WebRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One web session (websocket or ajax) without its connection.

    `wire` names its wire format (`portal.web.wire.FORMATS`), `bound` says its csessid is
    a header's secret; `waiting` is the output its page has not read yet, encoded for
    that format (`pack_messages`: (text?, bytes) each, as a websocket has text and binary
    messages); `input`, `delayed` and `announced` as in `SessionMove`.
    """

    protocol_key: str
    session: SessionData
    csessid: str
    cuid: str
    bound: bool = False
    wire: str = "v1.evennia.com"
    waiting: list[tuple[bool, bytes]] = msgspec.field(default_factory=list)
    input: list[InputItem] = msgspec.field(default_factory=list)
    delayed: list[tuple[str, list[Any], dict[str, Any]]] = msgspec.field(default_factory=list)
    announced: bool = False


class WebBatch(MoveFrame, frozen=True):
    """Several web sessions (no descriptors)."""

    records: list[WebRecord]


class MoveDone(MoveFrame, frozen=True):
    """The link's counters, so nothing is renumbered; `sessions` connections and `web`
    web sessions moved in all."""

    run_id: str
    next_sessid: int
    next_seq: int
    next_mode: Mode
    sessions: int
    web: int = 0


class Taken(MoveFrame, frozen=True):
    ok: bool
    message: str = ""


class LetGo(MoveFrame, frozen=True):
    pass


class Bound(MoveFrame, frozen=True):
    ok: bool
    message: str = ""


Move = MoveHello | SessionMove | SessionBatch | WebBatch | MoveDone | Taken | LetGo | Bound

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Move)


def encode_move(frame: Move) -> bytes:
    return _encoder.encode(frame)


def decode_move(data: bytes) -> Move:
    """Decode one message; msgspec.DecodeError (a ValueError) on anything else."""
    frame: Move = _decoder.decode(data)
    return frame


def descriptors_of(frame: Move) -> int:
    """How many descriptors must come with `frame`."""
    if isinstance(frame, SessionMove):
        return 1
    if isinstance(frame, SessionBatch):
        return len(frame.moves)
    return 0


def batches(moves: Sequence[tuple[SessionMove, int]]) -> Iterator[tuple[SessionBatch, list[int]]]:
    """`moves` grouped into batches of at most MAX_FDS sessions and MAX_MESSAGE bytes, in
    order. ValueError for a session too big to move."""
    group: list[SessionMove] = []
    fds: list[int] = []
    size = BATCH_ENVELOPE
    for move, fd in moves:
        length = len(encode_move(move))
        if length + BATCH_ENVELOPE > MAX_MESSAGE:
            raise ValueError(f"session {move.session.sessid}: {length} bytes is too big to move")
        if group and (len(group) >= MAX_FDS or size + length > MAX_MESSAGE):
            yield SessionBatch(moves=group), fds
            group, fds, size = [], [], BATCH_ENVELOPE
        group.append(move)
        fds.append(fd)
        size += length
    if group:
        yield SessionBatch(moves=group), fds


def pack_messages(messages: Iterable[str | bytes]) -> list[tuple[bool, bytes]]:
    """Websocket or ajax messages for `WebRecord.waiting` (text keeps its kind)."""
    return [(True, m.encode("utf-8")) if isinstance(m, str) else (False, m) for m in messages]


def unpack_messages(packed: Iterable[tuple[bool, bytes]]) -> list[str | bytes]:
    return [data.decode("utf-8", "replace") if text else data for text, data in packed]


def record_size(record: WebRecord) -> int:
    """Bytes `record` takes in a `WebBatch`."""
    return len(_encoder.encode(record))


def fits(record: WebRecord) -> bool:
    """Whether `record` can travel (alone) in one message."""
    return record_size(record) + BATCH_ENVELOPE <= MAX_MESSAGE


def web_batches(records: Sequence[WebRecord]) -> Iterator[WebBatch]:
    """`records` grouped into batches of at most MAX_MESSAGE bytes, in order. ValueError
    for a record too big to move (`fits` says so beforehand)."""
    group: list[WebRecord] = []
    size = BATCH_ENVELOPE
    for record in records:
        length = record_size(record)
        if length + BATCH_ENVELOPE > MAX_MESSAGE:
            raise ValueError(f"web session {record.session.sessid}: {length} bytes is too big "
                             "to move")
        if group and size + length > MAX_MESSAGE:
            yield WebBatch(records=group)
            group, size = [], BATCH_ENVELOPE
        group.append(record)
        size += length
    if group:
        yield WebBatch(records=group)


# ---------------------------------------------------------------- the channel (blocking)
# The old portal runs these in a worker thread (`asyncio.to_thread`): a seqpacket socket
# with descriptors has no asyncio API, and the loop must go on heartbeating meanwhile. The
# new portal reads the connections on its loop (portal/move/takeover.MoveReceiver, non-blocking)
# and the short exchange after them in a worker thread.


def listen_channel(path: str) -> socket.socket:
    """The new portal's end: a private seqpacket socket at `path` (0600)."""
    if os.path.lexists(path):
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    old = os.umask(0o177)
    try:
        sock.bind(path)
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(1)
    return sock


def dial_channel(path: str, timeout: float) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sock.settimeout(timeout)
    sock.connect(path)
    return sock


def send_move(sock: socket.socket, frame: Move, fds: Sequence[int] = ()) -> None:
    """Send one frame (and the descriptors it names) as one message."""
    data = encode_move(frame)
    if len(data) > MAX_MESSAGE:
        raise ValueError(f"{type(frame).__name__} of {len(data)} bytes is too big to move")
    if len(fds) != descriptors_of(frame) or len(fds) > MAX_FDS:
        raise ValueError(f"{type(frame).__name__} with {len(fds)} descriptors")
    if fds:
        socket.send_fds(sock, [data], list(fds))
    else:
        sock.send(data)


def receive_move(sock: socket.socket) -> tuple[Move, list[int]]:
    """One frame and the descriptors that came with it. ConnectionError when the peer
    closed; ValueError for anything undecodable, truncated, or with a number of
    descriptors the frame does not name (every descriptor received is closed then)."""
    data, fds, flags, _ = socket.recv_fds(sock, MAX_MESSAGE + 1, MAX_FDS + 1)
    try:
        if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
            raise ValueError("a hand-over message was truncated")
        if not data:
            raise ConnectionError("the other portal closed the hand-over channel")
        frame = decode_move(data)
        if len(fds) != descriptors_of(frame):
            raise ValueError(f"{type(frame).__name__} came with {len(fds)} descriptors")
    except (ValueError, ConnectionError):
        for fd in fds:
            os.close(fd)
        raise
    return frame, fds
