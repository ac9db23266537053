"""The child lifecycle table: legal paths, illegal transitions, history."""

from __future__ import annotations

import itertools

import pytest

from supervisor.lifecycle import TRANSITIONS, Event, Lifecycle, LocalProtocolError, State


def drive(*events: Event, start: State = State.STOPPED) -> Lifecycle:
    lifecycle = Lifecycle(start)
    for event in events:
        lifecycle.handle(event)
    return lifecycle


def test_starts_stopped() -> None:
    assert Lifecycle().state is State.STOPPED


def test_running_means_the_ready_handshake() -> None:
    lifecycle = drive(Event.SPAWN)
    assert lifecycle.state is State.STARTING
    assert lifecycle.handle(Event.READY) is State.RUNNING


def test_exit_before_ready_backs_off_then_restarts() -> None:
    lifecycle = drive(Event.SPAWN, Event.EXIT)
    assert lifecycle.state is State.BACKOFF
    assert lifecycle.handle(Event.BACKOFF_ELAPSED) is State.STARTING


def test_exit_after_ready_is_exited_then_respawned() -> None:
    lifecycle = drive(Event.SPAWN, Event.READY, Event.EXIT)
    assert lifecycle.state is State.EXITED
    assert lifecycle.handle(Event.SPAWN) is State.STARTING


@pytest.mark.parametrize(
    "waiting", [(Event.SPAWN, Event.EXIT), (Event.SPAWN, Event.READY, Event.EXIT)]
)
def test_give_up_is_fatal_until_reset(waiting: tuple[Event, ...]) -> None:
    lifecycle = drive(*waiting, Event.GIVE_UP)
    assert lifecycle.state is State.FATAL
    for event in (Event.SPAWN, Event.BACKOFF_ELAPSED, Event.READY, Event.EXIT):
        with pytest.raises(LocalProtocolError):
            lifecycle.handle(event)
    assert lifecycle.handle(Event.RESET) is State.STOPPED
    assert lifecycle.handle(Event.SPAWN) is State.STARTING


@pytest.mark.parametrize("before", [(Event.SPAWN,), (Event.SPAWN, Event.READY)])
def test_stop_with_a_live_process_waits_for_its_exit(before: tuple[Event, ...]) -> None:
    lifecycle = drive(*before, Event.STOP_REQUESTED)
    assert lifecycle.state is State.STOPPING
    assert lifecycle.handle(Event.READY) is State.STOPPING  # handshake crossed the signal
    assert lifecycle.handle(Event.STOP_REQUESTED) is State.STOPPING
    assert lifecycle.handle(Event.EXIT) is State.STOPPED


@pytest.mark.parametrize(
    "before", [(Event.SPAWN, Event.EXIT), (Event.SPAWN, Event.READY, Event.EXIT)]
)
def test_stop_without_a_process_cancels_the_restart(before: tuple[Event, ...]) -> None:
    assert drive(*before, Event.STOP_REQUESTED).state is State.STOPPED


@pytest.mark.parametrize("state", list(State))
def test_stop_is_accepted_in_every_state(state: State) -> None:
    assert Lifecycle(state).can_handle(Event.STOP_REQUESTED)


@pytest.mark.parametrize(
    ("state", "event"),
    [
        (State.STOPPED, Event.READY),
        (State.STOPPED, Event.EXIT),
        (State.RUNNING, Event.READY),
        (State.RUNNING, Event.SPAWN),
        (State.STARTING, Event.SPAWN),
        (State.BACKOFF, Event.SPAWN),
        (State.STOPPING, Event.SPAWN),
        (State.RUNNING, Event.RESET),
        (State.RUNNING, Event.GIVE_UP),
    ],
)
def test_illegal_transition_raises_and_changes_nothing(state: State, event: Event) -> None:
    lifecycle = Lifecycle(state)
    assert not lifecycle.can_handle(event)
    with pytest.raises(LocalProtocolError, match=f"{event}.*{state}"):
        lifecycle.handle(event, now=1.0)
    assert lifecycle.state is state
    assert not lifecycle.history


def test_table_agrees_with_can_handle() -> None:
    for state, event in itertools.product(State, Event):
        assert Lifecycle(state).can_handle(event) == ((state, event) in TRANSITIONS)


def test_every_state_is_reachable_from_stopped() -> None:
    seen, frontier = {State.STOPPED}, [State.STOPPED]
    while frontier:
        source = frontier.pop()
        for (state, _), target in TRANSITIONS.items():
            if state is source and target not in seen:
                seen.add(target)
                frontier.append(target)
    assert seen == set(State)


def test_history_only_with_a_clock_and_bounded() -> None:
    lifecycle = Lifecycle(history_size=2)
    lifecycle.handle(Event.SPAWN)
    assert not lifecycle.history
    lifecycle.handle(Event.READY, now=10.0)
    lifecycle.handle(Event.EXIT, now=11.0)
    lifecycle.handle(Event.SPAWN, now=12.0)
    assert [(t.at, t.source, t.event, t.target) for t in lifecycle.history] == [
        (11.0, State.RUNNING, Event.EXIT, State.EXITED),
        (12.0, State.EXITED, Event.SPAWN, State.STARTING),
    ]
