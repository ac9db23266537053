"""The game's embedded SQLite database: one connection, a key-value table for the game.

The file carries a schema version (`PRAGMA user_version`); `open_database` brings an older
file forward, one step per version, each in its own transaction, so accounts, SSH keys and
the key-value table of an existing game open unchanged. A file newer than this code is
refused with a clear message instead of being written by code that does not know it.

| version | what it added |
| --- | --- |
| 0 | accounts (with `cost`, `admin`), ssh_keys, kv (files from before versions) |
| 1 | `accounts.role` (player, builder, admin; admins kept theirs), the world's tables |
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Protocol

import msgspec

from server.world.store import create_tables as create_world_tables

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    hash BLOB NOT NULL,
    salt BLOB NOT NULL,
    cost TEXT NOT NULL DEFAULT 'n=16384,r=8,p=1',
    created REAL NOT NULL,
    admin INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS ssh_keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uid INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    blob BLOB NOT NULL,
    algorithm TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    comment TEXT NOT NULL DEFAULT '',
    added REAL NOT NULL,
    UNIQUE (uid, blob)
);
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
"""


def open_database(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the game database, in WAL mode."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # a runtime folder: private
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA busy_timeout=5000")  # `run.py admin` may write beside the server
    db.execute("PRAGMA journal_mode=WAL")
    # WAL + NORMAL: a commit is durable once written to the OS, which is what survives a
    # kill -9 of the server (not a power cut: see the README)
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(_SCHEMA)
    columns = {row[1] for row in db.execute("PRAGMA table_info(accounts)")}
    if "cost" not in columns:  # a database from before costs were stored
        db.execute("ALTER TABLE accounts ADD COLUMN cost TEXT NOT NULL "
                   "DEFAULT 'n=16384,r=8,p=1'")
    if "admin" not in columns:  # before `run.py admin`, the first account was the admin
        db.execute("ALTER TABLE accounts ADD COLUMN admin INTEGER NOT NULL DEFAULT 0")
        db.execute("UPDATE accounts SET admin = 1 WHERE id = 1")
    migrate(db)
    return db


class SchemaTooNew(RuntimeError):
    """The database was written by a newer Hearth; this code must not touch it."""


def _to_1(db: sqlite3.Connection) -> None:
    columns = {row[1] for row in db.execute("PRAGMA table_info(accounts)")}
    if "role" not in columns:
        db.execute("ALTER TABLE accounts ADD COLUMN role TEXT NOT NULL DEFAULT 'player'")
        db.execute("UPDATE accounts SET role = 'admin' WHERE admin = 1")
    create_world_tables(db)


MIGRATIONS = {1: _to_1}


def schema_version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate(db: sqlite3.Connection) -> int:
    """Bring the file to SCHEMA_VERSION (each step in one transaction, re-checked inside
    it, so two servers opening one file at once migrate it once); the version it had."""
    found = schema_version(db)
    if found > SCHEMA_VERSION:
        raise SchemaTooNew(f"the game database has schema version {found}; this Hearth "
                           f"knows up to {SCHEMA_VERSION}: upgrade Hearth")
    for version in range(found + 1, SCHEMA_VERSION + 1):
        db.execute("BEGIN IMMEDIATE")
        try:
            if schema_version(db) < version:
                MIGRATIONS[version](db)
                db.execute(f"PRAGMA user_version = {version}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    return found


class KeyValueBuffer(Protocol):
    """Where writes wait for the batch's commit (`server.world.World`), once it takes
    them: then they are committed with the world's writes and undone with a failed
    command's."""

    def kv_pending(self, key: str) -> tuple[bool, bytes | None]: ...

    def kv_put(self, key: str, blob: bytes | None) -> bool: ...


class KeyValueStore:
    """Persistent game state that survives reloads and restarts (msgpack values).

    With a `buffer` (the server's world) a write made while the server runs is part of
    the batch: committed before the batch's output leaves, undone if its command raises.
    Before that (a standby's `at_server_start`) writes go straight to the file."""

    def __init__(self, db: sqlite3.Connection, buffer: KeyValueBuffer | None = None) -> None:
        self._db = db
        self._buffer = buffer
        self._encoder = msgspec.msgpack.Encoder()

    def get(self, key: str, default: Any = None) -> Any:
        if self._buffer is not None:
            pending, blob = self._buffer.kv_pending(key)
            if pending:
                return default if blob is None else msgspec.msgpack.decode(blob)
        row = self._db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return default if row is None else msgspec.msgpack.decode(row[0])

    def set(self, key: str, value: Any) -> None:
        blob = self._encoder.encode(value)
        if self._buffer is None or not self._buffer.kv_put(key, blob):
            self._db.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)",
                             (key, blob))

    def delete(self, key: str) -> None:
        if self._buffer is None or not self._buffer.kv_put(key, None):
            self._db.execute("DELETE FROM kv WHERE key = ?", (key,))
