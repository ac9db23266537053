"""Issue 11: SSH with the OpenSSH client (in a pty) and asyncssh's client.

OpenSSH logs in by password (answering its prompt) and by a registered key, talks with a
telnet player, lives through `run.py reload` and a `kill -9` of the server, and reports a
window resize. asyncssh's client covers what a terminal cannot show well: wrong password,
unknown key, three failures, a login while the server is down or hung, and a client that
stops reading.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from benchmarks.client import GameRunner, MudClient, kill9
from portal.ssh.server import MSG_TIMEOUT, MSG_TOO_MANY
from tests.clients import require
from tests.integration.test_telnet_clients import PtyClient, parse_flags

TIMEOUT = 20.0
SETTINGS: dict[str, Any] = {"portal": {"ssh_port": 0},
                            "supervisor": {"hang_timeout": 3.0, "backoff_max": 0.5}}


def started(game_factory: type[GameRunner], **sections: dict[str, Any]) -> GameRunner:
    settings = {key: dict(value) for key, value in SETTINGS.items()}
    for section, values in sections.items():
        settings.setdefault(section, {}).update(values)
    game = game_factory(settings)
    game.start()
    return game


def ssh_port(game: GameRunner) -> int:
    return int(game.status()["ports"]["ssh"])


def openssh(port: int, user: str, *extra: str, key: Path | None = None,
            command: str = "") -> list[str]:
    """OpenSSH without the user's config, agent or known hosts: only what the test gives."""
    auth = (["-i", str(key), "-o", "IdentitiesOnly=yes",
             "-o", "PreferredAuthentications=publickey"] if key else
            ["-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password"])
    return [require("ssh"), "-F", "/dev/null", "-p", str(port),
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", "-o", "IdentityAgent=none", "-o", "SendEnv=COLORTERM",
            *auth, *extra, f"{user}@127.0.0.1", *([command] if command else [])]


def make_key(folder: Path, name: str = "id_ed25519") -> Path:
    path = folder / name
    subprocess.run([require("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-C",
                    f"{name}@test", "-f", str(path)], check=True, timeout=30)
    return path


async def telnet_player(game: GameRunner, name: str) -> MudClient:
    client = MudClient(name)
    await client.connect(game.port)
    await client.login(name)
    return client


async def flags_of(client: PtyClient, *names: str) -> dict[str, Any]:
    client.send(" ".join(["@flags", *names]))
    await client.expect(r"protocol: ssh")
    start = client.cursor
    await client.expect(r"\(\d+ flags\)")
    return parse_flags(client.text()[start:client.cursor])


def client_options(port: int, username: str, **kwargs: Any) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": port, "username": username, "known_hosts": None,
            "agent_path": None, "client_keys": None, **kwargs}


# ---------------------------------------------------------------- OpenSSH in a pty


def test_openssh_password_login_talks_survives_reload_and_kill9_and_resizes(
        game_factory: type[GameRunner], monkeypatch: pytest.MonkeyPatch) -> None:
    require("ssh")
    monkeypatch.setenv("COLORTERM", "truecolor")
    game = started(game_factory, server={"multisession": "allow"})  # alice plays twice
    port = ssh_port(game)

    async def scenario() -> None:
        bob = await telnet_player(game, "bob")
        alice_telnet = await telnet_player(game, "alice")  # creates the account, stays
        client = PtyClient(openssh(port, "alice"), cols=120, rows=40)
        try:
            await client.expect(r"password:")
            client.send("secret1")
            await client.expect(r"Hearth Hall")
            assert "connect <username>" not in client.text(), "an SSH login saw the screen"
            await bob.expect(r"alice has entered the hall")
            client.send("say hello from openssh")
            await bob.expect(r'alice says, "hello from openssh"')
            bob.send("say hello back over telnet")
            await client.expect(r'bob says, "hello back over telnet"')

            flags = await flags_of(client)
            assert flags["SCREENWIDTH"] == {"0": 120} and flags["SCREENHEIGHT"] == {"0": 40}
            assert flags["TERM"] == "xterm-256color" and flags["XTERM256"] is True
            assert flags["TRUECOLOR"] is True and flags["UTF-8"] is True
            assert flags["CLIENTNAME"].startswith("OPENSSH")
            client.resize(150, 50)  # the kernel sends ssh SIGWINCH; it sends window-change
            deadline = time.monotonic() + TIMEOUT
            while (await flags_of(client, "SCREENWIDTH"))["SCREENWIDTH"] != {"0": 150}:
                assert time.monotonic() < deadline, "the resize never reached the game"
            assert (await flags_of(client, "SCREENHEIGHT"))["SCREENHEIGHT"] == {"0": 50}

            result = await asyncio.to_thread(game.cli, "reload")
            assert result.returncode == 0, result.stdout + result.stderr
            client.send("ping after reload")
            await client.expect(r"pong after reload")

            kill9(game.pid_of("server"))
            client.send("ping während des Absturzes")  # typed while no server runs
            await client.expect(r"pong während des Absturzes")
            client.send("say still here")
            await bob.expect(r'alice says, "still here"')
            assert not client.closed
            client.send("who")
            await client.expect(r"Players online \(3\): alice, alice, bob")
        finally:
            client.close()
            bob.close()
            alice_telnet.close()

    asyncio.run(scenario())


