"""Public keys players register for SSH logins, kept per account in the game database.

A key is stored as its wire blob (what a client presents), with its algorithm, comment and
SHA256 fingerprint for listing. Keys are parsed with asyncssh, so anything stored here is
a key the portal can verify a signature with.
"""

from __future__ import annotations

import sqlite3
import time

import asyncssh
from msgspec import Struct

MAX_KEYS = 20  # per account
MAX_KEY_LINE = 16384  # an RSA-16384 key line is about 2.8 KB; this bounds hostile input
MIN_RSA_BITS = 2048  # shorter RSA keys can be factored by a determined attacker (NIST SP 800-131A)


class PublicKeyError(ValueError):
    """A message for the player: not a public key, already registered, too many."""


class PublicKey(Struct, frozen=True):
    number: int  # position in the player's list, from 1
    algorithm: str
    fingerprint: str
    comment: str


def parse_key(line: str) -> asyncssh.SSHKey:
    """One OpenSSH public key line ("ssh-ed25519 AAAA... comment"); PublicKeyError if it is not."""
    line = line.strip()
    if not line or len(line) > MAX_KEY_LINE:
        raise PublicKeyError("Give one public key line, as in ~/.ssh/id_ed25519.pub.")
    if "PRIVATE KEY" in line:
        raise PublicKeyError("That is a private key: never paste it anywhere. "
                        "Give the .pub file's line.")
    try:
        key = asyncssh.import_public_key(line)
    except (asyncssh.KeyImportError, ValueError, TypeError):
        raise PublicKeyError("That is not an OpenSSH public key line "
                        "(it looks like: ssh-ed25519 AAAA... you@host).") from None
    check_strength(key)
    return key


def check_strength(key: asyncssh.SSHKey) -> None:
    """PublicKeyError for a key too weak to trust: RSA under MIN_RSA_BITS bits, and DSA
    (always 1024 bits; OpenSSH dropped it). A weak key registered before this check can
    no longer log in either: `owns` parses through here."""
    algorithm = key.get_algorithm()
    if algorithm == "ssh-dss":
        raise PublicKeyError("DSA keys are too weak (1024 bits). Make an ed25519 key: "
                             "ssh-keygen -t ed25519")
    bits = getattr(key.pyca_key, "key_size", None) if algorithm == "ssh-rsa" else None
    if bits is not None and bits < MIN_RSA_BITS:
        raise PublicKeyError(f"That RSA key has {bits} bits: at least {MIN_RSA_BITS} are "
                             f"needed. Make an ed25519 key: ssh-keygen -t ed25519")


class PublicKeyStore:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def add(self, uid: int, line: str) -> PublicKey:
        """Register a key for account `uid`; PublicKeyError when it cannot be."""
        key = parse_key(line)
        if len(self.list(uid)) >= MAX_KEYS:
            raise PublicKeyError(f"You have {MAX_KEYS} keys already; remove one first.")
        try:
            self._db.execute(
                "INSERT INTO ssh_keys (uid, blob, algorithm, fingerprint, comment, added) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (uid, key.public_data, key.get_algorithm(), key.get_fingerprint(),
                 key.get_comment() or "", time.time()))
        except sqlite3.IntegrityError:
            raise PublicKeyError("That key is registered already.") from None
        return next(k for k in self.list(uid) if k.fingerprint == key.get_fingerprint())

    def list(self, uid: int) -> list[PublicKey]:
        rows = self._db.execute(
            "SELECT algorithm, fingerprint, comment FROM ssh_keys WHERE uid = ? ORDER BY id",
            (uid,)).fetchall()
        return [PublicKey(n, *row) for n, row in enumerate(rows, 1)]

    def remove(self, uid: int, which: str) -> PublicKey | None:
        """Remove the key numbered `which` (as listed) or with that fingerprint."""
        for key in self.list(uid):
            if which in (str(key.number), key.fingerprint):
                self._db.execute("DELETE FROM ssh_keys WHERE uid = ? AND fingerprint = ?",
                                 (uid, key.fingerprint))
                return key
        return None

    def owns(self, uid: int, line: str) -> bool:
        """Whether account `uid` registered the key of this OpenSSH line."""
        try:
            blob = parse_key(line).public_data
        except PublicKeyError:
            return False
        row = self._db.execute("SELECT 1 FROM ssh_keys WHERE uid = ? AND blob = ?",
                               (uid, blob)).fetchone()
        return row is not None
