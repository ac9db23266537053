"""SSH authentication without sockets: the portal's waiting requests, the server's answers,
and the registered keys."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from ipc.frames import AuthMethod, AuthRequest, AuthResult, Frame
from portal.auth import AuthRequests
from server import auth
from server.accounts import AccountStore, ScryptCost
from server.keys import PublicKeyError, PublicKeyStore, parse_key
from server.store import open_database


def test_requests_wait_for_a_server_and_are_resent_to_the_next() -> None:
    async def scenario() -> None:
        table = AuthRequests()
        first: list[Frame] = []
        second: list[Frame] = []
        asking = asyncio.ensure_future(table.ask("password", "alice", 5.0, password="pw"))
        await asyncio.sleep(0)
        assert len(table) == 1  # no server: held
        table.attach(first.append)
        assert [type(f) for f in first] == [AuthRequest]
        table.detach()  # that server died without answering
        table.attach(second.append)
        request = second[0]
        assert isinstance(request, AuthRequest) and request.password == "pw"
        table.receive_result(AuthResult(request_id=request.request_id + 99, ok=True))
        table.receive_result(AuthResult(request_id=request.request_id, ok=True, uid=3,
                                        uname="Alice"))
        table.receive_result(AuthResult(request_id=request.request_id, ok=False))  # late dup
        result = await asking
        assert (result.ok, result.uid, result.uname) == (True, 3, "Alice")
        assert len(table) == 0
        asking_new = asyncio.ensure_future(table.ask("query", "bob", 5.0))
        await asyncio.sleep(0)
        assert isinstance(second[-1], AuthRequest) and second[-1].method == "query"
        asking_new.cancel()  # the client gave up: forgotten
        with pytest.raises(asyncio.CancelledError):
            await asking_new
        assert len(table) == 0

    asyncio.run(scenario())


def test_a_request_nobody_answers_times_out_and_is_forgotten() -> None:
    async def scenario() -> None:
        table = AuthRequests()
        with pytest.raises(TimeoutError):
            await table.ask("query", "alice", 0.05)
        assert len(table) == 0

    asyncio.run(scenario())


def key_line(comment: str = "me@host") -> str:
    key = asyncssh.generate_private_key("ssh-ed25519", comment=comment)
    return key.export_public_key("openssh").decode().strip()


def test_server_answers_query_password_and_key(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    delays: list[tuple[str, str, int]] = []

    def no_delay(address: str, username: str, failures: int) -> float:
        delays.append((address, username, failures))
        return 0.0

    monkeypatch.setattr(auth, "failure_delay", no_delay)

    async def scenario() -> None:
        db = open_database(tmp_path / "game.db")
        accounts = AccountStore(db, cost=ScryptCost(n=1024))
        keys = PublicKeyStore(db)
        alice = await accounts.create("Alice", "secret1")
        line = key_line()
        keys.add(alice.uid, line)

        async def ask(method: AuthMethod, username: str, **fields: Any) -> AuthResult:
            request = AuthRequest(request_id=7, method=method, username=username, **fields)
            return await auth.answer(request, accounts, keys)

        results = [
            await ask("query", "alice"),
            await ask("query", "nobody"),
            await ask("password", "ALICE", password="secret1"),
            await ask("password", "alice", password="wrong", address="1.2.3.4", failures=2),
            await ask("publickey", "alice", public_key=line),
            await ask("publickey", "alice", public_key=key_line()),
            await ask("publickey", "alice", public_key="not a key"),
            # a name that is no account: the same answers, after the same hash and delay
            await ask("password", "nobody", password="wrong", address="1.2.3.4", failures=2),
            await ask("publickey", "nobody", public_key=line),
        ]
        assert [r.ok for r in results] == [True, False, True, False, True, False, False,
                                           False, False]
        assert results[3].message == results[7].message
        assert results[5].message == results[8].message
        assert results[2].uname == "Alice" and results[2].uid == alice.uid
        assert all(r.request_id == 7 for r in results)
        assert delays == [("1.2.3.4", "Alice", 2), ("1.2.3.4", "nobody", 2)]  # wrong ones
        accounts.close()

    asyncio.run(scenario())


def test_failure_delay_grows_per_connection_and_is_bounded() -> None:
    delays = [auth.failure_delay("a", "b", n) for n in range(10)]
    assert delays == sorted(delays) and delays[0] > 0 and delays[-1] <= auth.MAX_FAILURE_DELAY


def test_key_store_add_list_remove(tmp_path: Path) -> None:
    keys = PublicKeyStore(open_database(tmp_path / "game.db"))
    first, second = key_line("one"), key_line("two")
    added = keys.add(1, first)
    assert added.number == 1 and added.comment == "one"
    assert added.fingerprint.startswith("SHA256:")
    keys.add(1, second + "   ")
    with pytest.raises(PublicKeyError, match="already"):
        keys.add(1, first)
    keys.add(2, first)  # another account may use the same key
    assert [k.comment for k in keys.list(1)] == ["one", "two"]
    assert keys.owns(1, first.rsplit(" ", 1)[0])  # the comment does not matter
    assert keys.remove(1, "1") == added
    assert not keys.owns(1, first) and keys.owns(2, first)
    assert keys.remove(1, keys.list(1)[0].fingerprint) is not None
    assert keys.remove(1, "1") is None and keys.list(1) == []
    for bad, message in [("", "one public key"), ("ssh-ed25519 AAAA", "not an OpenSSH"),
                         ("-----BEGIN OPENSSH PRIVATE KEY-----", "private key")]:
        with pytest.raises(PublicKeyError, match=message):
            parse_key(bad)


def test_weak_rsa_keys_are_refused_and_2048_bits_taken(tmp_path: Path) -> None:
    """Issue 23: `sshkey add` took a 1024-bit RSA key."""
    keys = PublicKeyStore(open_database(tmp_path / "game.db"))

    def rsa_line(bits: int) -> str:
        key = asyncssh.generate_private_key("ssh-rsa", key_size=bits, comment=f"rsa{bits}")
        return key.export_public_key().decode().strip()

    weak = rsa_line(1024)
    with pytest.raises(PublicKeyError, match="1024 bits: at least 2048"):
        keys.add(1, weak)
    assert not keys.owns(1, weak) and keys.list(1) == []
    assert keys.add(1, rsa_line(2048)).algorithm == "ssh-rsa"
