"""The world's tables in the game's SQLite file, and the three things done to them.

- `load`: everything, in one read transaction (a consistent snapshot at change `seq`);
- `changes_since(seq)`: the rows written after `seq` and the ids deleted after it, for a
  standby's catch-up (the `seq` columns are indexed, so this costs what changed, not the
  world's size);
- `write`: one batch of changed rows in ONE transaction, stamped with the next `seq`.

One row per object; its attributes are one MessagePack blob (decoded only when the
object's attributes are first used), its aliases and tags two small ones. Deleted rows
leave a tombstone (`world_gone`) so that a catch-up sees the deletion.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

WORLD_SCHEMA = """
CREATE TABLE IF NOT EXISTS world_objects (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    typeclass TEXT NOT NULL,
    location INTEGER,
    home INTEGER,
    destination INTEGER,
    aliases BLOB,
    tags BLOB,
    attrs BLOB,
    seq INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS world_objects_seq ON world_objects (seq);
CREATE TABLE IF NOT EXISTS world_gone (
    kind INTEGER NOT NULL,
    id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX IF NOT EXISTS world_gone_seq ON world_gone (seq);
CREATE TABLE IF NOT EXISTS world_meta (
    key TEXT PRIMARY KEY,
    value
);
CREATE TABLE IF NOT EXISTS world_typeclasses (
    path TEXT PRIMARY KEY,
    bases BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS world_timers (
    id INTEGER PRIMARY KEY,
    due REAL NOT NULL,
    interval REAL,
    path TEXT NOT NULL,
    obj INTEGER,
    args BLOB NOT NULL,
    seq INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS world_timers_seq ON world_timers (seq);
"""

GONE_OBJECT = 0
GONE_TIMER = 1

# (id, key, typeclass, location, home, destination, aliases, tags, attrs, seq)
ObjectRow = tuple[int, str, str, int | None, int | None, int | None, bytes | None,
                  bytes | None, bytes | None, int]
# (id, due, interval, path, obj, args, seq)
TimerRow = tuple[int, float, float | None, str, int | None, bytes, int]

_OBJECT_COLUMNS = "id, key, typeclass, location, home, destination, aliases, tags, attrs, seq"
_TIMER_COLUMNS = "id, due, interval, path, obj, args, seq"


@dataclass
class Snapshot:
    """What a load or a catch-up read: rows, deletions and counters as of `seq`."""

    seq: int
    objects: list[ObjectRow]
    timers: list[TimerRow]
    meta: dict[str, Any]
    bases: dict[str, list[str]]
    gone_objects: list[int] = field(default_factory=list)
    gone_timers: list[int] = field(default_factory=list)


@dataclass
class Batch:
    """One commit's changes."""

    objects: list[ObjectRow] = field(default_factory=list)
    gone_objects: list[int] = field(default_factory=list)
    timers: list[TimerRow] = field(default_factory=list)
    gone_timers: list[int] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    bases: dict[str, list[str]] = field(default_factory=dict)
    renames: dict[str, str] = field(default_factory=dict)
    kv: dict[str, bytes | None] = field(default_factory=dict)  # the game's key-value table


def create_tables(db: sqlite3.Connection) -> None:
    """Create what is missing (statement by statement: inside a caller's transaction)."""
    for statement in WORLD_SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)


def _meta(db: sqlite3.Connection) -> dict[str, Any]:
    return {key: value for key, value in db.execute("SELECT key, value FROM world_meta")}


def load(db: sqlite3.Connection) -> Snapshot:
    """The whole world, consistent as of one change `seq` (one read transaction)."""
    objects: list[ObjectRow] = []
    steps = load_steps(db, lambda snapshot: None, objects.extend)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            snapshot: Snapshot = done.value
            snapshot.objects = objects
            return snapshot


def load_steps(db: sqlite3.Connection, header: Callable[[Snapshot], None],
               take: Callable[[list[ObjectRow]], None], chunk: int = 20_000
               ) -> Generator[None, None, Snapshot]:
    """`load` in steps, all in one read transaction: `header` gets the counters and the
    typeclasses' bases first, `take` the object rows `chunk` at a time, with a yield
    after each (where a server lets its loop run: heartbeats); returns the snapshot
    (its `objects` empty: they went to `take`)."""
    db.execute("BEGIN")
    try:
        meta = _meta(db)
        bases = {path: list(msgspec.msgpack.decode(blob)) for path, blob in
                 db.execute("SELECT path, bases FROM world_typeclasses")}
        snapshot = Snapshot(int(meta.get("seq", 0)), [], [], meta, bases)
        header(snapshot)
        cursor = db.execute(f"SELECT {_OBJECT_COLUMNS} FROM world_objects")
        while batch := cursor.fetchmany(chunk):
            take(batch)
            yield
        snapshot.timers = db.execute(f"SELECT {_TIMER_COLUMNS} FROM world_timers").fetchall()
    finally:
        db.execute("COMMIT")
    return snapshot


def changes_since(db: sqlite3.Connection, seq: int) -> Snapshot:
    """What was written after change `seq`, consistent as of the newest one."""
    db.execute("BEGIN")
    try:
        meta = _meta(db)
        objects = db.execute(f"SELECT {_OBJECT_COLUMNS} FROM world_objects WHERE seq > ?",
                             (seq,)).fetchall()
        timers = db.execute(f"SELECT {_TIMER_COLUMNS} FROM world_timers WHERE seq > ?",
                            (seq,)).fetchall()
        gone = db.execute("SELECT kind, id FROM world_gone WHERE seq > ?", (seq,)).fetchall()
        bases = {path: list(msgspec.msgpack.decode(blob)) for path, blob in
                 db.execute("SELECT path, bases FROM world_typeclasses")} if objects else {}
    finally:
        db.execute("COMMIT")
    return Snapshot(int(meta.get("seq", 0)), objects, timers, meta, bases,
                    [i for k, i in gone if k == GONE_OBJECT],
                    [i for k, i in gone if k == GONE_TIMER])


def _gone(kind: int, ids: Iterable[int], seq: int) -> list[tuple[int, int, int]]:
    return [(kind, i, seq) for i in ids]


def write(db: sqlite3.Connection, batch: Batch, seq: int) -> None:
    """Write `batch` as change `seq`, in one transaction (all or nothing)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        if batch.objects:
            db.executemany(f"INSERT OR REPLACE INTO world_objects ({_OBJECT_COLUMNS}) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", batch.objects)
        if batch.gone_objects:
            db.executemany("DELETE FROM world_objects WHERE id = ?",
                           [(i,) for i in batch.gone_objects])
        if batch.timers:
            db.executemany(f"INSERT OR REPLACE INTO world_timers ({_TIMER_COLUMNS}) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?)", batch.timers)
        if batch.gone_timers:
            db.executemany("DELETE FROM world_timers WHERE id = ?",
                           [(i,) for i in batch.gone_timers])
        gone = _gone(GONE_OBJECT, batch.gone_objects, seq) + _gone(GONE_TIMER,
                                                                   batch.gone_timers, seq)
        if gone:
            db.executemany("INSERT OR REPLACE INTO world_gone (kind, id, seq) VALUES (?, ?, ?)",
                           gone)
        if batch.kv:
            db.executemany("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)",
                           [(k, v) for k, v in batch.kv.items() if v is not None])
            db.executemany("DELETE FROM kv WHERE key = ?",
                           [(k,) for k, v in batch.kv.items() if v is None])
        for old, new in batch.renames.items():
            db.execute("UPDATE world_objects SET typeclass = ?, seq = ? WHERE typeclass = ?",
                       (new, seq, old))
        if batch.bases:
            db.executemany("INSERT OR REPLACE INTO world_typeclasses (path, bases) VALUES (?, ?)",
                           [(p, msgspec.msgpack.encode(b)) for p, b in batch.bases.items()])
        meta = dict(batch.meta, seq=seq)
        db.executemany("INSERT OR REPLACE INTO world_meta (key, value) VALUES (?, ?)",
                       list(meta.items()))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def forget_tombstones(db: sqlite3.Connection, upto: int) -> None:
    """Drop tombstones at or before change `upto` (every server that could need them has
    loaded past them: a later standby loads a fresh snapshot)."""
    db.execute("DELETE FROM world_gone WHERE seq <= ?", (upto,))
