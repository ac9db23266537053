"""The portal's edge guards: what a stranger's input may cost, and what may cross the link.

Theory of operation
-------------------
Every protocol hands its input to `PortalSession.data_in`, which passes it through
`PortalGuard.data_in` before the session handler queues it for the game. So every
protocol, present and future, gets the same treatment:

- **cleaning** (`clean_line`, `screen_input`): ESC, the other C0 controls except tab,
  DEL and the C1 controls are removed from every string a player sends, and the newline
  markup `|/` in a text line is escaped (`||/`), so a player's `say` can neither drive
  another player's terminal nor forge a line of its own;
- **the link's limits** (`screen_input`): what msgpack cannot carry (integers outside
  64 bits, lone surrogates, values nested deeper than `MAX_DEPTH`, keys that are not
  text, other types) is refused here with a message to that player, instead of failing
  half way through a frame that also holds everyone else's input;
- **command rate** (`TokenBucket` per session, checked first, so refused input counts
  too): input faster than `commands_per_second`
  (after a burst of `command_burst`) is *delayed*, not dropped, and the protocol is asked
  to stop reading (`throttle_input`): a player who pastes a long script loses nothing
  (Evennia drops such input and its issues #1556 and #779 are players losing pastes and
  auto-login scripts), while a client streaming commands gets no more than the rate;
- **connections per address** (`AddressLimits`): a count and a rate, checked in
  `admit()` before anything else, with a one-line refusal;
- **idle time before login** (`sweep()`): a connection that has not logged in after
  `login_timeout` seconds is closed with a message;
- **memory after a storm** (`sweep()`): once `memory_trim_after` connections have closed
  since the most that were open, the tables are rebuilt and freed memory handed back to
  the system (`release_memory`; see portal/memory.py);
- **log lines** (`LogLimiter`): protocol errors are logged for the first few per
  session, then one summary line per interval, and never more than a global budget.

The policies are plain classes over an injected clock; the only effect the guard has is
calling its callbacks (`forward`, `call_later`) and the sessions' own API.
"""

from __future__ import annotations

import asyncio
import codecs
import functools
import ipaddress
import logging
import re
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import msgspec

from ipc.addresses import Networks
from ipc.settings import PortalSettings
from portal import memory

if TYPE_CHECKING:
    from portal.session import PortalSession

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Forward = Callable[["PortalSession", str, list[Any], dict[str, Any]], None]
CallLater = Callable[[float, Callable[[], None]], Any]

MAX_DEPTH: Final = 32  # nesting of out-of-band values (GMCP JSON, MSDP tables)
INT_MIN: Final = -(1 << 63)
INT_MAX: Final = (1 << 64) - 1  # msgpack's widest integers
LOG_BURST: Final = 5  # protocol errors logged per session per interval ...
LOG_INTERVAL: Final = 60.0  # ... then one summary line per interval
GLOBAL_LOG_BURST: Final = 100  # and at most this many lines per interval for everyone
TELL_BURST: Final = 3  # refusals of input told to the player per interval
TELL_INTERVAL: Final = 10.0

MSG_SLOWED = ("|yYou are sending commands faster than {rate:g} a second; they are slowed "
              "down to that rate.|n")
MSG_DROPPED_RATE = ("|rYou have sent {count} commands that wait for their turn; "
                    "this one was dropped.|n")
MSG_UNFRAMEABLE = "|rYour input was dropped: it holds {reason}, which the game cannot take.|n"
MSG_LOGIN_TIMEOUT = "You did not log in within {seconds:g} seconds; goodbye."
MSG_TOO_MANY = "Too many connections from your address ({limit}); close one and try again."
MSG_TOO_FAST = "You are connecting too fast; wait a few seconds and try again."

# ---------------------------------------------------------------- cleaning text

# C0 controls except tab (0x09), DEL and the C1 controls. ESC (0x1b) is among them, so no
# escape sequence (CSI, OSC title or clipboard writes, ...) survives.
_CONTROL: Final = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")
# A markup token that could be `|/` (newline), read the way portal/colour.py reads it:
# `||` is a literal pipe, so `|||/` is a pipe and a newline.
_NEWLINE_MARKUP: Final = re.compile(r"\|[|/]")


def clean_text(text: str) -> str:
    """`text` without ESC, other C0 controls except tab, DEL and C1 controls."""
    if text.isprintable():  # the common case: nothing to remove (tab is not printable)
        return text
    return _CONTROL.sub("", text)


