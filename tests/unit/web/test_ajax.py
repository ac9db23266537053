"""The ajax long-poll state machine and form parsing, on a fake clock; and `due()`."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from portal.web.ajax import KEEPALIVE, AjaxChannel, AjaxRequest, PollState, parse_form
from portal.web.sessions import AJAX, WEBSOCKET, due


def channel(now: float = 0.0, max_queued: int = 1000) -> AjaxChannel:
    return AjaxChannel(now, keepalive=25.0, max_queued=max_queued)


def test_form_parsing() -> None:
    parsed = parse_form(b"mode=input&csessid=abc&cuid=p1&data=%5B%22text%22%5D")
    assert parsed == AjaxRequest(mode="input", csessid="abc", cuid="p1", browser="",
                                 data='["text"]', batch=False)
    assert isinstance(parse_form(b"mode=dance&csessid=a"), str)
    assert isinstance(parse_form(b"\xff\xfe"), str)
    assert isinstance(parse_form(b"&".join(b"f%d=1" % i for i in range(100))), str)


def test_poll_answered_at_once_when_output_waits() -> None:
    ch = channel()
    assert ch.push('["text", ["a"], {}]')
    assert ch.poll(1.0, batch=False) == ('["text", ["a"], {}]', None)
    assert ch.state is PollState.IDLE


def test_held_poll_answered_by_output_then_keepalive() -> None:
    ch = channel()
    assert ch.poll(1.0, batch=True) == (None, None)
    assert ch.state is PollState.HELD and ch.answer() is None
    ch.push('["a"]')
    ch.push('["b"]')
    assert json.loads(ch.answer() or "") == [["a"], ["b"]]
    ch.poll(2.0, batch=True)
    assert ch.tick(20.0) is None
    assert ch.tick(27.0) == KEEPALIVE
    assert ch.state is PollState.IDLE


def test_evennia_clients_get_one_message_per_poll() -> None:
    ch = channel()
    ch.push('["a"]')
    ch.push('["b"]')
    assert ch.poll(0.0, batch=False)[0] == '["a"]'
    assert ch.poll(0.0, batch=False)[0] == '["b"]'


def test_a_new_poll_replaces_the_held_one() -> None:
    ch = channel()
    ch.poll(0.0, batch=True)
    now, replaced = ch.poll(1.0, batch=True)
    assert now is None and replaced == KEEPALIVE and ch.state is PollState.HELD


def test_waiting_output_is_bounded() -> None:
    ch = channel(max_queued=50)
    assert ch.push("x" * 40)
    assert not ch.push("x" * 40)


def test_idle_time_counts_only_without_a_held_poll() -> None:
    ch = channel()
    ch.poll(10.0, batch=True)
    assert ch.idle_for(100.0) == 0.0
    ch.poll_lost()
    assert ch.idle_for(100.0) == 90.0


def test_liveness_policy() -> None:
    def ws(silent: float, detached: float | None = None) -> str:
        return due(WEBSOCKET, silent_for=silent, detached_for=detached, keepalive=25.0,
                   linger=60.0)

    assert [ws(1), ws(25), ws(50)] == ["none", "ping", "drop"]
    assert [ws(1, 10), ws(1, 60)] == ["none", "end"]
    ajax = [due(AJAX, silent_for=s, detached_for=None, keepalive=25.0, linger=60.0)
            for s in (0, 59, 60)]
    assert ajax == ["keepalive", "keepalive", "end"]


@given(st.lists(st.tuples(st.sampled_from(["push", "poll", "answer", "tick", "lost",
                                           "close"]), st.floats(0, 100)), max_size=40))
def test_any_sequence_keeps_the_state_consistent(steps: list[tuple[str, float]]) -> None:
    ch = channel(max_queued=10_000)
    now = 0.0
    for op, dt in steps:
        now += dt
        if op == "push":  # the session answers at the end of the loop turn
            ch.push('["t"]')
            ch.answer()
        elif op == "poll":
            ch.poll(now, batch=dt > 50)
        elif op == "answer":
            ch.answer()
        elif op == "tick":
            ch.tick(now)
        elif op == "lost":
            if ch.state is not PollState.CLOSED:
                ch.poll_lost()
        else:
            ch.close()
        assert ch.queued_bytes == sum(len(m) for m in ch.queue)
        if ch.state is PollState.HELD:
            assert not ch.queue, "a held poll is answered as soon as output exists"


@given(st.binary(max_size=400))
def test_any_body_parses_or_is_refused(body: bytes) -> None:
    result = parse_form(body)
    assert isinstance(result, (str, AjaxRequest))
