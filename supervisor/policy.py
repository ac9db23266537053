"""Restart, back-off and crash-loop decisions, pure over ``now`` (a missed heartbeat is
seen by `ipc.connection`'s timeout and classified here as a hang).

Nothing here reads a clock, sleeps or touches a process: the supervisor passes
the (monotonic) time in and carries out the `Decision` it gets back. Tests
drive these classes with plain floats.

How a restart is decided
------------------------

Every exit is first classified (`classify_exit`). A `REQUESTED
<ExitKind.REQUESTED>` exit is never restarted and never counts as a failure.
Every other kind (a startup failure before the ready handshake, a crash after
it, a kill for missed heartbeats) is a *failure*, and failures are counted
while they are *consecutive*. A run that stayed up for
`RestartSettings.stable_after` seconds after its ready handshake breaks the
streak: the count starts again from zero, so a server that crashes once a day
is restarted at once, every time, forever.

The delay before restart ``n`` of a streak (``n`` = 1, 2, ...) is
``initial_backoff`` for the first one, then
``backoff_base * backoff_factor ** (n - 2)`` capped at ``backoff_max``. With the
defaults: 0, 0.5, 1, 2, 4, 8, 16, 30, 30, ... seconds.

When the streak reaches `RestartSettings.crash_loop_limit` failures the policy
gives up and stays given up until `RestartPolicy.reset`. A limit of 0 never
gives up. There is deliberately no separate time window: "consecutive,
unless separated by a stable run" already is the window, and it is one number
fewer to explain.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

import msgspec

__all__ = [
    "Action",
    "Decision",
    "ExitKind",
    "RestartPolicy",
    "RestartSettings",
    "backoff_delay",
    "classify_exit",
]


class ExitKind(StrEnum):
    STARTUP_FAILURE = "startup_failure"
    """Exited before the ready handshake."""
    CRASH = "crash"
    """Exited after the ready handshake without being asked to."""
    REQUESTED = "requested"
    """We asked it to stop (operator stop, restart or reload)."""
    HANG = "hang"
    """We killed it because it missed its heartbeats."""


def classify_exit(*, was_ready: bool, stop_requested: bool, killed_for_hang: bool) -> ExitKind:
    """Name the kind of an exit.

    A kill for a hang wins over a pending stop request, because the child did
    not stop when asked; a requested stop wins over readiness.
    """
    if killed_for_hang:
        return ExitKind.HANG
    if stop_requested:
        return ExitKind.REQUESTED
    return ExitKind.CRASH if was_ready else ExitKind.STARTUP_FAILURE


class RestartSettings(msgspec.Struct, frozen=True, kw_only=True):
    """How eagerly a child is restarted; all times in seconds."""

    initial_backoff: float = 0.0
    """Delay before the first restart of a streak (0: immediately)."""
    backoff_base: float = 0.5
    """Delay before the second restart of a streak."""
    backoff_factor: float = 2.0
    """Each further restart waits this many times longer (at least 1)."""
    backoff_max: float = 30.0
    """Cap on the delay."""
    stable_after: float = 30.0
    """Uptime after the ready handshake that ends a failure streak."""
    crash_loop_limit: int = 5
    """Give up after this many consecutive failures; 0 never gives up."""

    def __post_init__(self) -> None:
        for name in ("initial_backoff", "backoff_base", "backoff_max", "stable_after"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.backoff_factor < 1:
            raise ValueError("backoff_factor must be at least 1")
        if self.crash_loop_limit < 0:
            raise ValueError("crash_loop_limit must not be negative (0 = never give up)")


def backoff_delay(settings: RestartSettings, failures: int) -> float:
    """Seconds to wait before restarting after the ``failures``-th failure in a row."""
    if failures <= 1:
        return settings.initial_backoff
    try:
        delay = settings.backoff_base * settings.backoff_factor ** (failures - 2)
    except OverflowError:  # a never-give-up child deep into its streak
        return settings.backoff_max
    return min(delay, settings.backoff_max)


Action = Literal["restart", "give_up", "none"]


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    """What to do about an exit.

    ``restart``: start the child again after ``delay`` seconds. ``give_up``:
    leave it stopped (lifecycle ``GIVE_UP``) until reset. ``none``: nothing to
    do (the stop was requested). ``failures`` is the current streak length.
    """

    action: Action
    delay: float
    failures: int
    reason: str


class RestartPolicy:
    """The restart policy of one child; see the module docstring.

    Call `on_ready` when the child completes its ready handshake and `on_exit`
    when it ends; carry out the returned `Decision`.
    """

    def __init__(self, settings: RestartSettings | None = None) -> None:
        self.settings = settings if settings is not None else RestartSettings()
        self.failures = 0
        self.gave_up = False
        self._ready_at: float | None = None

    def on_ready(self, now: float) -> None:
        """The child completed its ready handshake at ``now``."""
        self._ready_at = now

    def on_exit(self, kind: ExitKind, now: float) -> Decision:
        """The child ended at ``now``; decide whether and when to restart it."""
        if self._ran_stable(now):
            self.failures = 0
        self._ready_at = None
        if kind is ExitKind.REQUESTED:
            return Decision(action="none", delay=0.0, failures=self.failures, reason="stopped")
        if self.gave_up:
            return self._give_up_decision()
        self.failures += 1
        limit = self.settings.crash_loop_limit
        if limit and self.failures >= limit:
            self.gave_up = True
            return self._give_up_decision()
        delay = backoff_delay(self.settings, self.failures)
        reason = f"{kind.replace('_', ' ')} ({self._streak()}); restart in {delay:g}s"
        return Decision(action="restart", delay=delay, failures=self.failures, reason=reason)

    def reset(self) -> None:
        """Forget the failure streak and a give-up, e.g. after a good reload."""
        self.failures = 0
        self.gave_up = False

    def _ran_stable(self, now: float) -> bool:
        ready_at = self._ready_at
        return ready_at is not None and now - ready_at >= self.settings.stable_after

    def _streak(self) -> str:
        limit = self.settings.crash_loop_limit
        return f"failure {self.failures}/{limit}" if limit else f"failure {self.failures}"

    def _give_up_decision(self) -> Decision:
        reason = f"crash loop: {self.failures} consecutive failures, giving up"
        return Decision(action="give_up", delay=0.0, failures=self.failures, reason=reason)
