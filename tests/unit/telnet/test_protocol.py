"""Unit tests for the sans-I/O telnet protocol (portal/telnet/)."""

from __future__ import annotations

import zlib
from itertools import pairwise
from typing import Any

import msgspec
import pytest

from portal.telnet import (
    CHARSET,
    DO,
    DONT,
    ECHO,
    EOR,
    GA,
    GMCP,
    IAC,
    MCCP2,
    MSDP,
    MSSP,
    NAWS,
    SB,
    SE,
    SGA,
    TTYPE,
    WILL,
    WONT,
    FlagsChanged,
    InputError,
    LineReceived,
    OobReceived,
    ProtocolError,
    TelnetEvent,
    TelnetProtocol,
)

EOR_MARK = 239
VAR, VAL, TOPEN, TCLOSE, AOPEN, ACLOSE = (bytes((n,)) for n in range(1, 7))


def cmd(command: int, option: int) -> bytes:
    return bytes((IAC, command, option))


def sb(option: int, payload: bytes) -> bytes:
    return bytes((IAC, SB, option)) + payload.replace(b"\xff", b"\xff\xff") + bytes((IAC, SE))


def ttype_is(name: str) -> bytes:
    return sb(TTYPE, b"\x00" + name.encode())


def naws(width: int, height: int) -> bytes:
    return sb(NAWS, width.to_bytes(2, "big") + height.to_bytes(2, "big"))


def started(**kwargs: Any) -> TelnetProtocol:
    proto = TelnetProtocol(**kwargs)
    proto.initiate()
    proto.data_to_send()
    return proto


def flags_events(events: list[TelnetEvent]) -> list[FlagsChanged]:
    return [e for e in events if isinstance(e, FlagsChanged)]


# A Mudlet-like client answering every offer (MCCP2 refused so output stays readable).
MUDLET_ANSWERS = (
    cmd(DO, SGA)
    + cmd(DO, EOR)
    + cmd(DONT, CHARSET)
    + cmd(DONT, MCCP2)
    + cmd(DONT, MSSP)
    + cmd(DO, GMCP)
    + cmd(DONT, MSDP)
    + cmd(WILL, NAWS)
    + naws(120, 40)
    + cmd(WILL, TTYPE)
    + ttype_is("Mudlet 4.17.2")
    + ttype_is("XTERM-256COLOR")
    + ttype_is("MTTS 2349")  # SSL, TRUECOLOR, OSC_COLOR_PALETTE, XTERM256, UTF-8, ANSI
)


def run(data: bytes, chunks: list[int] | None = None, **kwargs: Any) -> tuple[Any, ...]:
    """Feed `data` (split at `chunks` offsets) to a started protocol; return the results."""
    proto = started(**kwargs)
    cuts = [0, *(chunks or []), len(data)]
    for start, stop in pairwise(cuts):
        proto.receive_data(data[start:stop])
    return coalesced(proto.events_received()), proto.data_to_send(), proto.flags, proto.settled


def coalesced(events: list[TelnetEvent]) -> tuple[list[TelnetEvent], FlagsChanged | None]:
    """Events without the flag reports, and the last flag report: flag changes are
    reported once per read, so how many reports there are depends on how reads split."""
    reports = flags_events(events)
    return [e for e in events if not isinstance(e, FlagsChanged)], (reports[-1] if reports
                                                                    else None)


