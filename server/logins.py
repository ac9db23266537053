"""Login protection: throttled, equal-answer, fairly queued password checks.

Theory of operation. Every password check or account creation passes, in order:

1. the *throttle* (`Throttle`, one for addresses and one for account names): after
   `free_failures` failures a key must wait before its next attempt, the wait doubling
   from `delay` up to `delay_max`; at its lockout count it is locked out for `lockout`
   seconds (and again after each further failure). An attempt that comes too early is
   refused at once, without hashing. Account names are counted whether or not the account
   exists, so a lockout says nothing about which names exist. An address that logged in to
   an account recently is not held back by that account's lockout (its owner is not locked
   out by a stranger's guesses), only by its own address's;
2. for creations, the *creation limit* (`CreationLimit`): `creations_per_address` per
   `creation_window`. Asking for a name that is taken counts as a failed login of that
   address, so names cannot be enumerated through `create` faster than through `connect`;

   The limits per address (the address throttle, the creation limit, `queue_per_address`)
   skip the `unlimited_addresses` of the portal's settings (loopback by default), as the
   portal's connection limits do; the per-name throttle applies to every address;
3. the *admission* bound: at most `queue_per_address` checks of one address, and
   `queue_total` in all, wait for or run a hash at once;
4. the *fair queue* (`FairQueue`): hashes wait in one queue per address, served round
   robin by the `login_workers` scrypt threads, so one address flooding logins delays
   another address's login by at most one hash per worker, not by its whole backlog.

The policy classes are sans-I/O: every decision takes `now` from the caller and they
never sleep, so tests drive them with a fake clock. `Logins` is the asyncio front the game
calls (`ctx.game.logins`), and so does anything else that checks passwords (SSH).
"""

from __future__ import annotations

import asyncio
import enum
import functools
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from ipc.addresses import Networks
from ipc.settings import LoginSettings
from server.accounts import Account, AccountError, AccountStore, ScryptCost

T = TypeVar("T")
Clock = Callable[[], float]
MAX_KEYS = 100_000  # remembered addresses or names per table; the oldest are forgotten


class Why(enum.Enum):
    """Why an attempt was refused before any password was checked."""

    ADDRESS_DELAY = "address_delay"
    ADDRESS_LOCKOUT = "address_lockout"
    ACCOUNT_DELAY = "account_delay"
    ACCOUNT_LOCKOUT = "account_lockout"
    CREATIONS = "creations"
    QUEUE_FULL = "queue_full"
    BUSY = "busy"


_MESSAGES = {
    Why.ADDRESS_DELAY: "Too many failed logins from your address: wait {wait} and try again.",
    Why.ADDRESS_LOCKOUT: "Too many failed logins from your address: logins from it are "
                         "locked for {wait}.",
    Why.ACCOUNT_DELAY: "Too many failed logins to that account: wait {wait} and try again.",
    Why.ACCOUNT_LOCKOUT: "Too many failed logins to that account: it is locked for {wait}.",
    Why.CREATIONS: "Too many accounts were created from your address: try again in {wait}.",
    Why.QUEUE_FULL: "Too many logins from your address are in progress: wait for them.",
    Why.BUSY: "The game is busy with logins: try again in a moment.",
}


def _duration(seconds: float) -> str:
    if seconds < 90:
        whole = max(1, math.ceil(seconds))
        return f"{whole} second{'s' if whole != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minutes"


@dataclass(frozen=True, slots=True)
class Refusal:
    why: Why
    retry_after: float = 0.0  # seconds; 0 when it depends on other logins finishing

    @property
    def message(self) -> str:
        return _MESSAGES[self.why].format(wait=_duration(self.retry_after))


