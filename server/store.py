"""The game's embedded SQLite database: one connection, a key-value table for the game."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import msgspec

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
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(_SCHEMA)
    columns = {row[1] for row in db.execute("PRAGMA table_info(accounts)")}
    if "cost" not in columns:  # a database from before costs were stored
        db.execute("ALTER TABLE accounts ADD COLUMN cost TEXT NOT NULL "
                   "DEFAULT 'n=16384,r=8,p=1'")
    if "admin" not in columns:  # before `run.py admin`, the first account was the admin
        db.execute("ALTER TABLE accounts ADD COLUMN admin INTEGER NOT NULL DEFAULT 0")
        db.execute("UPDATE accounts SET admin = 1 WHERE id = 1")
    return db


class KeyValueStore:
    """Persistent game state that survives reloads and restarts (msgpack values)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._encoder = msgspec.msgpack.Encoder()

    def get(self, key: str, default: Any = None) -> Any:
        row = self._db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return default if row is None else msgspec.msgpack.decode(row[0])

    def set(self, key: str, value: Any) -> None:
        blob = self._encoder.encode(value)
        self._db.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (key, blob))

    def delete(self, key: str) -> None:
        self._db.execute("DELETE FROM kv WHERE key = ?", (key,))
