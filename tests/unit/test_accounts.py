"""Accounts: scrypt hashing off the loop, clear errors, and a cost that can change."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from server.accounts import AccountError, AccountStore, ScryptCost
from server.store import open_database

LOW = ScryptCost(n=1024)
HIGHER = ScryptCost(n=2048)


def cost_of(db: sqlite3.Connection, name: str) -> str:
    return str(db.execute("SELECT cost FROM accounts WHERE name = ?", (name,)).fetchone()[0])


def test_create_and_authenticate_with_clear_errors(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = AccountStore(open_database(tmp_path / "game.db"), cost=LOW)
        alice = await store.create("alice", "secret1")
        assert (await store.authenticate("ALICE", "secret1")).uid == alice.uid
        with pytest.raises(AccountError, match="already taken"):
            await store.create("Alice", "other1")
        with pytest.raises(AccountError, match="Names are"):
            await store.create("1bad", "secret1")
        store.close()

    asyncio.run(scenario())


def test_unknown_name_and_wrong_password_get_one_answer_after_equal_work(
        tmp_path: Path) -> None:
    """Neither the message nor the work (one hash each) tells whether a name exists."""
    async def scenario() -> None:
        store = AccountStore(open_database(tmp_path / "game.db"), cost=LOW)
        await store.create("alice", "secret1")
        hashed: list[ScryptCost] = []

        async def counting(password: str, salt: bytes, cost: ScryptCost) -> bytes:
            hashed.append(cost)
            return await store.hash(password, salt, cost)

        answers = []
        for name in ("alice", "nosuchname", "1-invalid"):
            with pytest.raises(AccountError) as caught:
                await store.authenticate(name, "wrongpass", counting)
            answers.append((str(caught.value), caught.value.problem))
        assert answers == [("Wrong name or password.", "wrong")] * 3
        assert hashed == [LOW] * 3
        store.close()

    asyncio.run(scenario())


def test_admins_are_named_not_first(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = AccountStore(open_database(tmp_path / "game.db"), cost=LOW)
        first = await store.create("first", "secret1")
        boss = await store.create("boss", "secret1", admin=True)
        assert not store.is_admin(first.uid) and store.is_admin(boss.uid)
        store.set_admin("first")
        assert store.is_admin(first.uid)
        store.set_admin("boss", False)
        assert not store.is_admin(boss.uid)
        with pytest.raises(AccountError, match="no account"):
            store.set_admin("nobody")
        store.close()

    asyncio.run(scenario())


def test_a_changed_cost_still_logs_old_accounts_in_and_rehashes_them(tmp_path: Path) -> None:
    async def scenario() -> None:
        db = open_database(tmp_path / "game.db")
        old = AccountStore(db, cost=LOW)
        await old.create("carol", "secret1")
        assert cost_of(db, "carol") == LOW.encode()
        new = AccountStore(db, cost=HIGHER)
        await new.authenticate("carol", "secret1")
        assert cost_of(db, "carol") == HIGHER.encode()
        await new.authenticate("carol", "secret1")  # and the new hash checks out
        old.close()
        new.close()

    asyncio.run(scenario())


def test_a_database_from_before_costs_were_stored_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "game.db"
    legacy = sqlite3.connect(path)
    legacy.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT "
                   "NOT NULL UNIQUE COLLATE NOCASE, hash BLOB NOT NULL, salt BLOB NOT NULL, "
                   "created REAL NOT NULL)")
    legacy.commit()
    legacy.close()
    legacy = sqlite3.connect(path)
    legacy.execute("INSERT INTO accounts (name, hash, salt, created) VALUES "
                   "('old', x'00', x'00', 0), ('other', x'00', x'00', 0)")
    legacy.commit()
    legacy.close()
    db = open_database(path)
    columns = {row[1] for row in db.execute("PRAGMA table_info(accounts)")}
    assert {"cost", "admin"} <= columns
    # before admins were named, the first account was the admin: it stays one
    assert db.execute("SELECT name FROM accounts WHERE admin = 1").fetchall() == [("old",)]


def test_cost_text_round_trips() -> None:
    assert ScryptCost.decode(ScryptCost(n=4096, r=8, p=2).encode()) == ScryptCost(4096, 8, 2)
