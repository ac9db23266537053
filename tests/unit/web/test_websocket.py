"""The budgeted websocket input (portal.web.websocket): slices bound the work per turn,
whatever frames a client streams, control frames included."""

from __future__ import annotations

from websockets.frames import CloseCode
from websockets.protocol import State
from websockets.server import ServerProtocol

from benchmarks.web_attacks import WS_PATTERNS, masked
from portal.web.websocket import MAX_FRAGMENTS, MIN_PIECE, PIECE, PING_BURST, WebsocketInput


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make(max_bytes: int = 65536, max_frames: int = 512) -> tuple[WebsocketInput, Clock]:
    clock = Clock()
    protocol = ServerProtocol(state=State.OPEN, max_size=10000)
    return WebsocketInput(protocol, max_bytes=max_bytes, max_frames=max_frames,
                          clock=clock), clock


def test_messages_whole_and_fragmented() -> None:
    wsin, _ = make()
    text = masked(0x1, b'["text", ["hi"], {}]')
    parts = masked(0x1, b"ab", fin=False) + masked(0x0, b"cd", fin=False) + masked(0x0, b"e")
    wsin.receive_data(text + parts + masked(0x2, b"\x00\x01"))
    assert wsin.receive_more() == ['["text", ["hi"], {}]', "abcde", b"\x00\x01"]
    assert wsin.frames_seen == 5 and wsin.backlog == 0


def test_a_slice_is_bounded_in_frames_and_bytes() -> None:
    wsin, _ = make(max_frames=512)
    wsin.receive_data(masked(0x1, b"[]") * 40000)  # tiny messages: 320 KB at once
    slices = 0
    while wsin.backlog:
        messages = wsin.receive_more()
        assert wsin.frames_seen <= 512 + MIN_PIECE // 6, wsin.frames_seen
        assert len(messages) == wsin.frames_seen
        slices += 1
    assert slices >= 40000 // (512 + MIN_PIECE // 6)
    small, _ = make(max_bytes=4096)
    small.receive_data(bytes(masked(0x1, b"x" * 100)) * 1000)
    small.receive_more()
    assert small.backlog >= 106 * 1000 - 4096 - PIECE


def test_endless_empty_continuation_frames_close_the_connection() -> None:
    wsin, _ = make()
    first, chunk = WS_PATTERNS["ws_continuation"]
    wsin.receive_data(first + chunk)
    assert wsin.receive_more() == []
    assert wsin.protocol.close_sent is not None
    assert wsin.protocol.close_sent.code == CloseCode.MESSAGE_TOO_BIG
    assert wsin.frames_seen <= MAX_FRAGMENTS + PIECE // 6 and wsin.backlog == 0


def test_pings_past_their_rate_close_the_connection() -> None:
    wsin, clock = make()
    for _ in range(PING_BURST):
        wsin.receive_data(masked(0x9, b"p"))
        wsin.receive_more()
        clock.now += 0.01
    assert wsin.protocol.close_sent is None  # a burst is answered
    pongs = b"".join(wsin.protocol.data_to_send())
    assert pongs.count(b"\x8a\x01p") == PING_BURST
    wsin.receive_data(masked(0x9) * 100)
    wsin.receive_more()
    assert wsin.protocol.close_sent is not None
    assert wsin.protocol.close_sent.code == CloseCode.POLICY_VIOLATION