SCENARIOS = {
    "negotiation": MUDLET_ANSWERS
    + b"look\r\n"
    + sb(GMCP, b'Core.Hello {"client": "Mudlet", "version": "4.17"}')
    + naws(100, 30)
    + b"say hi\n",
    "line-endings": b"a\r\nb\rc\r\x00d\ne\n\r\n",
    "hostile": b"x" * 50
    + b"\r\n"
    + b"\xc3\x28\r\n"
    + sb(GMCP, b"y" * 80)
    + bytes((IAC, SB, NAWS, 1, IAC, WILL, TTYPE))
    + cmd(WILL, 99)
    + b"ok\xff\xff\r\n"
    + sb(77, b"zz")
    + b"end\n",
    "oob": cmd(DO, GMCP)
    + cmd(DO, MSDP)
    + sb(GMCP, b'Char.Skills.Get {"group": "combat"}')
    + sb(MSDP, VAR + b"REPORT" + VAL + b"HEALTH" + VAL + b"MANA")
    + sb(MSDP, VAR + b"LIST" + VAL + AOPEN + VAL + b"a" + VAL + b"b" + ACLOSE),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_split_point_gives_the_same_result(name: str) -> None:
    data = SCENARIOS[name]
    kwargs: dict[str, Any] = {"max_line": 40, "max_subneg": 64}
    whole = run(data, **kwargs)
    assert whole[0], "scenario produced no events"
    for cut in range(1, len(data)):
        assert run(data, [cut], **kwargs) == whole, f"split at {cut}"
    assert run(data, list(range(1, len(data))), **kwargs) == whole, "byte by byte"


def test_initiate_offers_every_option() -> None:
    proto = TelnetProtocol()
    proto.initiate()
    offers = proto.data_to_send()
    for option in (SGA, EOR, CHARSET, MCCP2, MSSP, GMCP, MSDP):
        assert cmd(WILL, option) in offers
    for option in (NAWS, TTYPE):
        assert cmd(DO, option) in offers
    assert not proto.settled
    proto.initiate()
    assert proto.data_to_send() == b""


def test_settling_does_not_wait_for_an_mssp_answer() -> None:
    # TinTin++ 2.02 never answers WILL MSSP; the session must not wait for its timeout.
    answers = MUDLET_ANSWERS.replace(cmd(DONT, MSSP), b"")
    events, _out, flags, settled = run(answers)
    assert settled
    assert len(flags_events(events)) == 1
    assert flags["MSSP"] is False


def test_full_negotiation_settles_once_with_flags() -> None:
    events, out, flags, settled = run(MUDLET_ANSWERS)
    assert settled
    changes = flags_events(events)
    assert len(changes) == 1
    reported = changes[0].flags
    assert reported == flags
    assert reported["CLIENTNAME"] == "MUDLET 4.17.2"
    assert reported["TERM"] == "XTERM-256COLOR"
    assert reported["TTYPE"] is True
    assert reported["SCREENWIDTH"] == {0: 120}
    assert reported["SCREENHEIGHT"] == {0: 40}
    assert reported["AUTORESIZE"] is True
    assert reported["NOGOAHEAD"] is True
    assert reported["EOR"] is True
    assert reported["GMCP"] is True
    assert reported["OOB"] is True
    assert reported["MSDP"] is False
    assert reported["MCCP"] is False
    # MTTS 2349 = 2048 SSL + 256 TRUECOLOR + 32 OSC + 8 XTERM256 + 4 UTF-8 + 1 ANSI
    assert reported["SSL"] and reported["TRUECOLOR"] and reported["OSC_COLOR_PALETTE"]
    assert reported["XTERM256"] and reported["UTF-8"] and reported["ANSI"]
    assert not reported["SCREENREADER"] and not reported["VT100"]
    # Answers to offers we made need no reply; only TTYPE SENDs went out.
    assert out == sb(TTYPE, b"\x01") * 3


def test_flags_round_trip_msgpack() -> None:
    flags = started().flags
    decoded = msgspec.msgpack.decode(msgspec.msgpack.encode(flags), type=dict[str, Any])
    assert decoded == flags
    assert decoded["SCREENWIDTH"] == {0: 78}


# --- line handling -----------------------------------------------------------------


def lines(events: list[TelnetEvent]) -> list[str]:
    return [e.text for e in events if isinstance(e, LineReceived)]


def test_line_endings() -> None:
    events = run(SCENARIOS["line-endings"])[0][0]
    assert lines(events) == ["a", "b", "c", "d", "e", ""]


def test_iac_escaping_both_ways() -> None:
    proto = started()
    proto.flags["ENCODING"] = "latin-1"
    proto.receive_data(b"a\xff\xffb\r\n")
    assert lines(proto.events_received()) == ["a\xffb"]
    proto.send_text("\xff!")
    assert proto.data_to_send() == b"\xff\xff!"


def test_send_text_line_endings_and_encoding() -> None:
    proto = started()
    proto.send_text("one\ntwo\r\nthree é")
    assert proto.data_to_send() == b"one\r\ntwo\r\nthree \xc3\xa9"
    proto.flags["ENCODING"] = "ascii"
    proto.send_text("é")
    assert proto.data_to_send() == b"?"
    proto.flags["ENCODING"] = "no-such-codec"
    proto.send_text("é")
    assert proto.data_to_send() == "é".encode()


def test_long_line_is_dropped_with_message_and_bounded_memory() -> None:
    proto = started(max_line=10)
    for _ in range(100):
        proto.receive_data(b"x" * 7)
        assert len(proto._line) <= 10
    proto.receive_data(b"\r\nnext\r\n")
    assert proto.events_received() == [
        InputError("Line too long (700 bytes, limit 10); dropped."),
        LineReceived("next"),
    ]


def test_line_of_exactly_max_line_is_kept() -> None:
    proto = started(max_line=4)
    proto.receive_data(b"abcd\nabcde\n")
    events = proto.events_received()
    assert events == [
        LineReceived("abcd"),
        InputError("Line too long (5 bytes, limit 4); dropped."),
    ]


def test_invalid_utf8_is_reported_not_raised() -> None:
    proto = started()
    proto.receive_data(b"\xc3\x28\r\nfine\r\n")
    assert proto.events_received() == [
        InputError("Input was not valid utf-8; line dropped."),
        LineReceived("fine"),
    ]


def test_eof_delivers_partial_line_and_ignores_later_data() -> None:
    proto = started()
    proto.receive_data(b"quit")
    proto.receive_eof()
    proto.receive_data(b"more\n")
    proto.receive_eof()
    assert proto.events_received() == [LineReceived("quit")]


# --- hostile bytes -----------------------------------------------------------------


def test_oversize_subnegotiation_is_dropped_and_parsing_continues() -> None:
    proto = started(max_subneg=16)
    proto.receive_data(cmd(DO, GMCP))
    proto.receive_data(sb(GMCP, b"Core.Ping " + b"9" * 100))
    assert len(proto._sb) <= 16
    proto.receive_data(b"look\n" + sb(GMCP, b"Core.Ping"))
    events = proto.events_received()
    assert isinstance(events[0], ProtocolError)
    assert "exceeds 16 bytes" in events[0].reason
    assert events[1:] == [LineReceived("look"), OobReceived("ping", [], {})]


def test_command_inside_subnegotiation_aborts_it() -> None:
    proto = started()
    proto.receive_data(bytes((IAC, SB, NAWS, 0, 80)) + cmd(WILL, NAWS) + naws(90, 20))
    events = proto.events_received()
    assert isinstance(events[0], ProtocolError)
    assert proto.flags["SCREENWIDTH"] == {0: 90}


def test_subnegotiation_for_disabled_option_is_an_error() -> None:
    proto = started()
    proto.receive_data(naws(200, 50) + sb(GMCP, b"Core.Ping") + sb(123, b"x"))
    events = proto.events_received()
    assert len(events) == 3
    assert all(isinstance(e, ProtocolError) for e in events)
    assert proto.flags["SCREENWIDTH"] == {0: 78}


def test_bad_naws_length() -> None:
    proto = started()
    proto.receive_data(cmd(WILL, NAWS) + sb(NAWS, b"\x00\x50\x00"))
    assert isinstance(proto.events_received()[0], ProtocolError)


# --- RFC 1143: no loops ------------------------------------------------------------


def test_repeated_agreement_gets_no_reply() -> None:
    proto = started()
    for _ in range(50):
        proto.receive_data(cmd(WILL, NAWS) + cmd(DO, SGA) + cmd(DO, GMCP))
    assert proto.data_to_send() == b""


def test_unknown_option_refused_once() -> None:
    proto = started()
    for _ in range(10):
        proto.receive_data(cmd(WILL, 99) + cmd(DO, 98))
    assert proto.data_to_send() == cmd(DONT, 99) + cmd(WONT, 98)


def test_known_but_unwanted_option_refused_per_request() -> None:
    proto = started()
    proto.receive_data(cmd(DO, ECHO) + cmd(DO, TTYPE))
    assert proto.data_to_send() == cmd(WONT, ECHO) + cmd(WONT, TTYPE)
    proto.receive_data(cmd(DO, TTYPE))  # a new request deserves a new answer
    assert proto.data_to_send() == cmd(WONT, TTYPE)


def naive_peer(data: bytes) -> bytes:
    """A broken client that acknowledges every request, enabled or not (the loop maker)."""
    replies = {WILL: DO, WONT: DONT, DO: WILL, DONT: WONT}
    out = b""
    i = 0
    while i < len(data):
        if data[i] == IAC and i + 2 < len(data) and data[i + 1] in replies:
            out += cmd(replies[data[i + 1]], data[i + 2])
            i += 3
        else:
            i += 1
    return out


def test_no_negotiation_loop_against_an_always_agreeing_client() -> None:
    proto = TelnetProtocol()
    proto.initiate()
    wire = proto.data_to_send()
    for _round in range(10):
        if not wire:
            break
        proto.receive_data(naive_peer(wire))
        wire = proto.data_to_send()
    else:
        pytest.fail("negotiation did not go quiet")
    assert proto.flags["MCCP"] is True  # the naive client even agreed to MCCP2


def test_disable_then_enable_again() -> None:
    proto = started()
    proto.receive_data(cmd(DO, SGA))
    assert proto.flags["NOGOAHEAD"] is True
    proto.receive_data(cmd(DONT, SGA))
    assert proto.data_to_send() == cmd(WONT, SGA)
    assert proto.flags["NOGOAHEAD"] is False
    proto.receive_data(cmd(DO, SGA))
    assert proto.data_to_send() == cmd(WILL, SGA)
    assert proto.flags["NOGOAHEAD"] is True


# --- settle / FlagsChanged --------------------------------------------------------


def test_settle_timeout_then_changes() -> None:
    proto = started()
    proto.receive_data(cmd(WILL, NAWS))
    assert proto.events_received() == []
    proto.settle()
    proto.settle()
    events = proto.events_received()
    assert len(flags_events(events)) == 1
    assert proto.settled
    proto.receive_data(naws(132, 50))
    (change,) = proto.events_received()
    assert isinstance(change, FlagsChanged)
    assert change.flags["SCREENWIDTH"] == {0: 132}
    assert change.flags["SCREENHEIGHT"] == {0: 50}


def test_naws_live_resize() -> None:
    proto = started()
    proto.receive_data(MUDLET_ANSWERS)
    proto.events_received()
    proto.receive_data(naws(80, 24))
    (first,) = proto.events_received()
    assert isinstance(first, FlagsChanged)
    assert first.flags["SCREENWIDTH"] == {0: 80}
    proto.receive_data(naws(80, 24))  # unchanged: no event
    proto.receive_data(naws(0, 0))  # 0 means unknown: keep
    assert proto.events_received() == []
    proto.receive_data(naws(81, 24))
    assert flags_events(proto.events_received())[0].flags["SCREENWIDTH"] == {0: 81}


def test_flags_event_is_a_copy() -> None:
    proto = started()
    proto.settle()
    (event,) = proto.events_received()
    assert isinstance(event, FlagsChanged)
    event.flags["SCREENWIDTH"][0] = 1
    assert proto.flags["SCREENWIDTH"] == {0: 78}


# --- TTYPE / MTTS ------------------------------------------------------------------


def test_mtts_three_rounds() -> None:
    proto = started()
    send = sb(TTYPE, b"\x01")
    proto.receive_data(cmd(WILL, TTYPE))
    assert proto.data_to_send() == send
    proto.receive_data(ttype_is("TinTin++"))
    assert proto.data_to_send() == send
    assert proto.flags["CLIENTNAME"] == "TINTIN++"
    assert proto.flags["XTERM256"] is True
    assert proto.flags["TTYPE"] is False
    proto.receive_data(ttype_is("xterm"))
    assert proto.data_to_send() == send
    assert proto.flags["TERM"] == "xterm"
    proto.receive_data(ttype_is("MTTS 64"))  # a screen reader, nothing else
    assert proto.data_to_send() == b""
    assert proto.flags["TTYPE"] is True
    assert proto.flags["SCREENREADER"] is True
    assert proto.flags["ANSI"] is False
    proto.receive_data(ttype_is("again"))  # nobody asked
    assert isinstance(proto.events_received()[0], ProtocolError)
    assert proto.flags["CLIENTNAME"] == "TINTIN++"


def test_ttype_stops_when_a_name_repeats() -> None:
    proto = started()
    proto.receive_data(cmd(WILL, TTYPE) + ttype_is("ANSI") + ttype_is("ANSI"))
    assert proto.data_to_send() == sb(TTYPE, b"\x01") * 2
    assert proto.flags["TTYPE"] is True
    assert proto.flags["CLIENTNAME"] == "ANSI"
    assert proto.flags["TERM"] == ""


def test_ttype_refused() -> None:
    proto = started()
    proto.receive_data(cmd(WONT, TTYPE))
    assert proto.data_to_send() == b""
    assert proto.flags["TTYPE"] is False


# --- EOR / GA / ECHO ---------------------------------------------------------------


def test_prompt_marks() -> None:
    proto = started()
    proto.send_text("> ", prompt=True)
    assert proto.data_to_send() == b"> "  # SGA pending, NOGOAHEAD default: nothing
    proto.receive_data(cmd(DONT, SGA))
    proto.send_text("> ", prompt=True)
    assert proto.data_to_send() == b"> " + bytes((IAC, GA))
    proto.receive_data(cmd(DO, EOR))
    proto.send_text("> ", prompt=True)
    assert proto.data_to_send() == b"> " + bytes((IAC, EOR_MARK))


def test_mudlet_wants_ga_on_prompts_without_eor() -> None:
    proto = started()
    proto.receive_data(cmd(DO, SGA) + cmd(DONT, EOR) + cmd(WILL, TTYPE) + ttype_is("MUDLET"))
    proto.send_text(">", prompt=True)
    assert proto.data_to_send().endswith(b">" + bytes((IAC, GA)))


def test_set_echo() -> None:
    proto = started()
    proto.set_echo(True)
    assert proto.data_to_send() == cmd(WILL, ECHO)
    proto.receive_data(cmd(DO, ECHO))
    assert proto.data_to_send() == b""
    proto.set_echo(False)
    assert proto.data_to_send() == cmd(WONT, ECHO)
    proto.receive_data(cmd(DONT, ECHO))
    assert proto.data_to_send() == b""
    proto.set_echo(False)
    assert proto.data_to_send() == b""


def test_set_echo_toggled_before_the_answer_is_queued() -> None:
    proto = started()
    proto.set_echo(True)
    proto.set_echo(False)  # queued per RFC 1143: no WONT yet
    assert proto.data_to_send() == cmd(WILL, ECHO)
    proto.receive_data(cmd(DO, ECHO))
    assert proto.data_to_send() == cmd(WONT, ECHO)
    proto.receive_data(cmd(DONT, ECHO))
    assert proto.data_to_send() == b""


# --- CHARSET -----------------------------------------------------------------------


def test_charset_accepted() -> None:
    proto = started()
    proto.flags["ENCODING"] = "latin-1"
    proto.receive_data(cmd(DO, CHARSET))
    assert proto.data_to_send() == sb(CHARSET, b"\x01;UTF-8")
    proto.receive_data(sb(CHARSET, b"\x02UTF-8"))
    assert proto.flags["ENCODING"] == "utf-8"
    assert proto.flags["CHARSET"] == "UTF-8"


def test_charset_rejected_keeps_encoding() -> None:
    proto = started()
    proto.receive_data(cmd(DO, CHARSET) + sb(CHARSET, b"\x03"))
    assert proto.flags["ENCODING"] == "utf-8"
    assert proto.flags["CHARSET"] == ""
    assert proto.events_received() == []


def test_charset_request_from_client() -> None:
    proto = started()
    proto.receive_data(cmd(DONT, CHARSET) + cmd(WILL, CHARSET))
    assert proto.data_to_send() == cmd(DO, CHARSET)
    proto.receive_data(sb(CHARSET, b"\x01 ISO-8859-1 KOI8-R"))
    assert proto.data_to_send() == sb(CHARSET, b"\x02ISO-8859-1")
    assert proto.flags["ENCODING"] == "iso8859-1"
    proto.receive_data(b"caf\xe9\n")
    assert lines(proto.events_received()) == ["café"]
    proto.receive_data(sb(CHARSET, b"\x01;EBCDIC-NOPE"))
    assert proto.data_to_send() == sb(CHARSET, b"\x03")


# --- MCCP2 -------------------------------------------------------------------------


def test_mccp2_compresses_output_and_ends_cleanly() -> None:
    proto = started()
    proto.receive_data(cmd(DO, MCCP2))
    out = proto.data_to_send()
    start = sb(MCCP2, b"")
    assert out.startswith(start)
    assert proto.flags["MCCP"] is True
    inflate = zlib.decompressobj()
    text = inflate.decompress(out[len(start) :])
    proto.send_text("Hello\n" * 100)
    chunk = proto.data_to_send()
    assert len(chunk) < 100
    text += inflate.decompress(chunk)  # a sync flush makes it readable right away
    assert text == b"Hello\r\n" * 100
    proto.receive_data(cmd(DO, GMCP))
    proto.send_oob("ping", [], {})
    text = inflate.decompress(proto.data_to_send())
    assert text == sb(GMCP, b"Core.Ping")
    proto.close()
    tail = proto.data_to_send()
    assert inflate.decompress(tail) == b""
    assert inflate.eof
    assert inflate.unused_data == b""
    proto.send_text("after close")
    assert proto.data_to_send() == b""


def test_mccp2_turned_off_by_client() -> None:
    proto = started()
    proto.receive_data(cmd(DO, MCCP2))
    proto.send_text("x")
    out = proto.data_to_send()
    proto.receive_data(cmd(DONT, MCCP2))
    out += proto.data_to_send()
    proto.send_text("plain")
    out += proto.data_to_send()
    start = sb(MCCP2, b"")
    inflate = zlib.decompressobj()
    assert inflate.decompress(out[len(start) :]) == b"x"
    assert inflate.eof
    assert inflate.unused_data == cmd(WONT, MCCP2) + b"plain"
    assert proto.flags["MCCP"] is False


# --- MSSP --------------------------------------------------------------------------


def test_mssp_table() -> None:
    table = {"NAME": "Testgame", "PLAYERS": "3", "UPTIME": "1700000000", "PORT": "4000"}
    proto = started(mssp=lambda: table)
    proto.receive_data(cmd(DO, MSSP))
    expected = b"".join(VAR + k.encode() + VAL + v.encode() for k, v in table.items())
    assert proto.data_to_send() == sb(MSSP, expected)
    assert proto.flags["MSSP"] is True


def test_mssp_callback_failure_still_sends_name() -> None:
    def broken() -> dict[str, str]:
        raise RuntimeError("boom")

    proto = started(mssp=broken, server_name="Fallback")
    proto.receive_data(cmd(DO, MSSP))
    assert proto.data_to_send() == sb(MSSP, VAR + b"NAME" + VAL + b"Fallback")
    assert isinstance(proto.events_received()[0], ProtocolError)


# --- GMCP / MSDP -------------------------------------------------------------------


def oob_after(data: bytes, setup: bytes = cmd(DO, GMCP) + cmd(DO, MSDP)) -> list[TelnetEvent]:
    proto = started()
    proto.receive_data(setup)
    proto.events_received()
    proto.receive_data(data)
    return proto.events_received()


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b'Core.Hello {"client": "Mudlet"}', OobReceived("hello", [], {"client": "Mudlet"})),
        (b"Core.Supports.Get", OobReceived("client_options", [], {})),
        (b'Char.Skills.Get ["a", 1]', OobReceived("char_skills_get", ["a", 1], {})),
        (b"External.Discord.Hello 5", OobReceived("external_discord_hello", [5], {})),
        (b"Foo not json", OobReceived("foo", ["not json"], {})),
        ('Say "héllo"'.encode(), OobReceived("say", ["héllo"], {})),
    ],
)
def test_gmcp_in(payload: bytes, expected: OobReceived) -> None:
    assert oob_after(sb(GMCP, payload)) == [expected]