class LoginRefused(AccountError):
    """A login or creation refused by the protection, before any password was checked."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.message, "refused")
        self.refusal = refusal


# ---------------------------------------------------------------- policy (sans-I/O)


@dataclass(slots=True)
class _Failures:
    count: int
    last: float  # time of the last failure
    until: float  # no attempt before this time


class Throttle:
    """Failures per key (an address or a lower-cased name): delays, then lockouts.

    `blocked(key, now)` before an attempt; `fail(key, now)` after a failed one;
    `clear(key)` to forget a key. Memory is bounded: keys quiet for `forget_after` are
    dropped, and past `max_keys` the least recently failed key is dropped.
    """

    def __init__(self, settings: LoginSettings, lockout_after: int, delay_why: Why,
                 lockout_why: Why, max_keys: int = MAX_KEYS) -> None:
        self._settings = settings
        self._lockout_after = lockout_after
        self._why = (delay_why, lockout_why)
        self._max_keys = max_keys
        self._keys: OrderedDict[str, _Failures] = OrderedDict()

    def wait_after(self, failures: int) -> float:
        """Seconds a key must wait after its `failures`-th failure."""
        s = self._settings
        if failures <= s.free_failures:
            return 0.0
        if failures >= self._lockout_after:
            return s.lockout
        return float(min(s.delay * 2 ** (failures - s.free_failures - 1), s.delay_max))

    def blocked(self, key: str, now: float) -> Refusal | None:
        record = self._get(key, now)
        if record is None or now >= record.until:
            return None
        locked = record.count >= self._lockout_after
        return Refusal(self._why[locked], record.until - now)

    def fail(self, key: str, now: float) -> None:
        record = self._get(key, now)
        count = record.count + 1 if record is not None else 1
        self._keys[key] = _Failures(count, now, now + self.wait_after(count))
        self._keys.move_to_end(key)
        self._prune(now)

    def clear(self, key: str) -> None:
        self._keys.pop(key, None)

    def failures(self, key: str, now: float) -> int:
        record = self._get(key, now)
        return 0 if record is None else record.count

    def __len__(self) -> int:
        return len(self._keys)

    def _get(self, key: str, now: float) -> _Failures | None:
        record = self._keys.get(key)
        if record is not None and self._forgotten(record, now):
            del self._keys[key]
            return None
        return record

    def _forgotten(self, record: _Failures, now: float) -> bool:
        return now >= record.until and now - record.last >= self._settings.forget_after

    def _prune(self, now: float) -> None:
        while self._keys:
            oldest = next(iter(self._keys.values()))
            if not (self._forgotten(oldest, now) or len(self._keys) > self._max_keys):
                break
            self._keys.popitem(last=False)


class CreationLimit:
    """At most `limit` creations per address in any `window` seconds (bounded memory)."""

    def __init__(self, limit: int, window: float, max_keys: int = MAX_KEYS) -> None:
        self._limit = limit
        self._window = window
        self._max_keys = max_keys
        self._times: OrderedDict[str, deque[float]] = OrderedDict()

    def blocked(self, address: str, now: float) -> Refusal | None:
        times = self._recent(address, now)
        if len(times) < self._limit:
            return None
        return Refusal(Why.CREATIONS, times[0] + self._window - now)

    def created(self, address: str, now: float) -> None:
        self._recent(address, now).append(now)
        self._times.move_to_end(address)
        while len(self._times) > self._max_keys:
            self._times.popitem(last=False)

    def _recent(self, address: str, now: float) -> deque[float]:
        times = self._times.setdefault(address, deque())
        while times and now - times[0] >= self._window:
            times.popleft()
        return times


class FairQueue(Generic[T]):
    """One FIFO per key, served round robin: `push(key, item)`, `pop()`.

    `pop` takes the oldest item of the key that was served longest ago, so a key with a
    thousand items waiting delays another key's first item by at most one item.
    """

    def __init__(self) -> None:
        self._queues: dict[str, deque[T]] = {}  # insertion order is the round robin

    def push(self, key: str, item: T) -> None:
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = deque()
        queue.append(item)

    def pop(self) -> T | None:
        """The next item, or None when every queue is empty."""
        if not self._queues:
            return None
        key = next(iter(self._queues))
        queue = self._queues.pop(key)
        item = queue.popleft()
        if queue:
            self._queues[key] = queue  # to the back of the round
        return item

    def __len__(self) -> int:
        return sum(len(queue) for queue in self._queues.values())


class LoginGuard:
    """Every decision of the login protection, for one server process.

    For a password check: `check_login` (a Refusal, or None to go on), then `enter`; after
    the check, `leave`, and `login_failed` or `login_succeeded`. For a creation:
    `check_create`, `enter`, `leave`, and `created` (or `name_taken`).
    """

    def __init__(self, settings: LoginSettings, unlimited: Iterable[str] = ()) -> None:
        self.settings = settings
        # addresses (`portal.unlimited_addresses`: the machine itself by default) that the
        # per-address limits skip, as the portal's connection limits do; the per-name
        # throttle and `queue_total` hold for them too
        self.unlimited = Networks(unlimited)
        self.addresses = Throttle(settings, settings.lockout_after,
                                  Why.ADDRESS_DELAY, Why.ADDRESS_LOCKOUT)
        self.accounts = Throttle(settings, settings.account_lockout_after,
                                 Why.ACCOUNT_DELAY, Why.ACCOUNT_LOCKOUT)
        self.creations = CreationLimit(settings.creations_per_address,
                                       settings.creation_window)
        self._known: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._active: dict[str, int] = {}
        self._active_total = 0

    def limited(self, address: str) -> bool:
        """Whether the per-address limits apply to `address` (not an unlimited one)."""
        return address not in self.unlimited

    def check_login(self, name: str, address: str, now: float) -> Refusal | None:
        refusal = self.addresses.blocked(address, now) if self.limited(address) else None
        if refusal is None and not self._is_known(name, address, now):
            refusal = self.accounts.blocked(name.lower(), now)
        return refusal

    def login_failed(self, name: str, address: str, now: float) -> None:
        if self.limited(address):
            self.addresses.fail(address, now)
        self.accounts.fail(name.lower(), now)

    def login_succeeded(self, name: str, address: str, now: float) -> None:
        key = (name.lower(), address)
        self._known[key] = now
        self._known.move_to_end(key)
        while len(self._known) > MAX_KEYS:
            self._known.popitem(last=False)

    def check_create(self, address: str, now: float) -> Refusal | None:
        if not self.limited(address):
            return None
        return self.addresses.blocked(address, now) or self.creations.blocked(address, now)

    def name_taken(self, address: str, now: float) -> None:
        if self.limited(address):
            self.addresses.fail(address, now)

    def created(self, address: str, now: float) -> None:
        if self.limited(address):
            self.creations.created(address, now)

    def enter(self, address: str) -> Refusal | None:
        """Admit one check from `address` to the hashing queue, or refuse it."""
        if (self._active.get(address, 0) >= self.settings.queue_per_address
                and self.limited(address)):
            return Refusal(Why.QUEUE_FULL)
        if self._active_total >= self.settings.queue_total:
            return Refusal(Why.BUSY)
        self._active[address] = self._active.get(address, 0) + 1
        self._active_total += 1
        return None

    def leave(self, address: str) -> None:
        """Call once for every `enter` that returned None."""
        left = self._active[address] - 1
        if left:
            self._active[address] = left
        else:
            del self._active[address]
        self._active_total -= 1

    def _is_known(self, name: str, address: str, now: float) -> bool:
        when = self._known.get((name.lower(), address))
        return when is not None and now - when < self.settings.forget_after


# ---------------------------------------------------------------- asyncio front


@dataclass(slots=True)
class _Job:
    password: str
    salt: bytes
    cost: ScryptCost
    done: asyncio.Future[bytes]


class Logins:
    """The server's one door for passwords: `check_password`, `create_account`.

    Both raise `AccountError` with a message for the player: `LoginRefused` (with its
    `refusal`) when the protection turns the attempt away before any hashing, otherwise the
    account store's errors. A wrong password and an unknown name raise the same message
    after the same work. `address` is the client's address as the portal saw it (the
    session's `address`). Hashes run `workers` at a time in the account store's pool,
    taken round robin across addresses. Safe to call from many tasks at once.
    """

    def __init__(self, accounts: AccountStore, settings: LoginSettings, workers: int = 1,
                 clock: Clock = time.monotonic, unlimited: Iterable[str] = ()) -> None:
        self.accounts = accounts
        self.guard = LoginGuard(settings, unlimited)
        self._clock = clock
        self._workers = workers
        self._running = 0
        self._queue: FairQueue[_Job] = FairQueue()

    async def check_password(self, name: str, password: str, address: str) -> Account:
        """The account if `password` is right; AccountError (one message) otherwise."""
        guard = self.guard
        self._refuse(guard.check_login(name, address, self._clock()))
        self._refuse(guard.enter(address))
        try:
            account = await self.accounts.authenticate(name, password, self._hasher(address))
        except AccountError:
            guard.login_failed(name, address, self._clock())
            raise
        finally:
            guard.leave(address)
        guard.login_succeeded(account.name, address, self._clock())
        return account

    def check_allowed(self, name: str, address: str) -> None:
        """LoginRefused if a password check for `name` from `address` would be refused now
        (ask before prompting for a password that would not be checked)."""
        self._refuse(self.guard.check_login(name, address, self._clock()))

    def check_new_account(self, name: str, address: str, password: str | None = None) -> None:
        """Refuse early what `create_account` would refuse (before asking for a password)."""
        self._refuse(self.guard.check_create(address, self._clock()))
        self._check_name(name, address, password)

    async def create_account(self, name: str, password: str, address: str) -> Account:
        """A new account; AccountError if the name is bad or taken, or the address is
        over its creation limit or throttled."""
        self.check_new_account(name, address, password)
        self._refuse(self.guard.enter(address))
        try:
            account = await self.accounts.create(name, password, self._hasher(address))
        except AccountError as exc:
            self._note_taken(exc, address)
            raise
        finally:
            self.guard.leave(address)
        self.guard.created(address, self._clock())
        self.guard.login_succeeded(account.name, address, self._clock())
        return account

    def queued(self) -> int:
        """Hashes waiting for a worker (not counting those running)."""
        return len(self._queue)

    def _check_name(self, name: str, address: str, password: str | None) -> None:
        try:
            self.accounts.check_new(name, password)
        except AccountError as exc:
            self._note_taken(exc, address)
            raise

    def _note_taken(self, exc: AccountError, address: str) -> None:
        if exc.problem == "taken":
            self.guard.name_taken(address, self._clock())

    @staticmethod
    def _refuse(refusal: Refusal | None) -> None:
        if refusal is not None:
            raise LoginRefused(refusal)

    def _hasher(self, address: str) -> Callable[[str, bytes, ScryptCost], asyncio.Future[bytes]]:
        def queued_hash(password: str, salt: bytes, cost: ScryptCost) -> asyncio.Future[bytes]:
            done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
            self._queue.push(address, _Job(password, salt, cost, done))
            self._pump()
            return done

        return queued_hash

    def _pump(self) -> None:
        """Start queued hashes while a worker is free (skipping abandoned ones)."""
        while self._running < self._workers:
            job = self._queue.pop()
            if job is None:
                return
            if job.done.done():  # its login was cancelled while it waited
                continue
            self._running += 1
            task = asyncio.ensure_future(self.accounts.hash(job.password, job.salt, job.cost))
            task.add_done_callback(functools.partial(self._finished, job))

    def _finished(self, job: _Job, task: asyncio.Future[bytes]) -> None:
        self._running -= 1
        if not job.done.done():
            if task.cancelled():
                job.done.cancel()
            elif (exc := task.exception()) is not None:
                job.done.set_exception(exc)
            else:
                job.done.set_result(task.result())
        self._pump()