def _escape_newline(match: re.Match[str]) -> str:
    return "||/" if match.group() == "|/" else "||"


def clean_line(text: str) -> str:
    """A player's text line, cleaned, with its newline markup made literal (`|/` -> `||/`)."""
    text = clean_text(text)
    if "|/" in text:
        text = _NEWLINE_MARKUP.sub(_escape_newline, text)
    return text


# ---------------------------------------------------------------- what may cross the link


class Unframeable(ValueError):
    """Input the link cannot carry; the message says what, in words for the player."""


def _screen_str(text: str) -> str:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise Unframeable("text that is not valid Unicode") from None
    return clean_text(text)


def screen_value(value: Any, depth: int = 0) -> Any:
    """A cleaned copy of an out-of-band value; raises Unframeable for what msgpack (as the
    server decodes it) cannot carry."""
    if isinstance(value, str):
        return _screen_str(value)
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            raise Unframeable("a number beyond 64 bits")
        return value
    if depth >= MAX_DEPTH:
        raise Unframeable(f"values nested more than {MAX_DEPTH} deep")
    if isinstance(value, list | tuple):
        return [screen_value(item, depth + 1) for item in value]
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise Unframeable("a key that is not text")
            out[_screen_str(key)] = screen_value(item, depth + 1)
        return out
    raise Unframeable(f"a value of type {type(value).__name__}")


_CHECK: Final = msgspec.msgpack.Encoder()


def plain_line(line: str) -> bool:
    """Whether a text line needs no cleaning at all: printable ASCII (no control, no tab)
    without newline markup. Three C-level scans, no copy: the common case costs nothing."""
    return line.isascii() and line.isprintable() and "|/" not in line


def screen_input(
    cmdname: str, args: list[Any], kwargs: dict[str, Any]
) -> tuple[str, list[Any], dict[str, Any]]:
    """The cleaned input, or Unframeable. A text line (`("text", [line], {})`) also has its
    newline markup made literal. A plain line (`plain_line`) comes back as it was given,
    its `args` list too."""
    if (cmdname == "text" and len(args) == 1 and not kwargs and type(args[0]) is str):
        if plain_line(args[0]):
            return cmdname, args, kwargs
        line = args[0]
        if not line.isascii():
            _screen_str(line)
        return cmdname, [clean_line(line)], {}
    if not isinstance(cmdname, str):
        raise Unframeable("a command name that is not text")
    name = _screen_str(cmdname)
    clean_args: list[Any] = screen_value(list(args))
    clean_kwargs: dict[str, Any] = screen_value(dict(kwargs))
    if name == "text" and clean_args and isinstance(clean_args[0], str):
        clean_args[0] = clean_line(clean_args[0])
    try:  # belt and braces: the real encoder has the last word
        _CHECK.encode((name, clean_args, clean_kwargs))
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        raise Unframeable(f"data the link refused ({type(exc).__name__})") from None
    return name, clean_args, clean_kwargs


# ---------------------------------------------------------------- encodings

# Printable ASCII, whitespace, escapes that escape codecs would read, and a 70-character
# word (idna refuses labels over 63): a real text encoding gives these bytes back as is.
_PROBE: Final = (
    "".join(chr(c) for c in range(32, 127)) + "\t\r\n" + "\\u00e9\\N{x}\\x41" + "w" * 70
)
_PROBE_BYTES: Final = _PROBE.encode("ascii")


def text_encoding(name: object) -> str | None:
    """The codec name for `name` if it is a real text encoding, else None.

    Real means: Python marks it a text encoding, and it writes and reads ASCII unchanged.
    So whatever encoding a player picks, `encoding utf-8` typed in plain ASCII still reads
    as itself, and the player can always get back.
    """
    if not isinstance(name, str) or not 0 < len(name) <= 64:
        return None
    return _text_encoding(name)


@functools.lru_cache(maxsize=256)
def _text_encoding(name: str) -> str | None:
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError, TypeError):
        return None
    if not getattr(info, "_is_text_encoding", True):
        return None
    try:
        if (_PROBE.encode(info.name) != _PROBE_BYTES
                or _PROBE_BYTES.decode(info.name) != _PROBE):
            return None
    except Exception:  # any codec may fail in any way: that is what we are finding out
        return None
    return info.name


# ---------------------------------------------------------------- rates and counts