def test_gmcp_in_errors() -> None:
    events = oob_after(sb(GMCP, b"") + sb(GMCP, b"\xff\xfe") + sb(GMCP, b"A " + b"[" * 5000))
    assert [type(e) for e in events] == [ProtocolError, ProtocolError, OobReceived]


@pytest.mark.parametrize(
    ("args", "kwargs", "expected"),
    [
        ([], {}, b"Core.Ping"),
        ([], {"hp": 10}, b'Char.Vitals {"hp": 10}'),
        (["x"], {}, b'Char.Vitals "x"'),
        ([1, 2], {"a": 1}, b'Char.Vitals [[1, 2], {"a": 1}]'),
    ],
)
def test_gmcp_out(args: list[Any], kwargs: dict[str, Any], expected: bytes) -> None:
    proto = started()
    proto.receive_data(cmd(DO, GMCP) + cmd(DO, MSDP))
    name = "ping" if expected == b"Core.Ping" else "char_vitals"
    proto.send_oob(name, args, kwargs)
    assert proto.data_to_send() == sb(GMCP, expected)


def test_gmcp_out_hard_wired_name() -> None:
    proto = started()
    proto.receive_data(cmd(DO, GMCP))
    proto.send_oob("client_options", [], {"ansi": True})
    assert proto.data_to_send() == sb(GMCP, b'Core.Supports.Get {"ansi": true}')


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (VAR + b"REPORT" + VAL + b"HEALTH", [OobReceived("msdp_report", ["HEALTH"], {})]),
        (
            VAR + b"SEND" + VAL + AOPEN + VAL + b"A" + VAL + b"B" + ACLOSE,
            [OobReceived("msdp_send", ["A", "B"], {})],
        ),
        (
            VAR
            + b"ROOM"
            + VAL
            + TOPEN
            + VAR
            + b"VNUM"
            + VAL
            + b"6008"
            + VAR
            + b"EXITS"
            + VAL
            + TOPEN
            + VAR
            + b"n"
            + VAL
            + b"6011"
            + TCLOSE
            + TCLOSE,
            [OobReceived("room", [], {"VNUM": "6008", "EXITS": {"n": "6011"}})],
        ),
        (
            VAR + b"A" + VAL + b"1" + VAR + b"list" + VAL + b"COMMANDS",
            [OobReceived("a", ["1"], {}), OobReceived("msdp_list", ["COMMANDS"], {})],
        ),
        (VAR + b"EMPTY" + VAL, [OobReceived("empty", [""], {})]),
    ],
)
def test_msdp_in(payload: bytes, expected: list[OobReceived]) -> None:
    assert oob_after(sb(MSDP, payload)) == expected