def test_openssh_key_login_registered_in_game_and_exec(
        game_factory: type[GameRunner], tmp_path: Path) -> None:
    require("ssh")
    game = started(game_factory, server={"multisession": "allow"})  # alice plays twice
    port = ssh_port(game)
    key = make_key(tmp_path)
    line = key.with_suffix(".pub").read_text().strip()

    async def scenario() -> None:
        alice = await telnet_player(game, "alice")
        alice.send(f"sshkey add {line}")
        await alice.expect(r"Key 1 added: ssh-ed25519 SHA256:")
        alice.send("sshkey")
        await alice.expect(r"1\. ssh-ed25519 SHA256:\S+ id_ed25519@test")
        client = PtyClient(openssh(port, "alice", key=key), cols=100, rows=30)
        try:
            await client.expect(r"Hearth Hall")
            assert "password" not in client.text()
            client.send("say signed in with a key")
            await alice.expect(r'alice says, "signed in with a key"')
            # Ctrl-D on an empty line quits
            os.write(client.master, b"\x04")
            await client.expect(r"Goodbye!")
            await asyncio.to_thread(client.proc.wait, TIMEOUT)
        finally:
            client.close()
        # no pty: one command, run as the account, then exit with its output
        done = await asyncio.to_thread(
            subprocess.run, openssh(port, "alice", "-T", key=key, command="who"),
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("Players online (2): alice, alice"), done.stdout
        assert "\x1b[" not in done.stdout and "Hearth Hall" not in done.stdout
        alice.send("sshkey remove 1")
        await alice.expect(r"removed")
        refused = await asyncio.to_thread(
            subprocess.run, openssh(port, "alice", "-T", "-o", "BatchMode=yes", key=key,
                                    command="who"),
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT)
        assert refused.returncode == 255 and "Permission denied" in refused.stderr
        alice.close()

    asyncio.run(scenario())


# ---------------------------------------------------------------- asyncssh's client


def test_new_name_gets_the_connection_screen_and_can_create(
        game_factory: type[GameRunner]) -> None:
    game = started(game_factory)
    port = ssh_port(game)

    async def scenario() -> None:
        async with asyncssh.connect(**client_options(port, "new")) as conn:
            proc = await conn.create_process(term_type="xterm", term_size=(80, 24))
            await asyncio.wait_for(proc.stdout.readuntil("create <username>"), TIMEOUT)
            proc.stdin.write("create newcomer pass1234\r")
            await asyncio.wait_for(proc.stdout.readuntil("Hearth Hall"), TIMEOUT)
            proc.close()
        async with asyncssh.connect(**client_options(port, "newcomer",
                                                     password="pass1234")) as conn:
            result = await asyncio.wait_for(conn.run("who"), TIMEOUT)
            assert result.stdout == "Players online (1): newcomer\n"
        async with asyncssh.connect(**client_options(port, "new")) as conn:
            # the portal is a game, not a way into the host's network or files
            with pytest.raises(asyncssh.ChannelOpenError):
                await conn.open_connection("127.0.0.1", game.port)
            with pytest.raises((asyncssh.ChannelOpenError, asyncssh.SFTPError)):
                await conn.start_sftp_client()

    asyncio.run(scenario())


def test_wrong_password_unknown_key_and_three_failures(
        game_factory: type[GameRunner]) -> None:
    game = started(game_factory)
    port = ssh_port(game)

    class Guesser(asyncssh.SSHClient):
        tries = 0

        def password_auth_requested(self) -> str:
            Guesser.tries += 1
            return f"wrong{Guesser.tries}"

    async def scenario() -> None:
        (await telnet_player(game, "alice")).close()
        with pytest.raises(asyncssh.PermissionDenied):
            await asyncssh.connect(**client_options(port, "alice", password="nope"))
        stranger = asyncssh.generate_private_key("ssh-ed25519")
        with pytest.raises(asyncssh.PermissionDenied):
            await asyncssh.connect(**client_options(port, "alice", client_keys=[stranger],
                                                    password_auth=False))
        start = time.monotonic()
        with pytest.raises(asyncssh.DisconnectError) as caught:
            await asyncio.wait_for(asyncssh.connect(
                **client_options(port, "alice"), client_factory=Guesser), 60)
        assert MSG_TOO_MANY in str(caught.value)
        assert Guesser.tries == 3
        assert time.monotonic() - start >= 2.0, "failed logins were not delayed"

    asyncio.run(scenario())


def test_login_waits_for_a_hung_server_and_is_answered_by_the_next(
        game_factory: type[GameRunner]) -> None:
    game = started(game_factory)
    port = ssh_port(game)

    async def scenario() -> None:
        (await telnet_player(game, "alice")).close()
        server = game.pid_of("server")
        os.kill(server, signal.SIGSTOP)  # requests reach it and get no answer
        try:
            start = time.monotonic()
            async with asyncssh.connect(**client_options(port, "alice",
                                                         password="secret1")) as conn:
                result = await asyncio.wait_for(conn.run("who"), TIMEOUT)
            assert result.stdout == "Players online (1): alice\n"
            assert game.pid_of("server") != server, "the hung server answered?"
            assert time.monotonic() - start < 30
        finally:
            with contextlib.suppress(ProcessLookupError):  # killed as hung by then
                os.kill(server, signal.SIGCONT)
        # and during a reload: the login is answered by one server or the other
        async def login() -> asyncssh.SSHClientConnection:
            return await asyncssh.connect(**client_options(port, "alice", password="secret1"))

        logging_in = asyncio.create_task(login())
        result_reload = await asyncio.to_thread(game.cli, "reload")
        assert result_reload.returncode == 0, result_reload.stdout
        async with await asyncio.wait_for(logging_in, TIMEOUT) as conn:
            assert (await conn.run("ping ok")).stdout == "pong ok\n"

    asyncio.run(scenario())


def test_login_timeout_tells_the_client(game_factory: type[GameRunner]) -> None:
    game = started(game_factory, portal={"ssh_auth_timeout": 1.5},
                   supervisor={"hang_timeout": 60.0})
    port = ssh_port(game)

    async def scenario() -> None:
        (await telnet_player(game, "alice")).close()
        server = game.pid_of("server")
        os.kill(server, signal.SIGSTOP)
        try:
            with pytest.raises(asyncssh.DisconnectError) as caught:
                await asyncio.wait_for(asyncssh.connect(
                    **client_options(port, "alice", password="secret1")), TIMEOUT)
            assert MSG_TIMEOUT in str(caught.value)
        finally:
            os.kill(server, signal.SIGCONT)

    asyncio.run(scenario())


def test_client_that_stops_reading_is_cut_off(game_factory: type[GameRunner]) -> None:
    game = started(game_factory, portal={"max_output_buffer": 65536})
    port = ssh_port(game)

    async def scenario() -> None:
        bob = await telnet_player(game, "bob")
        (await telnet_player(game, "watcher")).close()
        async with asyncssh.connect(**client_options(port, "watcher",
                                                     password="secret1")) as conn:
            # a small window, so that the portal's own buffer fills soon after it
            chan, _session = await conn.create_session(asyncssh.SSHClientSession,
                                                       term_type="xterm", window=16384)
            chan.pause_reading()  # never read again: the window closes, output piles up
            shout = "x" * 3000
            for n in range(200):
                bob.send(f"say {n} {shout}")
            await asyncio.wait_for(conn.wait_closed(), 60)
        # the portal's line reaches its log through the supervisor: it may come just after
        path, log = game.dir / ".hearth" / "logs" / "portal.log", ""
        for _ in range(100):
            log = path.read_text()
            if re.search(r"client stopped reading; \d+ bytes of output wait", log):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"no 'client stopped reading' in 5 s:\n{log[-2000:]}")
        bob.send("ping still fine")
        await bob.expect("pong still fine")
        bob.close()

    asyncio.run(scenario())


