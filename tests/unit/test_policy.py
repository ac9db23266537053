"""Restart policy and heartbeat monitor, driven by a fake clock (plain floats)."""

from __future__ import annotations

import pytest

from supervisor.policy import (
    Decision,
    ExitKind,
    RestartPolicy,
    RestartSettings,
    backoff_delay,
    classify_exit,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def crash_n_times(policy: RestartPolicy, clock: FakeClock, n: int) -> list[Decision]:
    """Startup failures, each one second after the previous restart."""
    return [policy.on_exit(ExitKind.STARTUP_FAILURE, clock.advance(1.0)) for _ in range(n)]


# --- classification


@pytest.mark.parametrize(
    ("was_ready", "stop_requested", "killed_for_hang", "kind"),
    [
        (False, False, False, ExitKind.STARTUP_FAILURE),
        (True, False, False, ExitKind.CRASH),
        (True, True, False, ExitKind.REQUESTED),
        (False, True, False, ExitKind.REQUESTED),
        (True, False, True, ExitKind.HANG),
        (True, True, True, ExitKind.HANG),
    ],
)
def test_classify_exit(
    was_ready: bool, stop_requested: bool, killed_for_hang: bool, kind: ExitKind
) -> None:
    got = classify_exit(
        was_ready=was_ready, stop_requested=stop_requested, killed_for_hang=killed_for_hang
    )
    assert got is kind


# --- back-off


def test_backoff_sequence_first_restart_immediate_then_doubling_with_cap() -> None:
    settings = RestartSettings(crash_loop_limit=0)
    delays = [backoff_delay(settings, n) for n in range(1, 11)]
    assert delays == [0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_backoff_never_overflows() -> None:
    assert backoff_delay(RestartSettings(), 100_000) == 30.0


def test_policy_follows_the_sequence() -> None:
    clock, policy = FakeClock(), RestartPolicy(RestartSettings(crash_loop_limit=0))
    decisions = crash_n_times(policy, clock, 9)
    assert [d.action for d in decisions] == ["restart"] * 9
    assert [d.delay for d in decisions] == [0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert [d.failures for d in decisions] == list(range(1, 10))


def test_custom_settings() -> None:
    settings = RestartSettings(
        initial_backoff=1.0, backoff_base=1.0, backoff_factor=1.5, backoff_max=3.0
    )
    assert [backoff_delay(settings, n) for n in range(1, 6)] == [1.0, 1.0, 1.5, 2.25, 3.0]


@pytest.mark.parametrize(
    "bad",
    [
        {"backoff_factor": 0.5},
        {"backoff_max": -1.0},
        {"initial_backoff": -0.1},
        {"stable_after": -1.0},
        {"crash_loop_limit": -1},
    ],
)
def test_settings_reject_nonsense(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RestartSettings(**bad)  # type: ignore[arg-type]


# --- stability and crash loops


def test_stable_run_resets_the_streak() -> None:
    clock, policy = FakeClock(), RestartPolicy()
    crash_n_times(policy, clock, 3)
    policy.on_ready(clock.advance(1.0))
    decision = policy.on_exit(ExitKind.CRASH, clock.advance(30.0))
    assert decision == Decision(
        action="restart", delay=0.0, failures=1, reason="crash (failure 1/5); restart in 0s"
    )


def test_short_run_after_ready_keeps_the_streak() -> None:
    clock, policy = FakeClock(), RestartPolicy()
    crash_n_times(policy, clock, 2)
    policy.on_ready(clock.advance(1.0))
    decision = policy.on_exit(ExitKind.CRASH, clock.advance(29.9))
    assert (decision.action, decision.failures, decision.delay) == ("restart", 3, 1.0)


def test_uptime_counts_from_ready_not_from_spawn() -> None:
    clock, policy = FakeClock(), RestartPolicy()
    crash_n_times(policy, clock, 2)
    clock.advance(100.0)  # a long startup does not count as a stable run
    policy.on_ready(clock.now)
    assert policy.on_exit(ExitKind.HANG, clock.advance(1.0)).failures == 3


def test_crash_loop_limit_gives_up_and_stays_given_up() -> None:
    clock, policy = FakeClock(), RestartPolicy(RestartSettings(crash_loop_limit=3))
    first, second, third = crash_n_times(policy, clock, 3)
    assert (first.action, second.action) == ("restart", "restart")
    assert third.action == "give_up"
    assert third.failures == 3
    assert "3 consecutive failures" in third.reason
    assert policy.gave_up
    assert policy.on_exit(ExitKind.CRASH, clock.advance(100.0)).action == "give_up"


def test_reset_clears_a_give_up() -> None:
    clock, policy = FakeClock(), RestartPolicy(RestartSettings(crash_loop_limit=2))
    assert crash_n_times(policy, clock, 2)[-1].action == "give_up"
    policy.reset()
    assert not policy.gave_up
    decision = policy.on_exit(ExitKind.STARTUP_FAILURE, clock.advance(1.0))
    assert (decision.action, decision.failures, decision.delay) == ("restart", 1, 0.0)


def test_limit_zero_never_gives_up() -> None:
    clock, policy = FakeClock(), RestartPolicy(RestartSettings(crash_loop_limit=0))
    decisions = crash_n_times(policy, clock, 1000)
    assert {d.action for d in decisions} == {"restart"}
    assert decisions[-1].failures == 1000
    assert decisions[-1].delay == 30.0
    assert decisions[-1].reason == "startup failure (failure 1000); restart in 30s"


def test_requested_stop_is_not_a_failure() -> None:
    clock, policy = FakeClock(), RestartPolicy(RestartSettings(crash_loop_limit=2))
    crash_n_times(policy, clock, 1)
    policy.on_ready(clock.advance(1.0))
    decision = policy.on_exit(ExitKind.REQUESTED, clock.advance(1.0))
    assert (decision.action, decision.failures) == ("none", 1)
    assert not policy.gave_up


def test_requested_stop_after_stable_run_clears_the_streak() -> None:
    clock, policy = FakeClock(), RestartPolicy()
    crash_n_times(policy, clock, 4)
    policy.on_ready(clock.advance(1.0))
    assert policy.on_exit(ExitKind.REQUESTED, clock.advance(60.0)).failures == 0


def test_ready_is_forgotten_at_exit() -> None:
    clock, policy = FakeClock(), RestartPolicy()
    policy.on_ready(clock.now)
    policy.on_exit(ExitKind.CRASH, clock.advance(1.0))
    # The next run never became ready: its long life is not a stable run.
    assert policy.on_exit(ExitKind.STARTUP_FAILURE, clock.advance(100.0)).failures == 2
