"""Login protection: the policy on a fake clock, and the asyncio front's fair queue."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipc.settings import LoginSettings, ServerSettings
from server.accounts import AccountError, AccountStore, ScryptCost
from server.logins import (
    CreationLimit,
    FairQueue,
    LoginGuard,
    LoginRefused,
    Logins,
    Throttle,
    Why,
)
from server.store import open_database

LOW = ScryptCost(n=1024)
SMALL = LoginSettings(free_failures=2, delay=1.0, delay_max=4.0, lockout_after=6,
                      account_lockout_after=8, lockout=60.0, forget_after=600.0,
                      creations_per_address=2, creation_window=100.0,
                      queue_per_address=3, queue_total=5)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_waits_grow_from_delay_to_delay_max_then_lock_out() -> None:
    throttle = Throttle(SMALL, SMALL.lockout_after, Why.ADDRESS_DELAY, Why.ADDRESS_LOCKOUT)
    assert [throttle.wait_after(n) for n in range(1, 9)] == [
        0.0, 0.0, 1.0, 2.0, 4.0, 60.0, 60.0, 60.0]


def test_a_key_is_refused_until_its_wait_is_over_and_forgotten_when_quiet() -> None:
    clock = FakeClock()
    throttle = Throttle(SMALL, SMALL.lockout_after, Why.ADDRESS_DELAY, Why.ADDRESS_LOCKOUT)
    for _ in range(3):
        assert throttle.blocked("1.2.3.4", clock.now) is None
        throttle.fail("1.2.3.4", clock.now)
    refusal = throttle.blocked("1.2.3.4", clock.now)
    assert refusal is not None and refusal.why is Why.ADDRESS_DELAY
    assert refusal.retry_after == 1.0 and "wait 1 second" in refusal.message
    assert throttle.blocked("5.6.7.8", clock.now) is None  # other keys are not touched
    clock.advance(1.0)
    assert throttle.blocked("1.2.3.4", clock.now) is None
    for _ in range(3):
        throttle.fail("1.2.3.4", clock.now)
    refusal = throttle.blocked("1.2.3.4", clock.now)
    assert refusal is not None and refusal.why is Why.ADDRESS_LOCKOUT
    assert "locked for 60 seconds" in refusal.message
    clock.advance(60.0)
    assert throttle.blocked("1.2.3.4", clock.now) is None
    throttle.fail("1.2.3.4", clock.now)  # still counted: locked again at once
    assert throttle.blocked("1.2.3.4", clock.now) is not None
    clock.advance(SMALL.forget_after + 60.0)
    assert throttle.failures("1.2.3.4", clock.now) == 0


def test_memory_is_bounded_however_many_keys_fail() -> None:
    throttle = Throttle(SMALL, SMALL.lockout_after, Why.ADDRESS_DELAY, Why.ADDRESS_LOCKOUT,
                        max_keys=100)
    for n in range(1000):
        throttle.fail(f"name{n}", 0.0)
    assert len(throttle) == 100
    throttle.fail("late", SMALL.forget_after + 1.0)  # every old key is now forgotten
    assert len(throttle) == 1


def test_account_lockout_spares_an_address_that_logged_in_to_it() -> None:
    clock = FakeClock()
    guard = LoginGuard(SMALL)
    guard.login_succeeded("alice", "10.0.0.1", clock.now)
    for n in range(SMALL.account_lockout_after):  # a spray from many addresses at alice
        guard.login_failed("Alice", f"10.9.0.{n}", clock.now)
    refused = guard.check_login("alice", "10.0.0.2", clock.now)
    assert refused is not None and refused.why is Why.ACCOUNT_LOCKOUT
    assert guard.check_login("ALICE", "10.0.0.1", clock.now) is None  # her own address
    # an unknown name is counted (and refused) the same way: no hint that it exists
    for _ in range(SMALL.account_lockout_after):
        guard.login_failed("nosuch", "10.0.0.3", clock.now)
    clock.advance(SMALL.lockout + 1)
    for n in range(SMALL.account_lockout_after):
        guard.login_failed("nosuch", f"10.8.0.{n}", clock.now)
    refused = guard.check_login("nosuch", "10.0.0.4", clock.now)
    assert refused is not None and refused.why is Why.ACCOUNT_LOCKOUT


def test_creations_per_address_per_window() -> None:
    limit = CreationLimit(2, 100.0)
    limit.created("a", 0.0)
    limit.created("a", 10.0)
    refused = limit.blocked("a", 20.0)
    assert refused is not None and refused.why is Why.CREATIONS
    assert refused.retry_after == 80.0
    assert limit.blocked("b", 20.0) is None
    assert limit.blocked("a", 100.0) is None  # the first has left the window


def test_fair_queue_serves_keys_round_robin() -> None:
    queue: FairQueue[str] = FairQueue()
    for n in range(5):
        queue.push("attacker", f"a{n}")
    queue.push("player", "p0")
    queue.push("other", "o0")
    order = [queue.pop() for _ in range(7)]
    assert order == ["a0", "p0", "o0", "a1", "a2", "a3", "a4"]
    assert queue.pop() is None and len(queue) == 0


def test_admission_is_bounded_per_address_and_in_all() -> None:
    guard = LoginGuard(SMALL)
    assert [guard.enter("a") for _ in range(3)] == [None] * 3
    refused = guard.enter("a")
    assert refused is not None and refused.why is Why.QUEUE_FULL
    assert guard.enter("b") is None and guard.enter("c") is None
    refused = guard.enter("d")
    assert refused is not None and refused.why is Why.BUSY
    guard.leave("a")
    assert guard.enter("d") is None


def test_login_settings_are_validated_with_the_key_named() -> None:
    with pytest.raises(msgspec.ValidationError, match="lockout_after"):
        msgspec.convert({"logins": {"free_failures": 5, "lockout_after": 5}}, ServerSettings)
    with pytest.raises(msgspec.ValidationError, match="multisession"):
        msgspec.convert({"multisession": "twice"}, ServerSettings)


# ---------------------------------------------------------------- the asyncio front


class GatedStore(AccountStore):
    """Hashes only when the test lets one through, and records whose hash ran."""

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(open_database(tmp_path / "game.db"), cost=LOW)
        self.order: list[str] = []
        self.gate = asyncio.Semaphore(0)

    def let_through(self, count: int) -> None:
        for _ in range(count):
            self.gate.release()

    async def hash(self, password: str, salt: bytes, cost: ScryptCost) -> bytes:
        await self.gate.acquire()
        self.order.append(password)
        return await super().hash(password, salt, cost)


def test_guesses_from_one_address_are_refused_without_hashing(tmp_path: Path) -> None:
    async def scenario() -> None:
        clock = FakeClock()
        store = AccountStore(open_database(tmp_path / "game.db"), cost=LOW)
        logins = Logins(store, SMALL, clock=clock)
        await logins.create_account("alice", "secret1", "10.0.0.1")
        answers: list[str] = []
        for n in range(500):
            try:
                await logins.check_password("alice", f"guess{n}", "10.6.6.6")
            except AccountError as exc:
                answers.append(str(exc))
            clock.advance(0.05)  # 20 guesses a second, 25 s in all
        checked = answers.count("Wrong name or password.")
        assert checked == SMALL.lockout_after, answers[:12]
        assert "locked" in answers[-1]
        with pytest.raises(LoginRefused):  # even the right password, from that address
            await logins.check_password("alice", "secret1", "10.6.6.6")
        assert (await logins.check_password("alice", "secret1", "10.0.0.1")).name == "alice"
        store.close()

    asyncio.run(scenario())


def test_creations_and_taken_names_are_limited_per_address(tmp_path: Path) -> None:
    async def scenario() -> None:
        clock = FakeClock()
        store = AccountStore(open_database(tmp_path / "game.db"), cost=LOW)
        logins = Logins(store, SMALL, clock=clock)
        await logins.create_account("one", "secret1", "10.0.0.1")
        await logins.create_account("two", "secret1", "10.0.0.1")
        with pytest.raises(LoginRefused, match="Too many accounts"):
            await logins.create_account("three", "secret1", "10.0.0.1")
        await logins.create_account("three", "secret1", "10.0.0.2")
        for name in ("one", "two", "three"):  # probing taken names counts as failures
            with pytest.raises(AccountError, match="taken"):
                logins.check_new_account(name, "10.0.0.3")
        with pytest.raises(LoginRefused, match="failed logins from your address"):
            logins.check_new_account("four", "10.0.0.3")
        store.close()

    asyncio.run(scenario())


def test_one_address_flooding_delays_another_by_at_most_one_hash(tmp_path: Path) -> None:
    async def scenario() -> None:
        settings = msgspec.structs.replace(SMALL, free_failures=100, lockout_after=200,
                                           account_lockout_after=200, queue_per_address=50,
                                           queue_total=100)
        store = GatedStore(tmp_path)
        logins = Logins(store, settings, workers=1, clock=FakeClock())
        flood = [asyncio.ensure_future(logins.check_password("victim", f"a{n}", "10.6.6.6"))
                 for n in range(20)]
        await asyncio.sleep(0)
        player = asyncio.ensure_future(logins.check_password("bob", "p0", "10.0.0.2"))
        await asyncio.sleep(0)
        store.let_through(30)
        await asyncio.gather(*flood, player, return_exceptions=True)
        assert store.order.index("p0") <= 2, store.order
        assert logins.queued() == 0
        store.close()

    asyncio.run(scenario())


def test_a_cancelled_login_leaves_the_queue_and_its_slot(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = GatedStore(tmp_path)
        logins = Logins(store, SMALL, workers=1, clock=FakeClock())
        first = asyncio.ensure_future(logins.check_password("x", "first", "10.0.0.1"))
        second = asyncio.ensure_future(logins.check_password("x", "second", "10.0.0.1"))
        await asyncio.sleep(0)
        second.cancel()
        store.let_through(5)
        with pytest.raises(AccountError):
            await first
        assert store.order == ["first"]
        assert logins.guard.enter("10.0.0.1") is None  # the cancelled one left its slot
        store.close()

    asyncio.run(scenario())


# ---------------------------------------------------------------- properties


@given(st.lists(st.tuples(st.sampled_from("abcd"), st.floats(0, 5)), max_size=300))
def test_a_key_never_gets_more_checks_than_the_lockouts_allow(
        attempts: list[tuple[str, float]]) -> None:
    """Whatever the pace, a key that fails every check gets at most `lockout_after`
    checks, then one per `lockout` (no quiet gap here is long enough to be forgotten)."""
    throttle = Throttle(SMALL, SMALL.lockout_after, Why.ADDRESS_DELAY, Why.ADDRESS_LOCKOUT)
    now, checked = 0.0, {key: 0 for key in "abcd"}
    for key, wait in attempts:
        now += wait
        if throttle.blocked(key, now) is None:
            checked[key] += 1
            throttle.fail(key, now)
    for count in checked.values():
        assert count <= SMALL.lockout_after + now / SMALL.lockout + 1


@given(st.lists(st.sampled_from("abcde"), max_size=200))
def test_fair_queue_serves_the_nth_item_of_every_key_before_any_n_plus_first(
        keys: list[str]) -> None:
    queue: FairQueue[tuple[str, int]] = FairQueue()
    counts: dict[str, int] = {}
    for key in keys:
        queue.push(key, (key, counts.get(key, 0)))
        counts[key] = counts.get(key, 0) + 1
    order = [queue.pop() for _ in keys]
    assert queue.pop() is None
    ranks = [item[1] for item in order if item is not None]
    assert ranks == sorted(ranks)  # round n of every key before round n + 1 of any
    for key in counts:
        assert [n for k, n in order if k == key] == list(range(counts[key]))  # type: ignore[misc]


def test_unlimited_addresses_skip_the_per_address_limits_only() -> None:
    """Issue 21, item 5: loopback (by default) is not held to the per-address limits, as
    the portal's connection limits do; the per-name throttle still counts it."""
    guard = LoginGuard(SMALL, ["127.0.0.0/8", "::1/128"])
    now = 0.0
    for n in range(SMALL.lockout_after + 2):
        guard.login_failed(f"typo{n}", "127.0.0.1", now)
        guard.created("::ffff:127.0.0.1", now)
        assert guard.check_login(f"other{n}", "127.0.0.1", now) is None
        assert guard.check_create("::ffff:127.0.0.1", now) is None
    assert [guard.enter("::1") for _ in range(SMALL.queue_per_address + 1)] == [None] * 4
    for _ in range(SMALL.account_lockout_after):
        guard.login_failed("alice", "127.0.0.1", now)
    refused = guard.check_login("alice", "127.0.0.1", now)
    assert refused is not None and refused.why is Why.ACCOUNT_LOCKOUT
    for _ in range(SMALL.creations_per_address):  # everyone else keeps the limits
        guard.created("10.0.0.1", now)
    refused = guard.check_create("10.0.0.1", now)
    assert refused is not None and refused.why is Why.CREATIONS
