"""Accounts in SQLite with scrypt-hashed passwords, hashed off the event loop.

Hashing is deliberately slow (tens of milliseconds), so it runs in a small thread pool
(hashlib releases the GIL while scrypt runs): a burst of logins never stalls the players
who are already playing. Each account keeps the scrypt cost it was hashed with, so the cost
setting can change at any time: old accounts still log in, and are rehashed at the new cost
when they do.
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
from concurrent.futures import ThreadPoolExecutor

from msgspec import Struct

NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{1,29}$")
MIN_PASSWORD = 4
HASH_NICE = 10  # how much lower than the game the hashing threads run


class AccountError(ValueError):
    """A message for the player: name taken, wrong password, bad name."""


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
    def __init__(self, db: sqlite3.Connection, workers: int = 1,
                 cost: ScryptCost | None = None) -> None:
        self._db = db
        self.cost = cost or ScryptCost()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scrypt",
                                        initializer=_lower_priority)

    async def create(self, name: str, password: str) -> Account:
        """Create an account; AccountError if the name is invalid or taken."""
        if not NAME_RE.match(name):
            raise AccountError(
                "Names are 2-30 letters, digits, _ or -, and start with a letter."
            )
        if len(password) < MIN_PASSWORD:
            raise AccountError(f"Passwords need at least {MIN_PASSWORD} characters.")
        if self.find(name) is not None:
            raise AccountError(f"The name {name} is already taken.")
        salt = os.urandom(16)
        digest = await self._hash(password, salt, self.cost)
        try:
            cursor = self._db.execute(
                "INSERT INTO accounts (name, hash, salt, cost, created) VALUES (?, ?, ?, ?, ?)",
                (name, digest, salt, self.cost.encode(), time.time()),
            )
        except sqlite3.IntegrityError:
            raise AccountError(f"The name {name} is already taken.") from None
        assert cursor.lastrowid is not None
        return Account(cursor.lastrowid, name)

    async def authenticate(self, name: str, password: str) -> Account:
        """The account if the password matches; AccountError otherwise."""
        row = self._db.execute(
            "SELECT id, name, hash, salt, cost FROM accounts WHERE name = ?", (name,)
        ).fetchone()
        if row is None:
            raise AccountError("No account by that name. Use: create NAME PASSWORD")
        uid, stored_name, digest, salt, cost = row
        stored_cost = ScryptCost.decode(cost)
        if not hmac.compare_digest(await self._hash(password, salt, stored_cost), digest):
            raise AccountError("Wrong password.")
        if stored_cost != self.cost:  # the cost setting changed: rehash at the new cost
            salt = os.urandom(16)
            digest = await self._hash(password, salt, self.cost)
            self._db.execute("UPDATE accounts SET hash = ?, salt = ?, cost = ? WHERE id = ?",
                             (digest, salt, self.cost.encode(), uid))
        return Account(uid, stored_name)

    def find(self, name: str) -> Account | None:
        row = self._db.execute("SELECT id, name FROM accounts WHERE name = ?", (name,)).fetchone()
        return None if row is None else Account(row[0], row[1])

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM accounts").fetchone()[0])

    async def _hash(self, password: str, salt: bytes, cost: ScryptCost) -> bytes:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, hash_password, password, salt, cost)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
