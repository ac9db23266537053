"""The sans-I/O frame codec: framing, limits, hostile bytes, splitting."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipc.codec import FrameDecoder, FrameEncoder, FrameTooLarge, split_frame
from ipc.frames import (
    Ack,
    DataIn,
    DataOut,
    GameFrame,
    Hello,
    InputItem,
    OutputItem,
    PSync,
    SessionData,
)

FRAMES = [
    Hello(role="server", pid=42, secret="s"),
    DataIn(items=[InputItem(1, 7, "text", ["look"], {}), InputItem(2, 7, "text", ["x"], {})]),
    DataOut(items=[OutputItem(7, "text", ["You see a hall."], {"type": "look"})]),
    PSync(mode="reload", run_id="r1", sessions=[SessionData(
        sessid=7, protocol_key="telnet", address="127.0.0.1",
        protocol_flags={"SCREENWIDTH": {0: 80}}, server_data={"hp": 3})]),
    Ack(seqs=[1, 2]),
]


def encoded() -> bytes:
    encoder = FrameEncoder()
    return b"".join(encoder.encode(frame) for frame in FRAMES)


def test_round_trip_at_every_split_point() -> None:
    data = encoded()
    for cut in range(len(data) + 1):
        decoder: FrameDecoder[GameFrame] = FrameDecoder(GameFrame)
        decoder.receive_data(data[:cut])
        frames = decoder.frames_received()
        decoder.receive_data(data[cut:])
        frames += decoder.frames_received()
        assert frames == FRAMES
        assert decoder.buffered() == 0 and not decoder.errors


def test_malformed_and_unknown_frames_are_skipped_with_a_reason() -> None:
    decoder: FrameDecoder[GameFrame] = FrameDecoder(GameFrame)
    junk = b"\xc1"
    unknown = msgspec.msgpack.encode({"type": "Teleport"})
    stream = b"".join(len(b).to_bytes(4, "big") + b for b in (junk, unknown))
    decoder.receive_data(stream + FrameEncoder().encode(FRAMES[0]))
    assert decoder.frames_received() == [FRAMES[0]]
    assert len(decoder.errors) == 2 and "Teleport" in decoder.errors[1]
    assert decoder.fatal is None


def test_an_oversized_length_is_fatal_and_frees_the_buffer() -> None:
    decoder: FrameDecoder[GameFrame] = FrameDecoder(GameFrame, max_frame=1000)
    decoder.receive_data((5000).to_bytes(4, "big") + b"x" * 100)
    assert decoder.fatal is not None and "over the limit" in decoder.fatal
    decoder.receive_data(b"more")
    assert decoder.buffered() == 0 and decoder.frames_received() == []


def test_large_output_is_split_not_fatal() -> None:
    encoder = FrameEncoder(max_frame=1000)
    frame = DataOut(items=[OutputItem(1, "text", ["x" * 5000], {})])
    decoder: FrameDecoder[GameFrame] = FrameDecoder(GameFrame, max_frame=1000)
    decoder.receive_data(encoder.encode(frame))
    parts = decoder.frames_received()
    assert len(parts) > 1
    assert "".join(p.items[0].args[0] for p in parts if isinstance(p, DataOut)) == "x" * 5000


def test_a_frame_that_cannot_be_split_raises() -> None:
    with pytest.raises(FrameTooLarge):
        split_frame(Hello(role="x" * 10, pid=1))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), st.integers(min_value=1, max_value=64))
def test_arbitrary_bytes_never_raise(data: bytes, chunk: int) -> None:
    decoder: FrameDecoder[GameFrame] = FrameDecoder(GameFrame, max_frame=4096)
    for start in range(0, len(data), chunk):
        decoder.receive_data(data[start : start + chunk])
        decoder.frames_received()
    assert decoder.buffered() <= 4096 + 4


@pytest.mark.parametrize("poison", [1 << 64, -(1 << 63) - 1, "\ud800", {"k": ["\udfff"]}])
def test_failed_encode_leaves_the_buffer_as_it_was(poison: object) -> None:
    """Issue 9: a frame that cannot be encoded must not leave half a frame behind it."""
    encoder = FrameEncoder()
    buf = bytearray()
    encoder.encode_into(FRAMES[1], buf)
    before = bytes(buf)
    bad = DataIn(items=[InputItem(3, 7, "ping", [poison], {})])
    with pytest.raises((OverflowError, UnicodeEncodeError, TypeError, ValueError)):
        encoder.encode_into(bad, buf)
    assert bytes(buf) == before
    encoder.encode_into(FRAMES[4], buf)
    decoder: FrameDecoder[GameFrame] = FrameDecoder(GameFrame)
    decoder.receive_data(bytes(buf))
    assert decoder.frames_received() == [FRAMES[1], FRAMES[4]]
    assert decoder.fatal is None and not decoder.errors


def test_unsplittable_frame_leaves_the_buffer_as_it_was() -> None:
    encoder = FrameEncoder(max_frame=64)
    buf = bytearray(b"head")
    items = [OutputItem(1, "text", ["x" * 20], {}), OutputItem(2, "beep", [b"y" * 100], {})]
    with pytest.raises(FrameTooLarge):
        encoder.encode_into(DataOut(items=items), buf)
    assert bytes(buf) == b"head"