@pytest.mark.parametrize(
    "payload",
    [
        VAL + b"x",
        VAR + b"T" + VAL + TOPEN + VAR + b"k" + VAL + b"v",
        VAR + b"A" + VAL + AOPEN + VAL + b"x",
        VAR + b"A" + VAL + AOPEN + VAR + b"x" + ACLOSE,
        VAR + b"D" + (VAL + AOPEN) * 100,
    ],
)
def test_msdp_in_malformed(payload: bytes) -> None:
    (event,) = oob_after(sb(MSDP, payload))
    assert isinstance(event, ProtocolError)


@pytest.mark.parametrize(
    ("args", "kwargs", "expected"),
    [
        ([], {}, VAR + b"PING" + VAL),
        (["95"], {}, VAR + b"HEALTH" + VAL + b"95"),
        (
            [1, True],
            {},
            VAR + b"HEALTH" + VAL + AOPEN + VAL + b"1" + VAL + b"1" + ACLOSE,
        ),
        (
            [],
            {"a": [1], "b": None},
            VAR
            + b"HEALTH"
            + VAL
            + TOPEN
            + VAR
            + b"a"
            + VAL
            + AOPEN
            + VAL
            + b"1"
            + ACLOSE
            + VAR
            + b"b"
            + VAL
            + TCLOSE,
        ),
        (["bad\x01\xff"], {}, VAR + b"HEALTH" + VAL + b"bad\xc3\xbf"),
    ],
)
def test_msdp_out(args: list[Any], kwargs: dict[str, Any], expected: bytes) -> None:
    proto = started()
    proto.receive_data(cmd(DONT, GMCP) + cmd(DO, MSDP))
    proto.send_oob("ping" if not (args or kwargs) else "health", args, kwargs)
    assert proto.data_to_send() == sb(MSDP, expected)


