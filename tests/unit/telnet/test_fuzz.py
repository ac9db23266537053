"""Property tests: the telnet parser survives any bytes, in any split, with bounded buffers."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import example, given, settings
from hypothesis import strategies as st

from portal.telnet import (
    CHARSET,
    DO,
    DONT,
    GMCP,
    IAC,
    MCCP2,
    MSDP,
    NAWS,
    SB,
    SE,
    TTYPE,
    WILL,
    WONT,
    LineReceived,
    ProtocolError,
    TelnetEvent,
    TelnetProtocol,
)

MAX_LINE = 32
MAX_SUBNEG = 48

# Pieces that drive the parser into its deeper states far more often than random bytes.
TOKENS = st.sampled_from(
    [
        bytes((IAC,)),
        bytes((IAC, IAC)),
        bytes((IAC, SB)),
        bytes((IAC, SE)),
        bytes((IAC, WILL)),
        bytes((IAC, DO)),
        bytes((IAC, WONT)),
        bytes((IAC, DONT)),
        bytes((NAWS,)),
        bytes((TTYPE,)),
        bytes((GMCP,)),
        bytes((MSDP,)),
        bytes((MCCP2,)),
        bytes((CHARSET,)),
        bytes(range(7)),
        b"\r",
        b"\n",
        b"\r\x00",
        b"\x00",
        b"MTTS 137",
        b"Core.Hello {}",
        b"x" * 40,
        b"\xc3",
    ]
)
STREAMS = st.one_of(
    st.binary(max_size=600),
    st.lists(st.one_of(TOKENS, st.binary(max_size=8)), max_size=80).map(b"".join),
)


def new_protocol() -> TelnetProtocol:
    proto = TelnetProtocol(max_line=MAX_LINE, max_subneg=MAX_SUBNEG)
    proto.initiate()
    proto.data_to_send()
    return proto


def assert_healthy(proto: TelnetProtocol, events: list[TelnetEvent]) -> None:
    assert len(proto._line) <= MAX_LINE
    assert len(proto._sb) <= MAX_SUBNEG
    assert len(proto._ttype_names) <= 3
    assert len(proto._us) <= 256 and len(proto._him) <= 256
    for event in events:
        if isinstance(event, ProtocolError):
            assert not event.reason.startswith("internal"), event.reason


def feed(data: bytes, cuts: list[int]) -> tuple[list[TelnetEvent], bytes]:
    proto = new_protocol()
    events: list[TelnetEvent] = []
    out = b""
    bounds = [0, *sorted(set(cuts)), len(data)]
    for start, stop in pairwise(bounds):
        proto.receive_data(data[start:stop])
        events += proto.events_received()
        assert_healthy(proto, events)
        out += proto.data_to_send()
    proto.send_text("bye\n", prompt=True)
    proto.send_oob("ping", [1], {"a": 2})
    proto.receive_eof()
    proto.close()
    events += proto.events_received()
    out += proto.data_to_send()
    assert_healthy(proto, events)
    return events, out


@settings(max_examples=400, deadline=None)
@given(STREAMS)
def test_any_bytes_never_raise(data: bytes) -> None:
    feed(data, [])


@settings(max_examples=300, deadline=None)
@given(STREAMS, st.lists(st.integers(min_value=0, max_value=600), max_size=10))
def test_split_points_do_not_change_events(data: bytes, cuts: list[int]) -> None:
    cuts = [c for c in cuts if c < len(data)]
    assert feed(data, cuts)[0] == feed(data, [])[0]


@settings(max_examples=200, deadline=None)
@given(st.lists(STREAMS, max_size=5))
def test_parser_recovers_after_garbage(garbage: list[bytes]) -> None:
    proto = new_protocol()
    for chunk in garbage:
        proto.receive_data(chunk)
    # "x IAC SE" ends any half-read command or subnegotiation (x may be its option byte),
    # CR LF ends any partial line; after that a clean line must get through.
    proto.receive_data(b"x" + bytes((IAC, SE)) + b"\r\nhello\r\n")
    events = proto.events_received()
    assert_healthy(proto, events)
    assert events[-1] == LineReceived("hello")


ENCODINGS = st.sampled_from(["utf-8", "latin-1", "cp1252", "cp437", "koi8-r", "shift_jis",
                             "big5", "mac-roman", "iso8859-7", "ascii", "iso2022_jp"])


@settings(max_examples=300, deadline=None)
@given(ENCODINGS, st.text(st.characters(blacklist_categories=["Cs"]), max_size=40))
@example("iso2022_jp", "亜 a kanji")  # (all ASCII bytes on the wire)
def test_text_in_any_encoding_reads_and_writes_as_the_codec_says(encoding: str,
                                                                  text: str) -> None:
    """What the player gets, and what the game gets from a line, is exactly what the
    codec makes of it, on the one-read path and on the parser's. (Issue 24 tried decoding
    ASCII bytes as ASCII whatever the ENCODING: ISO-2022-JP writes Japanese in ASCII
    bytes, `ESC $ B 0 ! ESC ( B` is one kanji, and that shortcut made it ASCII noise.)"""
    text = text.replace("\r", "").replace("\n", "")
    proto = new_protocol()
    proto.update_flags({"ENCODING": encoding})
    proto.data_to_send()
    proto.send_text(text, False, True)
    wanted = text.encode(encoding, "replace").replace(bytes((IAC,)), bytes((IAC, IAC)))
    assert proto.data_to_send() == wanted + b"\r\n"
    raw = text.encode(encoding, "replace")
    if bytes((IAC,)) in raw or b"\x00" in raw or not raw.strip(b" "):
        return  # (telnet commands and NULs are the parser's other tests)
    try:
        read = raw.decode(encoding)
    except UnicodeDecodeError:
        return
    whole = [e.text for e in proto_lines(encoding, [raw + b"\r\n"])]
    split = [e.text for e in proto_lines(encoding, [raw[:1], raw[1:] + b"\r\n"])]
    assert whole == split == [read]


def proto_lines(encoding: str, chunks: list[bytes]) -> list[LineReceived]:
    proto = TelnetProtocol()  # (lines up to 4 KB: the text is 40 characters at most)
    proto.initiate()
    proto.update_flags({"ENCODING": encoding})
    proto.settle()
    proto.receive_data(b"x\r\n")  # (the flags are reported: from here a line is plain)
    proto.events_received()
    for chunk in chunks:
        proto.receive_data(chunk)
    return [e for e in proto.events_received() if isinstance(e, LineReceived)]
