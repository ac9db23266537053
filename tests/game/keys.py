"""Public keys for SSH logins: `sshkey` lists, adds and removes the player's own keys."""

from __future__ import annotations

from server.api import Context, command
from server.keys import PublicKeyError

USAGE = ("Usage: |wsshkey|n (list your keys), |wsshkey add <public key line>|n "
         "(the line of your ~/.ssh/id_ed25519.pub), |wsshkey remove <number>|n")


@command("sshkey", aliases=["sshkeys", "@sshkey"],
         help="sshkey [add LINE | remove NUMBER] - the public keys you log in with over SSH.\n"
              "  sshkey                 list your keys\n"
              "  sshkey add ssh-ed25519 AAAA... you@host   register a key (a .pub file's line)\n"
              "  sshkey remove 2        remove key 2 (or give its SHA256:... fingerprint)\n"
              "Then: ssh -p 4004 NAME@HOST logs you in with that key.")
def sshkey(ctx: Context) -> None:
    session = ctx.session
    assert session.uid is not None
    action, _, rest = ctx.args.partition(" ")
    keys = ctx.game.keys
    if not action or action == "list":
        listed = keys.list(session.uid)
        if not listed:
            session.msg("You have no SSH keys. " + USAGE)
            return
        lines = [f" {k.number}. {k.algorithm} {k.fingerprint} {k.comment}".rstrip()
                 for k in listed]
        session.msg("Your SSH keys:\n" + "\n".join(lines))
    elif action == "add":
        try:
            key = keys.add(session.uid, rest)
        except PublicKeyError as exc:
            session.msg(f"|r{exc}|n")
            return
        session.msg(f"Key {key.number} added: {key.algorithm} {key.fingerprint}. "
                    f"Log in with: ssh -p PORT {session.uname}@HOST")
    elif action in ("remove", "del", "delete"):
        removed = keys.remove(session.uid, rest.strip())
        if removed is None:
            session.msg(f"|rYou have no key '{rest.strip()}'.|n Type |wsshkey|n to list them.")
        else:
            session.msg(f"Key {removed.fingerprint} removed.")
    else:
        session.msg(USAGE)