SECRET_COMMAND = '''
from server.api import Context, command


@command("hide", logged_in=None, help="hide - the next line is typed without echo")
async def hide(ctx: Context) -> None:
    ctx.session.msg("type it:", echo=([], {"hidden": True}))
    ctx.session.server_data["hiding"] = True


@command("secret", logged_in=None, help="secret WORD - what a password prompt would get")
def secret(ctx: Context) -> None:
    ctx.session.msg(f"got {len(ctx.args)} chars", echo=([], {"hidden": False}))
'''


def test_line_editor_keys_and_hidden_input(game_factory: type[GameRunner]) -> None:
    game = game_factory(SETTINGS)
    (game.dir / "secret.py").write_text(SECRET_COMMAND)
    with (game.dir / "__init__.py").open("a") as init:
        init.write("from . import secret  # noqa: E402,F401\n")
    game.start()
    port = ssh_port(game)

    async def scenario() -> None:
        async with asyncssh.connect(**client_options(port, "new")) as conn:
            proc = await conn.create_process(term_type="xterm", term_size=(80, 24))

            async def until(text: str) -> str:
                return await asyncio.wait_for(proc.stdout.readuntil(text), TIMEOUT)

            await until("connect <username>")
            proc.stdin.write("abc\x03ping one\r")  # Ctrl-C dropped "abc"
            assert "pong one" in await until("pong one\r\n")
            proc.stdin.write("\x1b[A\r")  # up arrow: the last line again
            await until("pong one\r\n")
            proc.stdin.write("ping to\x1b[Dw\x1b[C\r")  # cursor left, insert, right
            await until("pong two\r\n")
            proc.stdin.write("\x0c")  # Ctrl-L clears the screen
            await until("\x1b[H\x1b[2J")
            proc.stdin.write("hide\r")
            await until("type it:")
            proc.stdin.write("secret topsecret\r")
            shown = await until("got 9 chars")
            assert "topsecret" not in shown, "a hidden line was echoed"
            proc.stdin.write("ping visible\r")
            assert "ping visible" in await until("pong visible")  # echoed again
            proc.stdin.write("\x04")  # Ctrl-D on an empty line: goodbye
            await until("Goodbye!")
            await asyncio.wait_for(proc.wait_closed(), TIMEOUT)

    asyncio.run(scenario())


