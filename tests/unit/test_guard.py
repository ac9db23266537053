"""The portal's edge guards (portal/guard.py), on a fake clock, without sockets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ipc.settings import PortalSettings
from portal.colour import render
from portal.guard import (
    AddressLimits,
    LogLimiter,
    PortalGuard,
    TokenBucket,
    Unframeable,
    address_key,
    clean_line,
    clean_text,
    screen_input,
    text_encoding,
)
from portal.session import PortalSession


def test_clean_text_removes_controls_but_keeps_tab_and_unicode() -> None:
    evil = "a\x1b[2J\x1b]52;c;ZXZp\x07b\x08\x7f\u009b31m\tc\u00e9\u4e2d\r\n"
    assert clean_text(evil) == "a[2J]52;c;ZXZpb31m\tc\u00e9\u4e2d"
    assert clean_text("plain text") == "plain text"


@pytest.mark.parametrize(("line", "shown"), [
    ("|/The game is shutting down!", "|/The game is shutting down!"),
    ("||/x", "|/x"),
    ("|||/x", "||/x"),
    ("|rred|n |/ok", "red |/ok"),
])
def test_newline_markup_in_player_text_is_literal(line: str, shown: str) -> None:
    rendered = render(clean_line(line), {"ANSI": False})
    assert "\n" not in rendered
    assert rendered == shown


def _nested(depth: int) -> list[Any]:
    value: list[Any] = [1]
    for _ in range(depth):
        value = [value]
    return value


DEEP = _nested(40)


@pytest.mark.parametrize(("args", "kwargs", "reason"), [
    ([1 << 64], {}, "64 bits"),
    ([-(1 << 63) - 1], {}, "64 bits"),
    (["\ud800"], {}, "not valid Unicode"),
    ([], {"\udfff": 1}, "not valid Unicode"),
    (DEEP, {}, "nested"),
    ([{1: "x"}], {}, "key that is not text"),
    ([b"bytes"], {}, "type bytes"),
])
def test_what_cannot_cross_the_link_is_refused(args: list[Any], kwargs: dict[str, Any],
                                               reason: str) -> None:
    with pytest.raises(Unframeable, match=reason):
        screen_input("ping", args, kwargs)


def test_text_line_with_a_surrogate_is_refused() -> None:
    with pytest.raises(Unframeable):
        screen_input("text", ["ping \ud800"], {})


def test_screen_input_cleans_oob_strings_and_keeps_the_rest() -> None:
    name, args, kwargs = screen_input("char_echo", ["a\x1bb", 1 << 63, 2.5, None],
                                      {"k\x07": [True, "\u009bx"]})
    assert (name, args, kwargs) == ("char_echo", ["ab", 1 << 63, 2.5, None], {"k": [True, "x"]})


@pytest.mark.parametrize("name", ["hex", "idna", "undefined", "utf-16", "utf-7", "punycode",
                                  "unicode_escape", "raw_unicode_escape", "rot13", "cp037",
                                  "nonsense", "", "x" * 100])
def test_only_real_text_encodings(name: str) -> None:
    assert text_encoding(name) is None


@pytest.mark.parametrize(("name", "codec"), [("utf-8", "utf-8"), ("latin-1", "iso8859-1"),
                                             ("cp437", "cp437"), ("koi8-r", "koi8-r")])
def test_real_encodings_are_taken(name: str, codec: str) -> None:
    assert text_encoding(name) == codec
    assert text_encoding(None) is None and text_encoding(7) is None


def test_token_bucket() -> None:
    bucket = TokenBucket.full(2.0, 3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.wait(0.0) == pytest.approx(0.5)
    assert bucket.take(0.5) and not bucket.take(0.5)
    assert bucket.is_full(10.0)


def test_address_limits_count_rate_and_unlimited() -> None:
    limits = AddressLimits(max_count=2, rate=1.0, burst=3, unlimited=["127.0.0.0/8"])
    assert limits.admit("10.0.0.1", 0.0) is None
    assert limits.admit("10.0.0.1", 0.0) is None
    assert "Too many" in (limits.admit("10.0.0.1", 0.0) or "")
    limits.release("10.0.0.1")
    assert limits.admit("10.0.0.1", 0.0) is None  # third token of the burst
    limits.release("10.0.0.1")
    assert "too fast" in (limits.admit("10.0.0.1", 0.1) or "")
    assert limits.admit("10.0.0.1", 1.2) is None
    for _ in range(100):
        assert limits.admit("127.0.0.1", 0.0) is None
    limits.prune(100.0)
    assert "10.0.0.1" not in limits.buckets


def test_ipv6_counts_per_64_and_mapped_v4_as_v4() -> None:
    assert address_key("2001:db8::1") == address_key("2001:db8::ffff") == "2001:db8::/64"
    assert address_key("::ffff:10.1.2.3") == "10.1.2.3"
    limits = AddressLimits(max_count=1, rate=0, burst=0, unlimited=["127.0.0.0/8"])
    assert limits.admit("::ffff:127.0.0.1", 0.0) is None
    assert limits.admit("::ffff:127.0.0.1", 0.0) is None


def test_log_limiter_passes_a_few_then_summarises() -> None:
    limiter = LogLimiter(burst=2, interval=10.0)
    results = [limiter.check(float(t) / 10) for t in range(50)]
    assert [ok for _, ok in results].count(True) == 2
    assert limiter.check(11.0) == (48, True)


class FakeSession(PortalSession):
    def __init__(self) -> None:
        super().__init__()
        self.sent: list[str] = []
        self.throttled: list[bool] = []
        self.closed = ""

    def send_text(self, text: str, **kwargs: Any) -> None:
        self.sent.append(text)

    def disconnect(self, reason: str = "") -> None:
        self.closed = reason

    def throttle_input(self, paused: bool) -> None:
        self.throttled.append(paused)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[tuple[float, Callable[[], None]]] = []

    def __call__(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        self.timers.append((self.now + delay, callback))

    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while True:
            due = sorted((t for t in self.timers if t[0] <= end), key=lambda t: t[0])
            if not due:
                break
            self.timers.remove(due[0])
            self.now = max(self.now, due[0][0])
            due[0][1]()
        self.now = end


def make_guard(**settings: Any) -> tuple[PortalGuard, Clock, list[tuple[str, list[Any]]],
                                          list[PortalSession]]:
    clock = Clock()
    forwarded: list[tuple[str, list[Any]]] = []
    sessions: list[PortalSession] = []
    guard = PortalGuard(PortalSettings(**settings),
                        lambda s, name, args, kwargs: forwarded.append((name, args)),
                        lambda: sessions, clock=clock, wall=clock, call_later=clock.call_later)
    return guard, clock, forwarded, sessions


def test_command_rate_delays_input_in_order_and_loses_none() -> None:
    guard, clock, forwarded, _ = make_guard(commands_per_second=10.0, command_burst=3)
    session = FakeSession()
    for n in range(10):
        guard.data_in(session, "text", [f"c{n}"], {})
    assert len(forwarded) == 3
    assert session.throttled == [True]
    assert any("faster than 10 a second" in t for t in session.sent)
    clock.advance(0.35)
    assert len(forwarded) == 6
    clock.advance(1.0)
    assert [args[0] for _, args in forwarded] == [f"c{n}" for n in range(10)]
    assert session.throttled == [True, False]


def test_refused_input_tells_the_player_and_is_not_forwarded() -> None:
    guard, _, forwarded, _ = make_guard()
    session = FakeSession()
    guard.data_in(session, "ping", [1 << 64], {})
    assert forwarded == [] and "64 bits" in session.sent[0]
    guard.data_in(session, "text", ["say \x1b[2Jhi |/x"], {})
    assert forwarded == [("text", ["say [2Jhi ||/x"])]


def test_sweep_closes_sessions_not_logged_in_in_time() -> None:
    guard, clock, _, sessions = make_guard(login_timeout=60.0)
    early, late, player = FakeSession(), FakeSession(), FakeSession()
    early.conn_time, late.conn_time, player.conn_time = 0.0, 50.0, 0.0
    player.logged_in = True
    sessions += [early, late, player]
    clock.now = 61.0
    guard.sweep()
    assert "did not log in within 60 seconds" in early.closed
    assert not late.closed and not player.closed


def test_one_players_output_failure_does_not_raise() -> None:
    class Broken(FakeSession):
        def send_default(self, cmdname: str, args: list[Any], kwargs: dict[str, Any]) -> None:
            raise LookupError("unknown encoding: idna")

    session = Broken()
    session.send_output("char_echo", [1], {})
    session.send_output("char_echo", [2], {})
    assert len(session.sent) == 2 and "could not be shown" in session.sent[0]


def test_a_rest_is_never_shorter_than_the_loop_s_timers_can_wait() -> None:
    """A rest under a millisecond fired at once and the connection asked again: a NUL
    flood resting 0.3 ms at a time spun the portal at 85% of a core."""
    from portal.guard import MIN_REST, WorkBudget

    budget = WorkBudget.full(0.05, 0.0, now=0.0)
    budget.spend(0.000015, 0.0)  # one slice of NULs: 15 µs, 0.3 ms of rest at 5%
    assert budget.delay(0.0) == MIN_REST >= 0.002
    assert budget.delay(0.0003) == MIN_REST  # still overdrawn a hair: still a whole rest
    assert budget.delay(0.000301) == 0.0


def test_work_budget_rests_a_connection_that_took_more_than_its_share() -> None:
    from portal.guard import WorkBudget

    budget = WorkBudget.full(0.05, 0.25, now=0.0)
    budget.spend(0.2, 0.0)
    assert budget.delay(0.0) == 0.0  # within the burst
    budget.spend(0.1, 0.0)
    assert budget.delay(0.0) == pytest.approx(1.0)  # 0.05 s overdrawn at 5% a second
    assert budget.delay(1.001) == 0.0
    unlimited = WorkBudget.full(0.0, 0.0, now=0.0)
    unlimited.spend(10.0, 0.0)
    assert unlimited.delay(0.0) == 0.0