def test_oob_dropped_without_gmcp_or_msdp() -> None:
    proto = started()
    proto.receive_data(cmd(DONT, GMCP) + cmd(DONT, MSDP))
    proto.send_oob("ping", [], {})
    assert proto.data_to_send() == b""
    assert proto.flags["OOB"] is False


def test_oob_flag_follows_options() -> None:
    proto = started()
    proto.receive_data(cmd(DO, GMCP) + cmd(DO, MSDP) + cmd(DONT, GMCP))
    assert proto.flags["OOB"] is True
    proto.receive_data(cmd(DONT, MSDP))
    assert proto.flags["OOB"] is False


# --- robustness --------------------------------------------------------------------


def test_internal_error_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(self: TelnetProtocol) -> None:
        raise RuntimeError("bug")

    proto = started()
    monkeypatch.setattr(TelnetProtocol, "_end_line", boom)  # (on the class, as a method)
    proto.receive_data(b"a\n")
    (event,) = proto.events_received()
    assert isinstance(event, ProtocolError)
    assert event.reason.startswith("internal parser error")
    monkeypatch.undo()
    proto.receive_data(b"b\n")
    assert lines(proto.events_received()) == ["b"]


# --- issue 9: bounded work per call ----------------------------------------------------


def drain(proto: TelnetProtocol) -> tuple[list[TelnetEvent], int]:
    """Events of the whole backlog, and how many calls it took."""
    events, calls = proto.events_received(), 1
    while proto.backlog:
        proto.receive_more()
        events += proto.events_received()
        calls += 1
    return events, calls


