"""The lifecycle of one supervised child, as a transition table.

Theory of operation
-------------------

Each child the supervisor runs has one `Lifecycle`. It knows nothing about
processes, signals or time: the supervisor observes something (it spawned the
child, the child finished the ready handshake, ``waitpid`` reported an exit, a
back-off timer fired, the operator asked for a stop) and tells the lifecycle
with `Lifecycle.handle`. The lifecycle answers with the new state, or raises
`LocalProtocolError` when the event makes no sense in the current state. Such
an error is always a bug in the supervisor, never bad input from the child:
input from the child (a late or duplicate handshake) must be checked with
`Lifecycle.can_handle` before it is turned into an event.

The states follow supervisord's ``docs/subprocess.rst``::

    STOPPED ──SPAWN──▶ STARTING ──READY──▶ RUNNING
                        │    ▲                │
                   EXIT │    │ BACKOFF_       │ EXIT
                        ▼    │ ELAPSED        ▼
                       BACKOFF             EXITED ──SPAWN──▶ STARTING
                        │                     │
                        └──GIVE_UP──▶ FATAL ◀─┘ GIVE_UP
                                        │
                                        └──RESET──▶ STOPPED

    STARTING, RUNNING ──STOP_REQUESTED──▶ STOPPING ──EXIT──▶ STOPPED
    BACKOFF, EXITED   ──STOP_REQUESTED──▶ STOPPED

* ``RUNNING`` means the child completed the ready handshake, not that it
  stayed up for some number of seconds. A child that exits before that is a
  startup failure and goes to ``BACKOFF``; a child that exits after it goes to
  ``EXITED``. Both wait there until the restart policy (`supervisor.policy`)
  decides: restart (``BACKOFF_ELAPSED`` or ``SPAWN`` once its delay has
  passed) or give up (``GIVE_UP`` to ``FATAL``).
* ``FATAL`` is left only by ``RESET`` (to ``STOPPED``), so that retrying a
  child that crash-looped is always an explicit decision.
* ``STOP_REQUESTED`` is accepted in every state, because an operator's stop
  must always win: with a live process it leads to ``STOPPING`` (the process
  is then signalled and its ``EXIT`` ends in ``STOPPED``); without one it goes
  straight to ``STOPPED`` and cancels a pending restart. In ``STOPPED``,
  ``STOPPING`` and ``FATAL`` it changes nothing.
* ``READY`` while ``STOPPING`` is a race (the handshake crossed our stop
  signal) and is ignored.

The table is the single source of truth; there is no other branching on
state in this module.
"""

from __future__ import annotations

from collections import deque
from enum import StrEnum

import msgspec

__all__ = [
    "TRANSITIONS",
    "Event",
    "Lifecycle",
    "LocalProtocolError",
    "State",
    "Transition",
]


class LocalProtocolError(Exception):
    """The supervisor fed its own state machine an event that is illegal now.

    This is a bug in the caller, not a misbehaving child (compare h11's
    ``LocalProtocolError`` and ``RemoteProtocolError``).
    """


class State(StrEnum):
    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    BACKOFF = "backoff"
    STOPPING = "stopping"
    EXITED = "exited"
    FATAL = "fatal"


class Event(StrEnum):
    SPAWN = "spawn"
    """The process was started (or a start was attempted)."""
    READY = "ready"
    """The child completed the ready handshake."""
    EXIT = "exit"
    """The process ended, for whatever reason."""
    STOP_REQUESTED = "stop_requested"
    """The operator or the supervisor itself wants the child stopped."""
    BACKOFF_ELAPSED = "backoff_elapsed"
    """The back-off delay after a startup failure has passed."""
    GIVE_UP = "give_up"
    """The restart policy decided not to try again."""
    RESET = "reset"
    """Clear a fatal state, e.g. before retrying after a good reload."""


S, E = State, Event

TRANSITIONS: dict[tuple[State, Event], State] = {
    # start
    (S.STOPPED, E.SPAWN): S.STARTING,
    (S.STARTING, E.READY): S.RUNNING,
    # exits
    (S.STARTING, E.EXIT): S.BACKOFF,
    (S.RUNNING, E.EXIT): S.EXITED,
    (S.STOPPING, E.EXIT): S.STOPPED,
    # restart or give up
    (S.BACKOFF, E.BACKOFF_ELAPSED): S.STARTING,
    (S.EXITED, E.SPAWN): S.STARTING,
    (S.BACKOFF, E.GIVE_UP): S.FATAL,
    (S.EXITED, E.GIVE_UP): S.FATAL,
    (S.FATAL, E.RESET): S.STOPPED,
    # stop always wins
    (S.STARTING, E.STOP_REQUESTED): S.STOPPING,
    (S.RUNNING, E.STOP_REQUESTED): S.STOPPING,
    (S.BACKOFF, E.STOP_REQUESTED): S.STOPPED,
    (S.EXITED, E.STOP_REQUESTED): S.STOPPED,
    (S.STOPPED, E.STOP_REQUESTED): S.STOPPED,
    (S.STOPPING, E.STOP_REQUESTED): S.STOPPING,
    (S.FATAL, E.STOP_REQUESTED): S.FATAL,
    # the handshake crossed our stop signal
    (S.STOPPING, E.READY): S.STOPPING,
}

del S, E


class Transition(msgspec.Struct, frozen=True, kw_only=True):
    """One recorded step: at time ``at``, ``event`` took ``source`` to ``target``."""

    at: float
    source: State
    event: Event
    target: State


class Lifecycle:
    """The state of one child; advance it with `handle`."""

    def __init__(self, state: State = State.STOPPED, *, history_size: int = 32) -> None:
        self.state = state
        self.history: deque[Transition] = deque(maxlen=history_size)

    def can_handle(self, event: Event) -> bool:
        """Whether `handle` would accept ``event`` in the current state."""
        return (self.state, event) in TRANSITIONS

    def handle(self, event: Event, now: float | None = None) -> State:
        """Apply ``event`` and return the new state.

        Raises `LocalProtocolError` (and changes nothing) if the event is
        illegal in the current state. When ``now`` is given the step is
        appended to `history`; the clock is the caller's, never read here.
        """
        source = self.state
        try:
            target = TRANSITIONS[source, event]
        except KeyError:
            raise LocalProtocolError(f"can't handle {event} in state {source}") from None
        self.state = target
        if now is not None:
            self.history.append(Transition(at=now, source=source, event=event, target=target))
        return target
