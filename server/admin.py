"""`run.py admin NAME`: make an account one of the game's admins, creating it if needed.

`--role builder` grants the builder role instead (`--role admin` is the default; an admin
may do what a builder may); `--revoke` takes the role away and leaves a player (revoking
builder from an admin takes admin too, since admin includes it). Granting a role an
account already has, or one below the one it has, changes nothing.

The CLI runs this as `python -m server.admin GAME_DIR NAME [--revoke] [--role ROLE]`, so
that only the server package opens the game's database. It works whether the game is
running or not (SQLite in WAL mode), and a running server reads the role at every command
that needs one,
so a change applies at once. A new account's password is asked twice on the terminal,
unseen, or read from the first line of standard input when that is not a terminal
(scripts, containers: `printf '%s\\n' "$PW" | run.py admin alice`).

Exit codes as the CLI's: 0 done, 1 failed (with a one-line reason), 2 usage or settings.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from pathlib import Path

from ipc.settings import (
    SettingsError,
    UnsafeFolder,
    load_settings,
    make_private_dirs,
    runtime_paths,
)
from server.accounts import ROLES, AccountError, AccountStore, ScryptCost, role_allows
from server.store import open_database


def read_password() -> str:
    """The new account's password: twice on a terminal, else stdin's first line."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password for the new account: ")
    if getpass.getpass("Type it again: ") != first:
        raise AccountError("the two passwords differ; nothing was changed", "wrong")
    return first


def _a(role: str) -> str:
    return f"an {role}" if role[0] in "aeiou" else f"a {role}"


def grant(store: AccountStore, name: str, revoke: bool, role: str = "admin") -> str:
    """Give `name` the role (creating the account) or, with `revoke`, take it; what was
    done."""
    existing = store.find(name)
    if existing is None and revoke:
        raise AccountError(f"There is no account {name}.", "wrong")
    if existing is not None:
        current = store.role(existing.uid)
        if revoke:
            if not role_allows(current, role):
                return f"{existing.name} is not {_a(role)}; nothing changed."
            store.set_role(name, "player")
            return f"{existing.name} is no longer {_a(role)}."
        if role_allows(current, role):
            return f"{existing.name} is already {_a(current)}; nothing changed."
        store.set_role(name, role)
        return f"{existing.name} is now {_a(role)}."
    store.check_new(name)  # a bad name is refused before a password is asked for
    account = asyncio.run(store.create(name, read_password(), admin=role == "admin"))
    if role != "admin":
        store.set_role(account.name, role)
    return f"Created the account {account.name}; it is {_a(role)}."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server.admin")
    parser.add_argument("game_dir", type=Path)
    parser.add_argument("name")
    parser.add_argument("--revoke", action="store_true")
    parser.add_argument("--role", choices=[r for r in ROLES if r != "player"], default="admin")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.game_dir)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    paths = runtime_paths(args.game_dir)
    try:
        make_private_dirs(paths)
    except UnsafeFolder as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    store = AccountStore(open_database(paths.database), cost=ScryptCost(n=settings.server.scrypt_n))
    try:
        print(grant(store, args.name, args.revoke, args.role))
    except AccountError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
