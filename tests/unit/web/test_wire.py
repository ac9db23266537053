"""Web wire formats: Evennia's JSON arrays and the mudstandards.org subprotocols."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from portal.web.wire import (
    FORMATS,
    GMCP_STD,
    JSON_STD,
    TERMINAL,
    V1,
    choose_subprotocol,
    decode_array,
)

COLOUR = {"ANSI": True, "XTERM256": True, "TRUECOLOR": True}


def test_v1_arrays_in_and_out() -> None:
    v1 = FORMATS[V1]
    assert v1.decode('["text", ["look"], {"cmdid": 3}]') == ("text", ["look"], {"cmdid": 3})
    assert v1.decode('["logged_in"]') == ("logged_in", [], {})
    out = json.loads(v1.encode_text("|rhi|n <b>", COLOUR, prompt=False))
    assert out == ["text", ['<span class="color-009">hi</span> &lt;b&gt;'], {}]
    assert json.loads(v1.encode_text("> ", COLOUR, prompt=True))[0] == "prompt"
    assert json.loads(v1.encode_oob("echo", [], {"hidden": True, "options": {}})) == [
        "echo", [], {"hidden": True}]


def test_v1_nocolor_and_screenreader_strip_colour() -> None:
    out = json.loads(FORMATS[V1].encode_text("|rred|n", {"NOCOLOR": True}, prompt=False))
    assert out[1] == ["red"]


def test_malformed_arrays_are_ignored() -> None:
    for bad in ["", "{", "[]", "{}", '"text"', "[1, [], {}]", '["text", "x", {}]',
                '["text", [], []]', '["a", [], {}, 4]', "[" * 100000, b"\xff\xfe",
                '["' + "x" * 100 + '", [], {}]']:
        assert decode_array(bad) is None, bad
    assert FORMATS[V1].decode(b'["text", ["x"], {}]') is None  # v1 is TEXT frames only


def test_subprotocol_choice_follows_evennia() -> None:
    assert choose_subprotocol([V1]) == V1
    assert choose_subprotocol([V1, JSON_STD]) == JSON_STD
    assert choose_subprotocol(["nonsense"]) == V1
    assert choose_subprotocol([]) == V1


def test_mudstandards_formats() -> None:
    term, gmcp, js = FORMATS[TERMINAL], FORMATS[GMCP_STD], FORMATS[JSON_STD]
    assert term.decode(b"look\r\n") == ("text", ["look"], {})
    assert term.encode_text("|rx", COLOUR, prompt=False) == b"\x1b[1;31mx\x1b[0m\r\n"
    assert term.encode_oob("ping", [], {}) is None
    assert gmcp.decode('Core.Ping {}') == ("ping", [], {})
    assert gmcp.encode_oob("char_echo", ["hi"], {}) == 'Char.Echo "hi"'
    assert js.decode('{"proto": "gmcp", "id": "Core.Ping", "data": ""}') == ("ping", [], {})
    assert js.decode('{"proto": "text", "data": "look"}') == ("text", ["look"], {})
    assert js.decode(b"say hi") == ("text", ["say hi"], {})
    assert json.loads(js.encode_text(">", {}, prompt=True)) == {"proto": "prompt", "id": "",
                                                                "data": ">"}
    envelope = json.loads(js.encode_oob("char_echo", ["hi"], {}) or "")
    assert envelope == {"proto": "gmcp", "id": "Char.Echo", "data": '"hi"'}


@given(st.one_of(st.binary(max_size=300), st.text(max_size=300)))
def test_no_format_raises_on_any_message(message: str | bytes) -> None:
    for fmt in FORMATS.values():
        fmt.decode(message)


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=5), inner, max_size=4), max_leaves=20))
def test_any_json_value_decodes_or_is_ignored(value: object) -> None:
    result = decode_array(json.dumps(value))
    if result is not None:
        cmdname, args, kwargs = result
        assert isinstance(cmdname, str) and isinstance(args, list)
        assert isinstance(kwargs, dict)