@pytest.mark.parametrize("mode", ["takeover", "refuse"])
def test_an_ssh_login_follows_the_multisession_setting(
        game_factory: type[GameRunner], mode: str) -> None:
    """A session that arrives logged in over SSH meets `server.multisession` exactly as a
    typed `connect` does: takeover closes the telnet one, refuse closes the SSH one."""
    game = started(game_factory, server={"multisession": mode})
    port = ssh_port(game)

    async def scenario() -> None:
        player = await telnet_player(game, "alice")
        # a one-shot `ssh host cmd` runs beside the live session, whatever the setting
        async with asyncssh.connect(**client_options(port, "alice",
                                                     password="secret1")) as conn:
            result = await asyncio.wait_for(conn.run("who"), TIMEOUT)
            assert "alice, alice" in str(result.stdout), result
        player.send("ping still")
        await player.expect("^pong still$", TIMEOUT)
        async with asyncssh.connect(**client_options(port, "alice",
                                                     password="secret1")) as conn:
            proc = await conn.create_process(term_type="xterm", term_size=(80, 24))
            if mode == "takeover":
                await player.expect("logged in from another connection", TIMEOUT)
                await player.wait_closed(TIMEOUT)
                await asyncio.wait_for(proc.stdout.readuntil("Hearth Hall"), TIMEOUT)
            else:
                said = await asyncio.wait_for(proc.stdout.read(), TIMEOUT)
                assert "already playing from another connection" in said, said[-300:]
                player.send("who")
                await player.expect(r"Players online \(1\): alice", TIMEOUT)
        player.close()

    asyncio.run(scenario())
