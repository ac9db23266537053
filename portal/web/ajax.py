"""Evennia's ajax (COMET) transport: form parsing and the long-poll state, sans-I/O.

Theory of operation
-------------------
A browser without a websocket POSTs form fields to `/webclientdata`: `mode=init` opens a
session, `input` carries one `data` JSON array, `receive` is a long poll, `keepalive`
answers our keepalive, `close` ends the session. Output for the session is queued here
(bounded in bytes: past `max_queued` the session is cut off, as a telnet client that
stops reading is); a poll is answered as soon as output exists, else it is held. A held
poll is answered with `["ajax_keepalive", [], {}]` after `keepalive` seconds, before any
client or proxy times it out, and the client answers with `mode=keepalive`. A channel
that has seen no request for `linger` seconds belongs to a browser that went away.

One poll at a time: a new poll answers the held one with a keepalive (it belonged to a
page that timed out or was refreshed) and takes its place. Evennia's client takes one
message per poll; our page asks for all of them (`batch=1`, a JSON array of messages).

The clock is injected: every method that depends on time takes `now`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from typing import Final
from urllib.parse import parse_qs

MODES: Final = frozenset({"init", "input", "receive", "keepalive", "close"})
KEEPALIVE: Final = '["ajax_keepalive", [], {}]'
MAX_FIELD: Final = 64  # csessid, cuid, browser


@dataclass(frozen=True, slots=True)
class AjaxRequest:
    mode: str
    csessid: str
    cuid: str
    browser: str
    data: str  # the JSON array of `input` ('' for the other modes)
    batch: bool  # answer polls with every queued message (our page) or one (Evennia's)


def parse_form(body: bytes) -> AjaxRequest | str:
    """The request in a form-encoded body, or a string saying what is wrong with it."""
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=16)
    except (UnicodeDecodeError, ValueError) as exc:
        return f"not a form: {exc}"

    def one(name: str, limit: int = MAX_FIELD) -> str:
        values = fields.get(name) or [""]
        return values[0][:limit]

    mode = one("mode")
    if mode not in MODES:
        return f"unknown mode {mode!r}"
    return AjaxRequest(mode=mode, csessid=one("csessid"), cuid=one("cuid"),
                       browser=one("browserstr"), data=one("data", len(body)),
                       batch=one("batch") == "1")


class PollState(StrEnum):
    IDLE = "idle"  # no poll held
    HELD = "held"  # a poll waits for output or its keepalive
    CLOSED = "closed"


class PollEvent(StrEnum):
    POLL = "poll"
    ANSWER = "answer"  # output or keepalive answered the held poll
    POLL_LOST = "poll_lost"  # the connection holding the poll closed
    CLOSE = "close"


TRANSITIONS: Final[dict[tuple[PollState, PollEvent], PollState]] = {
    (PollState.IDLE, PollEvent.POLL): PollState.HELD,
    (PollState.HELD, PollEvent.POLL): PollState.HELD,
    (PollState.HELD, PollEvent.ANSWER): PollState.IDLE,
    (PollState.HELD, PollEvent.POLL_LOST): PollState.IDLE,
    (PollState.IDLE, PollEvent.POLL_LOST): PollState.IDLE,
    (PollState.IDLE, PollEvent.CLOSE): PollState.CLOSED,
    (PollState.HELD, PollEvent.CLOSE): PollState.CLOSED,
    (PollState.CLOSED, PollEvent.CLOSE): PollState.CLOSED,
}


class AjaxChannel:
    """The output queue and poll state of one ajax session."""

    def __init__(self, now: float, *, keepalive: float, max_queued: int) -> None:
        self.state = PollState.IDLE
        self.keepalive = keepalive
        self.max_queued = max_queued
        self.queue: deque[str] = deque()
        self.queued_bytes = 0
        self.last_seen = now
        self.held_since = 0.0
        self.batch = False

    def _to(self, event: PollEvent) -> None:
        self.state = TRANSITIONS[(self.state, event)]

    def seen(self, now: float) -> None:
        """Any request of this session arrived."""
        self.last_seen = now

    def push(self, message: str) -> bool:
        """Queue one message; False when the queue is over its limit (cut the client off)."""
        if self.state is PollState.CLOSED:
            return True
        self.queue.append(message)
        self.queued_bytes += len(message)
        return self.queued_bytes <= self.max_queued

    def poll(self, now: float, *, batch: bool) -> tuple[str | None, str | None]:
        """A poll arrived: (answer for it now or None to hold it, answer for the poll it
        replaces or None)."""
        self.seen(now)
        self.batch = batch
        replaced = KEEPALIVE if self.state is PollState.HELD else None
        if self.state is PollState.CLOSED:
            return (self._take() if self.queue else KEEPALIVE), replaced
        if self.queue:
            if replaced:
                self._to(PollEvent.ANSWER)
            return self._take(), replaced
        self._to(PollEvent.POLL)
        self.held_since = now
        return None, replaced

    def answer(self) -> str | None:
        """Output was queued: the answer for the held poll, if one is held."""
        if self.state is not PollState.HELD or not self.queue:
            return None
        self._to(PollEvent.ANSWER)
        return self._take()

    def tick(self, now: float) -> str | None:
        """The answer for a poll held `keepalive` seconds, if one is."""
        if self.state is PollState.HELD and now - self.held_since >= self.keepalive:
            self._to(PollEvent.ANSWER)
            return KEEPALIVE
        return None

    def poll_lost(self) -> None:
        """The connection that held the poll closed before it was answered."""
        self._to(PollEvent.POLL_LOST)

    def idle_for(self, now: float) -> float:
        """Seconds since the last request, or 0 while a poll is held (the page is there)."""
        return 0.0 if self.state is PollState.HELD else now - self.last_seen

    def close(self) -> None:
        self._to(PollEvent.CLOSE)

    def _take(self) -> str:
        """One message (Evennia's client) or all of them as one array (ours)."""
        if not self.batch:
            message = self.queue.popleft()
            self.queued_bytes -= len(message)
            return message
        messages = list(self.queue)
        self.queue.clear()
        self.queued_bytes = 0
        return "[" + ",".join(messages) + "]"
