"""Property tests of the whole portal input path (issue 9): telnet bytes -> TelnetProtocol
-> the edge checks (portal/guard.py) -> frames on the link (ipc/codec.py).

Whatever the bytes: every input the edge lets through encodes as a frame, the encoder
never leaves a partial frame in its buffer (even for input that skipped the edge), and
the buffer always decodes to exactly the frames that were sent.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ipc.codec import FrameDecoder, FrameEncoder
from ipc.frames import DataIn, GameFrame, InputItem, PConnSync
from portal.guard import Unframeable, screen_input
from portal.telnet import (
    DO,
    GMCP,
    IAC,
    MSDP,
    SB,
    SE,
    FlagsChanged,
    LineReceived,
    OobReceived,
    TelnetProtocol,
)


def sb(option: int, payload: bytes) -> bytes:
    return bytes((IAC, SB, option)) + payload.replace(b"\xff", b"\xff\xff") + bytes((IAC, SE))


GMCP_BODIES = st.sampled_from([
    b"Core.Ping 18446744073709551616",
    b"Core.Ping -9223372036854775809",
    b'Core.Ping "\\ud800"',
    b'Core.Ping {"\\udfff": 1}',
    b"Core.Ping " + b"[" * 60 + b"]" * 60,
    b"Core.Ping " + b"[" * 2000,
    b'Char.Echo {"a": [1, 2.5, null, true, "\\u001b[2J"]}',
    b"Core.Ping 1e400",
    b"\x1b[31mCore.Ping",
    b"Core.Hello {}",
])
MSDP_BODIES = st.sampled_from([
    b"\x01REPORT\x02HEALTH",
    b"\x01X\x02" + b"\x03\x01k\x02" * 40,
    b"\x01LIST\x02\x05\x02a\x02\x1b[2J\x06",
])
TEXT = st.sampled_from([
    b"say hi\r\n", b"\x1b]52;c;ZXZpbA==\x07\r\n", b"|/forged\n", b"\xc2\x9b31m\r\n",
    b"\xed\xa0\x80\r\n", b"\xff\xff\r\n", b"\x00\x00\n", b"x" * 50 + b"\n",
    bytes((IAC, DO, 3, IAC, 254, 3)), bytes((IAC, SB, 99, IAC, SE)), b"\r\x00",
])
STREAMS = st.lists(
    st.one_of(GMCP_BODIES.map(lambda b: sb(GMCP, b)), MSDP_BODIES.map(lambda b: sb(MSDP, b)),
              TEXT, st.binary(max_size=24)),
    max_size=40,
).map(b"".join)
ENCODINGS = st.sampled_from(["utf-8", "latin-1", "cp437", "hex", "idna", "unicode_escape",
                             "raw_unicode_escape", "undefined", "utf-16", 7])


class Link:
    """The portal's side of the link: one encoder, one buffer, the frames sent into it."""

    def __init__(self) -> None:
        self.encoder = FrameEncoder(max_frame=4096)
        self.buffer = bytearray()
        self.sent: list[Any] = []
        self.seq = 0

    def send(self, frame: Any) -> bool:
        before = bytes(self.buffer)
        try:
            self.encoder.encode_into(frame, self.buffer)
        except Exception:
            assert bytes(self.buffer) == before, "a failed encode changed the buffer"
            return False
        self.sent.append(frame)
        return True

    def item(self, cmdname: str, args: list[Any], kwargs: dict[str, Any]) -> DataIn:
        self.seq += 1
        return DataIn(items=[InputItem(self.seq, 1, cmdname, args, kwargs)])

    def check(self) -> None:
        decoder: FrameDecoder[GameFrame] = FrameDecoder(GameFrame, max_frame=4096)
        decoder.receive_data(bytes(self.buffer))
        assert decoder.fatal is None and not decoder.errors, (decoder.fatal, decoder.errors)
        assert decoder.buffered() == 0, "a partial frame was left in the buffer"
        assert decoder.frames_received() == self.sent


def drive(data: bytes, encoding: object, cut: int) -> Link:
    proto = TelnetProtocol(max_line=64, max_subneg=4096, max_bytes=16, max_steps=4)
    proto.initiate()
    proto.receive_data(bytes((IAC, DO, GMCP, IAC, DO, MSDP)))
    proto.update_flags({"ENCODING": encoding})
    link = Link()
    for chunk in (data[:cut], data[cut:]):
        proto.receive_data(chunk)
        while True:
            for event in proto.events_received():
                feed(link, event)
            if not proto.backlog:
                break
            proto.receive_more()
    proto.data_to_send()
    link.check()
    return link


def feed(link: Link, event: object) -> None:
    match event:
        case LineReceived(text=text):
            edge(link, "text", [text], {})
        case OobReceived(cmdname=cmdname, args=args, kwargs=kwargs):
            edge(link, cmdname, args, kwargs)
        case FlagsChanged(flags=flags):
            assert link.send(PConnSync(sessid=1, protocol_flags=flags))
        case _:
            pass


def edge(link: Link, cmdname: str, args: list[Any], kwargs: dict[str, Any]) -> None:
    raw_ok = link.send(link.item(cmdname, args, kwargs))  # what skipping the edge would do
    try:
        cleaned = screen_input(cmdname, args, kwargs)
    except Unframeable:
        return
    assert link.send(link.item(*cleaned)), f"the edge let through unframeable {cleaned!r}"
    assert raw_ok or cleaned != (cmdname, args, kwargs)
    for value in (cleaned[0], *[a for a in cleaned[1] if isinstance(a, str)]):
        assert "\x1b" not in value and "\x9b" not in value


@settings(max_examples=300, deadline=None)
@given(STREAMS, ENCODINGS, st.integers(min_value=0, max_value=2000))
def test_whole_input_path_never_leaves_a_partial_frame(data: bytes, encoding: object,
                                                       cut: int) -> None:
    drive(data, encoding, min(cut, len(data)))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=800), ENCODINGS)
def test_random_bytes_through_the_whole_path(data: bytes, encoding: object) -> None:
    drive(data, encoding, len(data) // 2)