@dataclass(slots=True)
class TokenBucket:
    """`rate` tokens a second up to `burst`; starts full."""

    rate: float
    burst: float
    tokens: float
    stamp: float

    @classmethod
    def full(cls, rate: float, burst: float, now: float) -> TokenBucket:
        return cls(rate, max(burst, 1.0), max(burst, 1.0), now)

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def take(self, now: float) -> bool:
        """Spend one token if there is one."""
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def wait(self, now: float) -> float:
        """Seconds until a token is there."""
        self._refill(now)
        return 0.0 if self.tokens >= 1.0 else (1.0 - self.tokens) / self.rate

    def is_full(self, now: float) -> bool:
        self._refill(now)
        return self.tokens >= self.burst


MIN_REST: Final = 0.002  # seconds: the shortest rest of a connection over its CPU share


@dataclass(slots=True)
class WorkBudget:
    """Seconds of work a connection may take: `share` of each second, saved up to `burst`.
    Spending may overdraw it; `delay()` then says how long to rest. `share` 0: unlimited."""

    share: float
    burst: float
    balance: float
    stamp: float

    @classmethod
    def full(cls, share: float, burst: float, now: float) -> WorkBudget:
        return cls(share, burst, burst, now)

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.balance = min(self.burst, self.balance + (now - self.stamp) * self.share)
            self.stamp = now

    def spend(self, seconds: float, now: float) -> None:
        if self.share > 0:
            self._refill(now)
            self.balance -= seconds

    def delay(self, now: float) -> float:
        """Seconds to rest before the next piece of work (0: go on), at least `MIN_REST`:
        the loop's timers count whole milliseconds, and one asked for less fires at once,
        so a connection resting 0.3 ms at a time spun the loop (85% of a core, for a
        flood of NULs whose parsing took its 5%)."""
        if self.share <= 0:
            return 0.0
        self._refill(now)
        return 0.0 if self.balance >= 0 else max(MIN_REST, -self.balance / self.share)