def test_a_huge_read_is_parsed_in_bounded_slices() -> None:
    proto = started(max_steps=100, max_bytes=1 << 20)
    proto.receive_data(b"look\n" * 1000)
    first = proto.events_received()
    assert len(first) == 100 and proto.backlog == 900 * 5
    rest, calls = drain(proto)
    assert len(first) + len(rest) == 1000 and calls == 10


def test_byte_budget_per_call() -> None:
    proto = started(max_bytes=1000, max_line=2000)
    proto.receive_data(b"x" * 2500 + b"\n")
    assert proto.backlog == 1501
    events, calls = drain(proto)
    assert calls == 3 and isinstance(events[-1], InputError)  # over max_line, dropped


def test_flag_toggles_are_reported_once_per_call() -> None:
    proto = started()
    proto.receive_data(cmd(DO, SGA) + cmd(DO, EOR) + cmd(DONT, CHARSET) + cmd(DONT, MCCP2)
                       + cmd(DO, GMCP) + cmd(DONT, MSDP) + cmd(WONT, NAWS) + cmd(WONT, TTYPE))
    proto.events_received()
    proto.data_to_send()
    assert proto.settled
    proto.receive_data((cmd(DONT, SGA) + cmd(DO, SGA) + cmd(DONT, SGA)) * 50)
    reports = flags_events(proto.events_received())
    assert len(reports) == 1 and reports[0].flags["NOGOAHEAD"] is False
    proto.receive_data((cmd(DO, SGA) + cmd(DONT, SGA)) * 50)
    assert flags_events(proto.events_received()) == []  # no net change, no report


