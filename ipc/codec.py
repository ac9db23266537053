"""Sans-I/O framing: bytes in, frames out; frames in, bytes out.

Each frame on the wire is a 4-byte big-endian length followed by that many bytes of
MessagePack. `FrameDecoder.receive_data(bytes)` then `frames_received()` gives the decoded
frames; nothing here touches a socket or raises on hostile bytes. A frame whose body does
not decode as the expected union is reported in `errors` and skipped (the length prefix
keeps the stream in step); a length over the limit makes the stream unusable (`fatal`).
"""

from __future__ import annotations

import struct
from typing import Any, Generic, TypeVar

import msgspec

from ipc.frames import DataIn, DataOut, Frame, OutputItem, SSync

DEFAULT_MAX_FRAME = 1 << 20  # 1 MiB
PREFIX = 4
_SCRATCH_KEEP = 1 << 16
_LENGTH = struct.Struct(">I")  # the length prefix

F = TypeVar("F")


class FrameTooLarge(ValueError):
    """An outgoing frame does not fit under the size limit, even split."""


class FrameDecoder(Generic[F]):
    """Turns a byte stream into frames of the union type `frame_type`."""

    def __init__(self, frame_type: Any, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self._decoder: msgspec.msgpack.Decoder[F] = msgspec.msgpack.Decoder(frame_type)
        self._max_frame = max_frame
        self._buffer = bytearray()
        self._frames: list[F] = []
        self.errors: list[str] = []
        self.fatal: str | None = None

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the wire; then read `frames_received()` and `errors`."""
        if self.fatal is not None:
            return
        buf = self._buffer
        if not buf:
            # The common case: nothing left over from the last read. Decode straight from
            # `data` and keep only an incomplete tail, instead of copying every read.
            with memoryview(data) as view:
                pos = self._decode_frames(view)
                if 0 <= pos < len(view):
                    buf += view[pos:]
            return
        buf += data
        with memoryview(buf) as view:
            pos = self._decode_frames(view)
        if pos < 0:
            buf.clear()
        elif pos:
            del buf[:pos]

    def _decode_frames(self, view: memoryview) -> int:
        """Decode the complete frames in `view`; where the rest starts, or -1 when fatal."""
        unpack, decode = _LENGTH.unpack_from, self._decoder.decode
        frames, limit = self._frames, self._max_frame
        pos, end = 0, len(view)
        while end - pos >= PREFIX:
            (size,) = unpack(view, pos)
            if size > limit:
                self.fatal = f"frame of {size} bytes is over the limit of {limit}"
                return -1
            start = pos + PREFIX
            stop = start + size
            if stop > end:
                break
            try:
                frames.append(decode(view[start:stop]))
            except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
                self.errors.append(f"malformed frame skipped: {exc}")
            pos = stop
        return pos

    def frames_received(self) -> list[F]:
        """Drain the frames decoded so far."""
        frames, self._frames = self._frames, []
        return frames

    def buffered(self) -> int:
        return len(self._buffer)


class FrameEncoder:
    """Appends length-prefixed frames to a caller's buffer, splitting what is too large."""

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self._encoder = msgspec.msgpack.Encoder()
        self._max_frame = max_frame
        self._scratch = bytearray()  # each frame is encoded here first, then appended

    def encode(self, frame: Frame) -> bytes:
        buf = bytearray()
        self.encode_into(frame, buf)
        return bytes(buf)

    def encode_into(self, frame: Frame, buf: bytearray) -> None:
        """Append `frame` (split into several when over the limit) to `buf`.

        All or nothing: when the frame cannot be encoded (msgspec raises, e.g. on an int
        past 64 bits or a lone surrogate; or FrameTooLarge) `buf` is left exactly as it
        was, so the frames already in it still reach the peer whole."""
        scratch = self._scratch
        self._encoder.encode_into(frame, scratch, PREFIX)  # raises before `buf` is touched
        size = len(scratch) - PREFIX
        if size <= self._max_frame:
            _LENGTH.pack_into(scratch, 0, size)
            buf += scratch
        else:
            parts = bytearray()
            for part in split_frame(frame):
                self.encode_into(part, parts)
            buf += parts
        if len(scratch) > _SCRATCH_KEEP:
            self._scratch = bytearray()  # do not hold on to one huge frame's memory


def split_frame(frame: Frame) -> list[Frame]:
    """Halve a batch frame (data, or a server's session push), or cut a long text in two."""
    if isinstance(frame, DataOut | DataIn) and len(frame.items) > 1:
        half = len(frame.items) // 2
        kind = type(frame)
        return [kind(items=frame.items[:half]), kind(items=frame.items[half:])]  # type: ignore[arg-type]
    if isinstance(frame, SSync) and len(frame.sessions) > 1:
        # Each session's fields replace the portal's copy: two halves do what the whole did.
        half = len(frame.sessions) // 2
        return [SSync(sessions=frame.sessions[:half]), SSync(sessions=frame.sessions[half:])]
    if isinstance(frame, DataOut) and frame.items and _long_text(frame.items[0]):
        item = frame.items[0]
        text: str = item.args[0]
        half = len(text) // 2
        return [
            DataOut(items=[OutputItem(item.sessid, item.cmdname, [text[:half]], item.kwargs)]),
            DataOut(items=[OutputItem(item.sessid, item.cmdname, [text[half:]], item.kwargs)]),
        ]
    raise FrameTooLarge(f"{type(frame).__name__} frame is over the size limit and cannot be split")


def _long_text(item: OutputItem) -> bool:
    return len(item.args) == 1 and isinstance(item.args[0], str) and len(item.args[0]) > 1
