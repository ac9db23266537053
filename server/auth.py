"""Answers to the portal's SSH login questions (`AuthRequest` -> `AuthResult`).

The portal has no database, so it asks: is this the password of the name, did it register
this public key (and, from portals before issue 23, is this name an account). A name that
is no account is answered as a wrong password is, after the same work (a hash against a
dummy salt, the same throttle and delay) and as an unregistered key is, so the answers
tell no name apart. Passwords are checked by the account store (scrypt in
its thread pool, as telnet's `connect` does). A wrong password is answered only after
`failure_delay(...)` seconds, a delay that grows with the connection's failures, on top of
the throttle every login shares (server/logins.py: delays and lockouts per address and
per account, the fair hashing queue), which checks SSH passwords as it does telnet's.
An offered public key the account does not have is
not a failed login (OpenSSH offers every key of the agent in turn) and is answered at once.
"""

from __future__ import annotations

import asyncio

from ipc.frames import AuthRequest, AuthResult
from server.accounts import AccountError, AccountStore
from server.keys import PublicKeyStore
from server.logins import Logins

FAILURE_DELAY = 1.0  # seconds per failure already made on the connection, plus one
MAX_FAILURE_DELAY = 5.0


def failure_delay(address: str, username: str, failures: int) -> float:
    """Seconds to wait before saying "wrong password" to `address` about `username`,
    whose connection had `failures` failed attempts before this one."""
    return min(FAILURE_DELAY * (failures + 1), MAX_FAILURE_DELAY)


async def answer(request: AuthRequest, accounts: AccountStore, keys: PublicKeyStore,
                 logins: Logins | None = None) -> AuthResult:
    """The answer to one request; never raises for a bad name, password or key."""
    account = accounts.find(request.username)
    name = account.name if account is not None else request.username
    ok = False
    if request.method == "query":
        ok = account is not None
    elif request.method == "publickey":
        ok = account is not None and keys.owns(account.uid, request.public_key)
    elif request.method == "password":
        try:
            if logins is not None:  # the telnet logins' throttle, lockout and fair queue
                account = await logins.check_password(name, request.password,
                                                      request.address)
            else:
                account = await accounts.authenticate(name, request.password)
            ok = True
        except AccountError:
            await asyncio.sleep(failure_delay(request.address, name, request.failures))
    if not ok or account is None:
        return AuthResult(request_id=request.request_id, ok=False,
                          message=f"{request.method} refused")
    return AuthResult(request_id=request.request_id, ok=True, uid=account.uid,
                      uname=account.name)