def test_nul_iac_iac_and_nop_runs_are_one_step_each() -> None:
    proto = started(max_steps=4, max_bytes=1 << 20)
    proto.update_flags({"ENCODING": "latin-1"})
    proto.receive_data(bytes(50000) + bytes((IAC, IAC)) * 10 + bytes((IAC, 241)) * 9000
                       + b"\n")
    events = proto.events_received()
    assert proto.backlog == 0
    assert lines(events) == ["\xff" * 10]


def test_mccp_restarts_and_mssp_resends_are_capped() -> None:
    proto = started()
    proto.receive_data((cmd(DO, MCCP2) + cmd(DONT, MCCP2)) * 20 + (cmd(DO, MSSP)
                                                                   + cmd(DONT, MSSP)) * 20)
    proto.events_received()
    out = proto.data_to_send()
    assert out.count(bytes((IAC, SB, MCCP2, IAC, SE))) <= 9
    assert out.count(bytes((IAC, SB, MSSP))) <= 4


def test_unfinished_line_expires() -> None:
    now = [0.0]
    proto = started(line_timeout=10.0, clock=lambda: now[0])
    proto.receive_data(b"pin")
    now[0] = 11.0
    proto.receive_data(b"g\r\n")
    events = proto.events_received()
    assert isinstance(events[0], InputError) and "unfinished" in events[0].message
    assert lines(events) == ["g"]


@pytest.mark.parametrize("name", ["hex", "idna", "undefined", "utf-16", "unicode_escape", 7])
def test_game_cannot_set_a_non_text_encoding(name: Any) -> None:
    proto = started()
    proto.update_flags({"ENCODING": name})
    assert proto.flags["ENCODING"] == "utf-8"
    proto.send_text("héllo\n")
    assert "héllo".encode() in proto.data_to_send()
