"""Accounts in SQLite with scrypt-hashed passwords, hashed off the event loop.

Hashing is deliberately slow (tens of milliseconds), so it runs in a small thread pool
(hashlib releases the GIL while scrypt runs): a burst of logins never stalls the players
who are already playing. Each account keeps the scrypt cost it was hashed with, so the cost
setting can change at any time: old accounts still log in, and are rehashed at the new cost
when they do.

Logging in answers "no such account" and "wrong password" with one message after the same
work (an unknown name is hashed against a dummy salt), so neither the answer nor its time
tells whether a name exists. Throttling, lockouts and the fair hashing queue are in
`server.logins`, in front of this store.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import re
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

from msgspec import Struct

NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{1,29}$")
MIN_PASSWORD = 4
HASH_NICE = 10  # how much lower than the game the hashing threads run


WRONG_LOGIN = "Wrong name or password."
# The roles an account may have, lowest first; each includes those before it (an admin may
# do what a builder may).
ROLES = ("player", "builder", "admin")
Role = Literal["player", "builder", "admin"]


def role_allows(role: str, needed: str) -> bool:
    """Whether an account of `role` may do what `needed` may (admin ⊇ builder ⊇ player)."""
    rank = {name: i for i, name in enumerate(ROLES)}
    return rank.get(role, 0) >= rank.get(needed, len(ROLES))


# Why an account operation failed; `str(error)` is the message for the player.
AccountProblem = Literal["bad_name", "short_password", "taken", "wrong", "in_use", "refused",
                         "other"]


class AccountError(ValueError):
    """A message for the player (`str(error)`), with a cause to match on (`problem`)."""

    def __init__(self, message: str, problem: AccountProblem = "other") -> None:
        super().__init__(message)
        self.problem: AccountProblem = problem


# Hashes `password` with `salt` at `cost`; the store's own thread pool by default, or a
# caller's queue in front of it (`server.logins` queues logins fairly per address).
Hasher = Callable[[str, bytes, "ScryptCost"], Awaitable[bytes]]


class Account(Struct, frozen=True):
    uid: int
    name: str


class ScryptCost(Struct, frozen=True):
    """scrypt's work factors; stored with each account as text like "n=16384,r=8,p=1"."""

    n: int = 2**14
    r: int = 8
    p: int = 1

    def encode(self) -> str:
        return f"n={self.n},r={self.r},p={self.p}"

    @classmethod
    def decode(cls, text: str) -> ScryptCost:
        fields = dict(part.split("=", 1) for part in text.split(","))
        return cls(n=int(fields["n"]), r=int(fields["r"]), p=int(fields["p"]))


def hash_password(password: str, salt: bytes, cost: ScryptCost) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=cost.n, r=cost.r, p=cost.p,
                          maxmem=256 * cost.n * cost.r + (1 << 20), dklen=32)


def _lower_priority() -> None:
    """Hashing threads run at a lower priority than the game loops (Linux: per thread)."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASH_NICE)


class AccountStore:
    """Accounts in the game database. `create` and `authenticate` hash through `hasher`
    when given one, else through this store's own pool (`hash`)."""

    def __init__(self, db: sqlite3.Connection, workers: int = 1,
                 cost: ScryptCost | None = None) -> None:
        self._db = db
        self.cost = cost or ScryptCost()
        self._dummy_salt = os.urandom(16)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scrypt",
                                        initializer=_lower_priority)

    def check_new(self, name: str, password: str | None = None) -> None:
        """AccountError if `name` is invalid or taken, or `password` (if given) too short."""
        if not NAME_RE.match(name):
            raise AccountError(
                "Names are 2-30 letters, digits, _ or -, and start with a letter.", "bad_name"
            )
        if password is not None and len(password) < MIN_PASSWORD:
            raise AccountError(f"Passwords need at least {MIN_PASSWORD} characters.",
                               "short_password")
        if self.find(name) is not None:
            raise AccountError(f"The name {name} is already taken.", "taken")

    async def create(self, name: str, password: str, hasher: Hasher | None = None,
                     admin: bool = False) -> Account:
        """Create an account; AccountError if the name is invalid or taken."""
        self.check_new(name, password)
        salt = os.urandom(16)
        digest = await (hasher or self.hash)(password, salt, self.cost)
        try:
            cursor = self._db.execute(
                "INSERT INTO accounts (name, hash, salt, cost, created, admin, role) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (name, digest, salt, self.cost.encode(), time.time(), int(admin),
                 "admin" if admin else "player"),
            )
        except sqlite3.IntegrityError:
            raise AccountError(f"The name {name} is already taken.", "taken") from None
        assert cursor.lastrowid is not None
        return Account(cursor.lastrowid, name)

    async def authenticate(self, name: str, password: str,
                           hasher: Hasher | None = None) -> Account:
        """The account if the password matches; AccountError(WRONG_LOGIN) otherwise.

        An unknown name costs one hash too (against a dummy salt) and gets the same
        message, so a caller cannot tell it from a wrong password."""
        hasher = hasher or self.hash
        row = self._db.execute(
            "SELECT id, name, hash, salt, cost FROM accounts WHERE name = ?", (name,)
        ).fetchone()
        if row is None:
            await hasher(password, self._dummy_salt, self.cost)
            raise AccountError(WRONG_LOGIN, "wrong")
        uid, stored_name, digest, salt, cost = row
        stored_cost = ScryptCost.decode(cost)
        if not hmac.compare_digest(await hasher(password, salt, stored_cost), digest):
            raise AccountError(WRONG_LOGIN, "wrong")
        if stored_cost != self.cost:  # the cost setting changed: rehash at the new cost
            salt = os.urandom(16)
            digest = await hasher(password, salt, self.cost)
            self._db.execute("UPDATE accounts SET hash = ?, salt = ?, cost = ? WHERE id = ?",
                             (digest, salt, self.cost.encode(), uid))
        return Account(uid, stored_name)

    def find(self, name: str) -> Account | None:
        row = self._db.execute("SELECT id, name FROM accounts WHERE name = ?", (name,)).fetchone()
        return None if row is None else Account(row[0], row[1])

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM accounts").fetchone()[0])

    def is_admin(self, uid: int) -> bool:
        """Read from the database each time, so `run.py admin` takes effect at once."""
        return self.role(uid) == "admin"

    def role(self, uid: int) -> str:
        """The account's role ("player", "builder" or "admin"), read each time; "" if
        there is no such account."""
        row = self._db.execute("SELECT role FROM accounts WHERE id = ?", (uid,)).fetchone()
        return "" if row is None else str(row[0])

    def has_role(self, uid: int, needed: str) -> bool:
        """Whether the account may do what `needed` may (an admin what a builder may)."""
        return role_allows(self.role(uid), needed)

    def set_role(self, name: str, role: str) -> Account:
        """Give an existing account exactly `role`; AccountError if there is none."""
        if role not in ROLES:
            raise AccountError(f"Roles are {', '.join(ROLES)}.", "other")
        account = self.find(name)
        if account is None:
            raise AccountError(f"There is no account {name}.", "wrong")
        self._db.execute("UPDATE accounts SET role = ?, admin = ? WHERE id = ?",
                         (role, int(role == "admin"), account.uid))
        return account

    def set_admin(self, name: str, admin: bool = True) -> Account:
        """Make an existing account an admin (or, with False, a player); AccountError if
        there is none."""
        return self.set_role(name, "admin" if admin else "player")

    async def hash(self, password: str, salt: bytes, cost: ScryptCost) -> bytes:
        """Hash in this store's thread pool (`workers` threads, lowered priority)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, hash_password, password, salt, cost)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
