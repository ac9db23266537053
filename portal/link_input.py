"""The link's side that faces the sessions: held input, pauses, and the portal move's
bookkeeping of both; and the effects every link method returns (see `portal/link.py`,
whose `Link` builds on `LinkInput` and keeps the transition table). Sans-I/O."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from ipc.frames import Frame, InputItem, Mode, SessionData
from ipc.settings import PortalSettings

MSG_RESTARTING = "|yThe game is restarting; your input will be answered in a moment.|n"
MSG_FULL = ("|yYou are typing faster than the game can answer; "
            "your input is held until it catches up.|n")


# ---------------------------------------------------------------- effects


@dataclass(frozen=True, slots=True)
class Send:
    """Write `frame` to server connection `conn` (now, if `flush`)."""

    conn: int
    frame: Frame
    urgent: bool = False
    flush: bool = False


@dataclass(frozen=True, slots=True)
class CloseConn:
    """Close server connection `conn`: `refuse` tells it why; `abort` drops what is queued."""

    conn: int
    reason: str
    refuse: bool = False
    abort: bool = False


@dataclass(frozen=True, slots=True)
class Tell:
    sessid: int
    text: str


@dataclass(frozen=True, slots=True)
class Pause:
    sessid: int


@dataclass(frozen=True, slots=True)
class Resume:
    sessid: int


@dataclass(frozen=True, slots=True)
class Deliver:
    """A frame of the attached server for the sessions: DataOut, SSync, SLogin."""

    frame: Frame


@dataclass(frozen=True, slots=True)
class CloseSession:
    """The server closed this session; it has already forgotten it."""

    sessid: int
    reason: str


@dataclass(frozen=True, slots=True)
class CommandDone:
    """Count one command for each of `sessids` (a session once per command it had
    answered), answered at `when`: the one place commands count, once per Ack frame."""

    sessids: list[int]
    when: float


@dataclass(frozen=True, slots=True)
class Request:
    """An admin in the game (session `sessid`) asked for `action` (reload, reset, ...):
    for the supervisor."""

    action: str
    sessid: int = 0


@dataclass(frozen=True, slots=True)
class HandoverDone:
    ok: bool
    message: str


@dataclass(frozen=True, slots=True)
class SetTimer:
    """Call `tick()` after `delay` seconds (replacing any earlier timer); None cancels."""

    delay: float | None


@dataclass(frozen=True, slots=True)
class PumpSoon:
    """Call `pump()` at the end of this loop turn (so one turn's input is one frame)."""


@dataclass(frozen=True, slots=True)
class ServerGone:
    """The server the link was stopping has gone (the shell's `stop` may return)."""


Effect = (Send | CloseConn | Tell | Pause | Resume | Deliver | CloseSession | CommandDone
          | Request | HandoverDone | SetTimer | PumpSoon | ServerGone)


# ---------------------------------------------------------------- the link


@dataclass(slots=True)
class Peer:
    """The link's bookkeeping for one session (not the session's own data)."""

    announced: bool = False  # the attached server knows it (PConn or PSync)
    told_waiting: bool = False  # told "the game is restarting" in this gap
    told_full: bool = False  # told its input is held; reset when reading resumes
    paused: bool = False
    held: int = 0  # inputs pending or in flight


@dataclass(slots=True)
class ServerConn:
    conn: int
    pid: int
    stopped_mode: Mode | None = None  # what its ServerStopped said
    # sessions announced to it (PConn) that it has not named since (output, sync, login,
    # an ack of their input): if it dies now, it may not have greeted them, so the next
    # server hears of them as new connections, not in its sync
    unconfirmed: set[int] = field(default_factory=set)
    writable: bool = True  # its socket takes more; input waits in `pending` while not
    presynced: set[int] = field(default_factory=set)  # sent ahead and unchanged since
    sent_ahead: set[int] = field(default_factory=set)  # every session sent ahead


class LinkInput:
    """Every session's held input (`pending`, then `inflight` until acknowledged) and who
    is paused for it. `snapshot(sessid)` reads a session's synced data."""

    def __init__(self, settings: PortalSettings, snapshot: Callable[[int], SessionData]) -> None:
        self.settings = settings
        self.peers: dict[int, Peer] = {}
        self.pending: deque[InputItem] = deque()
        self.inflight: dict[int, InputItem] = {}
        self.held_total = 0
        self._snapshot = snapshot
        self._next_seq = 1
        self._pump_wanted = False
        self._effects: list[Effect] = []
        # portal hand-over: `frozen` sends no input (the old portal drains in-flight input);
        # `quiet` tells nobody "restarting" while the new portal waits for the server
        self.frozen = False
        self.quiet = False
        self.next_mode: Mode = "start"

    def _emit(self, effect: Effect) -> None:
        self._effects.append(effect)

    def _take(self) -> list[Effect]:
        effects, self._effects = self._effects, []
        return effects

    def drop_input(self, seq: int, why: str) -> list[Effect]:
        """Forget one input (it hung or crashed servers) and tell its player."""
        item = self.inflight.pop(seq, None)
        if item is None:
            item = next((i for i in self.pending if i.seq == seq), None)
            if item is not None:
                self.pending.remove(item)
        if item is not None:
            self._release(item.sessid)
            line = item.args[0] if item.cmdname == "text" and item.args else item.cmdname
            self._emit(Tell(item.sessid, f"|rYour command '{line}' {why} and was dropped.|n"))
        return self._take()

    def _tell_waiting(self, sessid: int, peer: Peer) -> None:
        if not peer.told_waiting and not self.quiet:
            peer.told_waiting = True
            self._emit(Tell(sessid, MSG_RESTARTING))

    def _pause(self, sessid: int, peer: Peer) -> None:
        if not peer.paused:
            peer.paused = True
            self._emit(Pause(sessid))
            if not peer.told_full:
                peer.told_full = True
                self._emit(Tell(sessid, MSG_FULL))

    def _release(self, sessid: int) -> None:
        """One input of `sessid` is done: count it down, and read again when room is back."""
        peer = self.peers.get(sessid)
        if peer is not None:  # (a session that went away: its inputs were uncounted then)
            self._release_peer(sessid, peer)

    def _release_peer(self, sessid: int, peer: Peer) -> None:
        """`_release` of a session whose peer is in hand."""
        peer.held -= 1
        self.held_total -= 1
        if peer.paused:
            self._resume_if_room(sessid, peer)

    def _resume_if_room(self, sessid: int, peer: Peer) -> None:
        """A paused session reads again once half its input buffer is free (and the
        portal's total is under its limit)."""
        if (peer.held <= self.settings.input_buffer_per_session // 2
                and self.held_total < self.settings.input_buffer_total):
            peer.paused = peer.told_full = False
            self._emit(Resume(sessid))

    def _want_pump(self) -> None:
        if not self._pump_wanted:
            self._pump_wanted = True
            self._emit(PumpSoon())

    def _requeue_inflight(self) -> None:
        alive = [item for item in self.inflight.values() if item.sessid in self.peers]
        self.pending.extendleft(reversed(alive))
        self.inflight = {}

    def moved(self, sessids: set[int]) -> None:
        """Old portal: these sessions went to the new portal. Forget them and their held
        input without telling the server (they stay there). One pass over `pending`."""
        for sessid in sessids:
            peer = self.peers.pop(sessid, None)
            if peer is not None:  # (nothing of it is in flight: the link was drained)
                self.held_total -= peer.held
        self.pending = deque(i for i in self.pending if i.sessid not in sessids)

    def compact(self) -> None:
        """Rebuild the tables by session and by seq at the size of what they hold (a dict
        keeps its largest table after deletions); the shell calls it after a storm."""
        self.peers = dict(self.peers)
        self.inflight = dict(self.inflight)

    def held_input(self) -> dict[int, list[InputItem]]:
        """Every session's held input, in order (one pass; nothing changes)."""
        held: dict[int, list[InputItem]] = {}
        for item in self.pending:
            held.setdefault(item.sessid, []).append(item)
        return held

    def announced(self, sessid: int) -> bool:
        """Whether the attached (or last) server knows `sessid`."""
        peer = self.peers.get(sessid)
        return peer is not None and peer.announced

    def counters(self) -> tuple[int, Mode]:
        """The next input seq and the next attach's mode (moved to a new portal)."""
        return self._next_seq, self.next_mode

    def adopt_counters(self, next_seq: int, next_mode: Mode) -> None:
        """New portal: go on numbering where the old portal stopped; stay quiet until the
        server (which is redialling) attaches."""
        self._next_seq = max(self._next_seq, next_seq)
        self.next_mode = next_mode
        self.quiet = True

    def adopt(self, sessid: int, announced: bool, items: list[InputItem]) -> list[Effect]:
        """New portal: a moved session, with its held input. Call `adopted()` once all
        are in, to put the input back in seq order."""
        peer = self.peers[sessid] = Peer(announced=announced, held=len(items))
        self.held_total += len(items)
        self.pending.extend(items)
        if peer.held >= self.settings.input_buffer_per_session:
            self._pause(sessid, peer)
        return self._take()

    def adopted(self) -> None:
        """New portal: every moved session is in; their input goes in seq order."""
        self.pending = deque(sorted(self.pending, key=lambda item: item.seq))