def address_key(address: str) -> str:
    """What per-address limits count by: the address, or its /64 for IPv6 (one host
    usually holds a whole /64)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class AddressLimits:
    """Connections per address: how many at once, and how fast new ones may come."""

    def __init__(self, max_count: int, rate: float, burst: int,
                 unlimited: Iterable[str] = ()) -> None:
        self.max_count = max_count
        self.rate = rate
        self.burst = burst
        self._unlimited = Networks(unlimited)
        self.counts: dict[str, int] = {}
        self.buckets: dict[str, TokenBucket] = {}
        self.open = 0  # connections let in and not released: the sum of `counts`

    def limited(self, address: str) -> bool:
        return address not in self._unlimited

    def admit(self, address: str, now: float) -> str | None:
        """None to let the connection in (then call `release`), else the refusal."""
        key = address_key(address)
        if not self.limited(address):
            self.counts[key] = self.counts.get(key, 0) + 1
            self.open += 1
            return None
        count = self.counts.get(key, 0)
        if self.max_count and count >= self.max_count:
            return MSG_TOO_MANY.format(limit=self.max_count)
        if self.rate:
            bucket = self.buckets.get(key)
            if bucket is None:
                bucket = self.buckets[key] = TokenBucket.full(self.rate, self.burst, now)
            if not bucket.take(now):
                return MSG_TOO_FAST
        self.counts[key] = count + 1
        self.open += 1
        return None

    def release(self, address: str) -> None:
        key = address_key(address)
        count = self.counts.get(key, 0) - 1
        if count >= 0:
            self.open -= 1
        if count > 0:
            self.counts[key] = count
        else:
            self.counts.pop(key, None)

    def compact(self) -> None:
        """Rebuild the tables at the size of what they hold (after a storm of addresses)."""
        self.counts = memory.compact(self.counts)
        self.buckets = memory.compact(self.buckets)

    def prune(self, now: float) -> None:
        """Forget the buckets that have refilled (so memory follows live addresses)."""
        for key in [k for k, b in self.buckets.items() if b.is_full(now)]:
            del self.buckets[key]


@dataclass(slots=True)
class LogLimiter:
    """The first `burst` lines of each `interval` pass; the rest are counted for a summary."""

    burst: int
    interval: float
    window_start: float = float("-inf")
    passed: int = 0
    suppressed: int = 0

    def check(self, now: float) -> tuple[int, bool]:
        """(lines held back in a window that just ended, to summarise; whether this passes)."""
        report = 0
        if now - self.window_start >= self.interval:
            report, self.suppressed = self.suppressed, 0
            self.window_start, self.passed = now, 0
        if self.passed < self.burst:
            self.passed += 1
            return report, True
        self.suppressed += 1
        return report, False


# ---------------------------------------------------------------- the guard


@dataclass(slots=True)
class _SessionState:
    bucket: TokenBucket | None
    log: LogLimiter
    tell: LogLimiter  # refusal messages to the player
    delayed: deque[tuple[str, list[Any], dict[str, Any]]] = field(default_factory=deque)
    timer: Any = None
    release_pending: bool = False
    told_slowed: bool = False
    told_dropped: bool = False


def _loop_call_later(delay: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
    return asyncio.get_running_loop().call_later(delay, callback)


class PortalGuard:
    """Admission, input screening and rate limits for every protocol; see the module doc.

    `forward(session, cmdname, args, kwargs)` queues input that passed (the session
    handler's `data_in`); `sessions()` lists the sessions to sweep.
    """

    def __init__(
        self,
        settings: PortalSettings,
        forward: Forward,
        sessions: Callable[[], Iterable[PortalSession]],
        *,
        clock: Clock = time.monotonic,
        wall: Clock = time.time,
        call_later: CallLater = _loop_call_later,
        release_memory: Callable[[str], None] = memory.release,
    ) -> None:
        self.settings = settings
        self._forward = forward
        self._sessions = sessions
        self._clock = clock
        self._wall = wall
        self._call_later = call_later
        self.addresses = AddressLimits(settings.max_connections_per_address,
                                       settings.connection_rate, settings.connection_burst,
                                       settings.unlimited_addresses)
        self._global_log = LogLimiter(GLOBAL_LOG_BURST, LOG_INTERVAL)
        self.trim = memory.TrimPolicy(settings.memory_trim_after)
        self._release_memory = release_memory
        self._sweep_timer: Any = None
        self.refused = 0  # connections turned away (status figure)

    # ------------------------------------------------------------ admission

    def admit(self, address: str) -> str | None:
        refusal = self.addresses.admit(address, self._clock())
        if refusal is not None:
            self.refused += 1
            self._log_global("refused a connection from %s: %s", address, refusal)
        else:
            self.trim.opened(self.addresses.open)
        self._arm_sweep()
        return refusal

    def release(self, address: str) -> None:
        self.addresses.release(address)

    # ------------------------------------------------------------ input

    def data_in(self, session: PortalSession, cmdname: str, args: list[Any],
                kwargs: dict[str, Any]) -> None:
        """Rate-limit one input, then clean and check it and `forward` it (now or later).
        Every input counts against the rate, refused ones too, so a stream of poison
        costs no more than a stream of good commands. The guard's state for a session
        lives on the session (`guard_state`): no lookup per line."""
        state = session.guard_state
        if state is None:
            state = self._state(session)
        bucket = state.bucket
        if bucket is not None and (state.delayed or not bucket.take(self._clock())):
            self._delay(session, state, (cmdname, args, kwargs))
            return
        if cmdname == "text" and not kwargs and len(args) == 1:
            line = args[0]  # `plain_line`, inline: nothing to clean or check
            if type(line) is str and line.isascii() and line.isprintable() \
                    and "|/" not in line:
                self._forward(session, cmdname, args, kwargs)
                return
        self._pass(session, state, cmdname, args, kwargs)

    def _pass(self, session: PortalSession, state: _SessionState, cmdname: str,
              args: list[Any], kwargs: dict[str, Any]) -> None:
        try:
            item = screen_input(cmdname, args, kwargs)
        except Unframeable as exc:
            self.protocol_error(session, f"input {cmdname!r} refused: {exc}")
            if state.tell.check(self._clock())[1]:  # a few a while: the player knows
                session.send_text(MSG_UNFRAMEABLE.format(reason=exc))
            return
        self._forward(session, *item)

    def _delay(self, session: PortalSession, state: _SessionState,
               item: tuple[str, list[Any], dict[str, Any]]) -> None:
        if len(state.delayed) >= self.settings.input_buffer_per_session:
            # Only a protocol that cannot stop reading gets here.
            if not state.told_dropped:
                state.told_dropped = True
                session.send_text(MSG_DROPPED_RATE.format(count=len(state.delayed)))
            return
        state.delayed.append(item)
        if len(state.delayed) == 1:
            session.throttle_input(True)
            if not state.told_slowed:
                state.told_slowed = True
                session.send_text(MSG_SLOWED.format(rate=self.settings.commands_per_second))
        if not state.release_pending:
            self._schedule_release(session, state)

    def _schedule_release(self, session: PortalSession, state: _SessionState) -> None:
        assert state.bucket is not None
        wait = max(state.bucket.wait(self._clock()), 0.001)
        state.release_pending = True
        state.timer = self._call_later(wait, lambda: self._release_delayed(session))

    def _release_delayed(self, session: PortalSession) -> None:
        state = session.guard_state
        if state is None or state.bucket is None:
            return
        state.timer, state.release_pending = None, False
        if session.gone is not None and session.gone.done():
            state.delayed.clear()
            return
        now = self._clock()
        while state.delayed and state.bucket.take(now):
            self._pass(session, state, *state.delayed.popleft())
        if state.delayed:
            self._schedule_release(session, state)
            return
        state.told_dropped = False
        session.throttle_input(False)
        if state.bucket.is_full(now):
            state.told_slowed = False

    def take_delayed(self, session: PortalSession) -> list[tuple[str, list[Any], dict[str, Any]]]:
        """The inputs the rate limit holds back for `session`, in order, forgotten here
        (a portal hand-over moves them; feed them to `data_in` again to keep them)."""
        state = session.guard_state
        if state is None or not state.delayed:
            return []
        if state.timer is not None and hasattr(state.timer, "cancel"):
            state.timer.cancel()
        state.timer, state.release_pending = None, False
        items = list(state.delayed)
        state.delayed.clear()
        session.throttle_input(False)
        return items

    def _state(self, session: PortalSession) -> _SessionState:
        state: _SessionState | None = session.guard_state
        if state is None:
            settings = self.settings
            bucket = None
            if settings.commands_per_second > 0:
                bucket = TokenBucket.full(settings.commands_per_second, settings.command_burst,
                                          self._clock())
            state = session.guard_state = _SessionState(
                bucket, LogLimiter(LOG_BURST, LOG_INTERVAL), LogLimiter(TELL_BURST, TELL_INTERVAL))
        return state

    # ------------------------------------------------------------ logging

    def protocol_error(self, session: PortalSession, reason: str) -> None:
        """Log a protocol error of `session`: a few, then one summary line per interval."""
        suppressed, allowed = self._state(session).log.check(self._clock())
        if suppressed:
            self._log_global("session %d (%s): %d more protocol errors in the last %.0fs "
                             "were not logged", session.sessid, session.address, suppressed,
                             LOG_INTERVAL)
        if allowed:
            self._log_global("session %d (%s): %s", session.sessid, session.address, reason)

    def session_closed(self, session: PortalSession) -> None:
        """Report what the session's log limiter held back (call when it closes)."""
        state: _SessionState | None = session.guard_state
        if state is None:
            return
        session.guard_state = None
        if state.timer is not None and hasattr(state.timer, "cancel"):
            state.timer.cancel()
        if state.log.suppressed:
            self._log_global("session %d (%s): %d more protocol errors were not logged",
                             session.sessid, session.address, state.log.suppressed)

    def _log_global(self, message: str, *args: Any) -> None:
        suppressed, allowed = self._global_log.check(self._clock())
        if suppressed:
            log.warning("%d protocol log lines were not written in the last %.0fs "
                        "(too many)", suppressed, LOG_INTERVAL)
        if allowed:
            log.info(message, *args)

    # ------------------------------------------------------------ the sweep

    def _arm_sweep(self) -> None:
        if self._sweep_timer is not None:
            return
        settings = self.settings
        periods = [t for t in (settings.login_timeout,) if t > 0]
        interval = min([10.0, *(p / 4 for p in periods)])
        try:
            self._sweep_timer = self._call_later(max(interval, 0.25), self._sweep_tick)
        except RuntimeError:  # no running loop (unit tests of admission): no sweep
            self._sweep_timer = None

    def _sweep_tick(self) -> None:
        self._sweep_timer = None
        try:
            self.sweep()
        except Exception:
            log.exception("portal guard sweep failed")
        self._arm_sweep()

    def sweep(self) -> None:
        """Close connections that did not log in within `login_timeout`; forget refilled
        per-address buckets; after a storm of connections closed, release memory."""
        self.addresses.prune(self._clock())
        high, now_open = self.trim.high, self.addresses.open
        if self.trim.due(now_open):
            self._release_memory(f"{high - now_open} connections closed since {high} "
                                 f"were open")
        limit = self.settings.login_timeout
        if limit <= 0:
            return
        now = self._wall()
        late = [s for s in self._sessions() if not s.logged_in and now - s.conn_time > limit]
        for session in late:
            session.disconnect(MSG_LOGIN_TIMEOUT.format(seconds=limit))
