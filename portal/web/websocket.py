"""A websocket's input, parsed in bounded slices: telnet's input budget for the web door.

Sans-I/O. The `websockets` library's `ServerProtocol` parses every byte it is given at
once, and answers every PING as it goes: a client streaming empty frames (6 bytes each,
masked) hands it some 40,000 frames per socket read. So bytes are not given to it as they
come: `receive_data()` keeps them, and each `receive_more()` feeds it at most `max_bytes`
bytes, in pieces no larger than the frames still allowed could fill (6 bytes each, up to
`PIECE`, at least `MIN_PIECE`), and stops once `max_frames` frames (control frames and
empty continuation frames count like any other) came out. The shell calls `receive_more()`
once per loop turn while `backlog` is not empty, with reading from the socket paused, and
charges the time each slice took to the connection (`portal.guard.WorkBudget`).

Two counts close the connection instead of costing anything more:

- a message in more than `MAX_FRAGMENTS` frames (empty non-final continuation frames
  would otherwise never end a message nor grow its size): 1009;
- PINGs faster than `PINGS_PER_SECOND` after a burst of `PING_BURST` (a browser never
  sends one; other clients a few a minute): 1008.

`receive_more()` returns the messages (`str` for TEXT, `bytes` for BINARY) whole; after
it, write `protocol.data_to_send()` and look at `protocol.close_rcvd` and
`protocol.state`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Final

from websockets.frames import CloseCode, Frame, Opcode
from websockets.server import ServerProtocol

from portal.guard import TokenBucket

PIECE: Final = 2048  # bytes fed to the parser at a time (at most ~340 empty frames) ...
MIN_PIECE: Final = 64  # ... and no fewer, near the end of a slice (~10 frames)
MAX_FRAGMENTS: Final = 64  # frames in one message
# A frame costs the portal about what 8 telnet steps do (some 3 µs in `websockets`' parser,
# as much again for its message), so a websocket's slice is `read_max_steps // 8` frames:
# 512 tiny frames took a 3.3 ms loop turn, where a telnet slice takes under 1 ms.
FRAME_STEPS: Final = 8
PINGS_PER_SECOND: Final = 2.0
PING_BURST: Final = 20

Message = str | bytes


class WebsocketInput:
    """The budgeted input side of one open websocket (`protocol`)."""

    def __init__(self, protocol: ServerProtocol, *, max_bytes: int, max_frames: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.protocol = protocol
        self.max_bytes = max_bytes
        self.max_frames = max_frames
        self.frames_seen = 0  # frames parsed in the last `receive_more()`
        self._clock = clock
        self._in = b""
        self._pos = 0
        self._fragments: list[bytes] = []
        self._opcode = Opcode.TEXT
        self._pings = TokenBucket.full(PINGS_PER_SECOND, PING_BURST, clock())
        self._eof = False

    @property
    def backlog(self) -> int:
        """Bytes received and not parsed yet: call `receive_more()` on a later turn."""
        return len(self._in) - self._pos

    def receive_data(self, data: bytes) -> None:
        """Keep bytes from the wire; nothing is parsed until `receive_more()`."""
        if self._eof or not data:
            return
        if self._pos < len(self._in):
            self._in = self._in[self._pos:] + data
        else:
            self._in = bytes(data)
        self._pos = 0

    def receive_eof(self) -> None:
        """The client closed its side: what is still unparsed is dropped."""
        self._in, self._pos, self._eof = b"", 0, True
        self.protocol.receive_eof()

    def receive_more(self) -> list[Message]:
        """Parse one slice of the backlog; the whole messages it completed."""
        messages: list[Message] = []
        self.frames_seen = 0
        fed = 0
        protocol = self.protocol
        while self.backlog and fed < self.max_bytes and self.frames_seen < self.max_frames:
            # a frame is at least 6 bytes: a piece this size cannot pass max_frames by much
            size = max(MIN_PIECE, min(PIECE, (self.max_frames - self.frames_seen) * 6))
            if self._pos == 0 and len(self._in) <= size:
                piece = self._in  # the common case: one small read, no copy
            else:
                piece = self._in[self._pos:self._pos + size]
            self._pos += len(piece)
            fed += len(piece)
            protocol.receive_data(piece)
            for event in protocol.events_received():
                if isinstance(event, Frame):
                    self.frames_seen += 1
                    self._frame(event, messages)
            if protocol.close_expected():
                self._in, self._pos = b"", 0
                break
        if self._pos >= len(self._in):
            self._in, self._pos = b"", 0
        return messages

    def _frame(self, frame: Frame, messages: list[Message]) -> None:
        if frame.opcode is Opcode.PING:
            if not self._pings.take(self._clock()):
                self._fail(CloseCode.POLICY_VIOLATION, "too many pings")
            return
        if frame.opcode not in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
            return
        if frame.opcode is not Opcode.CONT:
            self._opcode = frame.opcode
            self._fragments = []
        self._fragments.append(bytes(frame.data))
        if len(self._fragments) > MAX_FRAGMENTS:
            self._fail(CloseCode.MESSAGE_TOO_BIG, f"more than {MAX_FRAGMENTS} fragments")
            return
        if frame.fin:
            fragments, self._fragments = self._fragments, []
            data = fragments[0] if len(fragments) == 1 else b"".join(fragments)
            if self._opcode is Opcode.BINARY:
                messages.append(data)
                return
            with contextlib.suppress(UnicodeDecodeError):  # websockets checked it is UTF-8
                messages.append(data.decode("utf-8"))

    def _fail(self, code: CloseCode, reason: str) -> None:
        self._fragments = []
        if self.protocol.close_sent is None:
            self.protocol.fail(code, reason)
