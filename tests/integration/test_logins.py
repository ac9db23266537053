"""Issues 9 (items 7, 9) and 10 (items 7, 8): logins against real processes and clients.

Every attacker connects from 127.0.0.1 and every honest player from another loopback
address (127.0.0.2, ...), which the portal sees as another address. A witness player on
its own address pings throughout each attack; its answers must keep coming (bound below).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import telnetlib3
from telnetlib3.telopt import ECHO

from benchmarks.client import GameRunner, MudClient
from ipc.settings import runtime_paths

ATTACKER, PLAYER, WITNESS = "127.0.0.1", "127.0.0.2", "127.0.0.3"
WITNESS_BOUND = 5.0  # seconds for any one ping answer, on a loaded 2-core machine
WRONG = "Wrong name or password."
OPEN_LIMITS = {"creations_per_address": 1000, "queue_per_address": 1000, "queue_total": 1000}
# The attacker's address is limited; the player's is one of `unlimited_addresses` (as the
# machine itself is by default), which the per-address login limits skip (issue 21, item 5)
PLAYER_UNLIMITED = {"unlimited_addresses": [f"{PLAYER}/32"]}


class Witness:
    """A logged-in player who pings every 50 ms and notes the slowest answer."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.client = MudClient("witness")
        self.slowest = 0.0
        self.answered = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.client.connect(self.port, source=WITNESS)
        await self.client.login("witness")
        self._task = asyncio.create_task(self._ping())

    async def _ping(self) -> None:
        n = 0
        while True:
            sent = time.monotonic()
            self.client.send(f"ping witness-{n}")
            await self.client.expect(rf"^pong witness-{n}$", timeout=WITNESS_BOUND)
            self.slowest = max(self.slowest, time.monotonic() - sent)
            self.answered += 1
            n += 1
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        assert self._task is not None
        if self._task.done():
            self._task.result()  # raises the witness's own failure (a ping not answered)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self.client.close()
        assert self.answered >= 5, f"the witness got only {self.answered} answers"
        assert self.slowest < WITNESS_BOUND, f"a witness ping took {self.slowest:.1f}s"


@contextlib.asynccontextmanager
async def witnessed(port: int) -> AsyncIterator[Witness]:
    witness = Witness(port)
    await witness.start()
    yield witness
    await witness.stop()


async def player(port: int, source: str = PLAYER, name: str = "player") -> MudClient:
    client = MudClient(name)
    await client.connect(port, source=source)
    await client.expect("connect <username> <password>")
    return client


async def answer(client: MudClient, line: str) -> str:
    client.send(line)
    return await client.expect(r"Wrong name|Too many|Hearth Hall|already|created")


async def enter(client: MudClient, name: str, password: str = "secret1",
                create: bool = True) -> None:
    result = await answer(client, f"{'create' if create else 'connect'} {name} {password}")
    if "created" in result:
        result = await client.expect("Hearth Hall")
    assert "Hearth Hall" in result, result


# ---------------------------------------------------------------- issue 9, item 7


def test_guessing_from_one_address_is_slowed_then_locked_out(
        game_factory: type[GameRunner]) -> None:
    """Before: 500 guesses in 22 s, each one checked. Now a burst of 200 gets 3 checks
    (2 free, then a wait), paced guesses reach the lockout after 5, and the right password
    from that address is refused while the owner, elsewhere, still logs in."""
    game = game_factory({"portal": PLAYER_UNLIMITED, "server": {"logins": {
        **OPEN_LIMITS, "free_failures": 2, "delay": 1.0, "delay_max": 2.0, "lockout_after": 5,
        "account_lockout_after": 50, "lockout": 600.0}}})
    game.start()

    async def scenario() -> None:
        port = game.port  # (a `hearth status` each time it is read)
        owner = await player(port)
        await enter(owner, "alice")
        owner.close()
        async with witnessed(port):
            attacker = await player(port, ATTACKER, "attacker")
            for n in range(200):
                attacker.send(f"connect alice guess{n}")
            answers = [await attacker.expect(r"Wrong name|Too many") for _ in range(200)]
            assert answers.count(WRONG) == 3, answers[:6]
            assert all("wait" in line for line in answers[3:]), set(answers[3:])
            deadline = time.monotonic() + 60
            while "locked" not in (last := await answer(attacker, "connect alice again")):
                assert time.monotonic() < deadline, f"never locked out; last: {last!r}"
                await asyncio.sleep(0.25)  # the attacker's pace, not a synchronisation
            wrong = sum(line == WRONG for line in attacker.lines)
            assert wrong == 5, f"{wrong} guesses were checked before the lockout"
            assert "locked" in await answer(attacker, "connect alice secret1")
            owner = await player(port)
            assert "Hearth Hall" in await answer(owner, "connect alice secret1")
            owner.close()
            attacker.close()
            # an unlimited address is not slowed by its own failures (each name's are
            # counted still): a developer's typos on the machine itself cost nothing
            local = await player(port)
            typos = [await answer(local, f"connect typo{n} wrong") for n in range(6)]
            assert typos == [WRONG] * 6, typos
            local.close()

    asyncio.run(scenario())


def test_unknown_name_and_wrong_password_get_the_same_answer(game: GameRunner) -> None:
    async def scenario() -> None:
        port = game.port  # (a `hearth status` each time it is read)
        client = await player(port)
        await enter(client, "alice")
        client.close()
        client = await player(port)
        wrong = await answer(client, "connect alice nope1")
        unknown = await answer(client, "connect nosuchname nope1")
        assert wrong == unknown == WRONG
        client.send("connect alice")  # the prompted form answers the same (the prompt
        assert await answer(client, "nope1") == WRONG  # has no newline: MudClient skips it)
        client.close()

    asyncio.run(scenario())


def test_mass_account_creation_from_one_address_is_capped(
        game_factory: type[GameRunner]) -> None:
    """Before: 200 accounts from one address in 33 s. Now 3 per window from it, and as
    many as it likes from an unlimited address (before: 3 from loopback too)."""
    game = game_factory({"portal": PLAYER_UNLIMITED,
                         "server": {"logins": {"creations_per_address": 3,
                                               "creation_window": 3600.0}}})
    game.start()

    async def scenario() -> None:
        port = game.port  # (a `hearth status` each time it is read)
        async with witnessed(port):
            results = []
            for n in range(12):
                client = await player(port, ATTACKER, f"bot{n}")
                results.append(await answer(client, f"create bot{n} secret1"))
                client.close()
            made = [line for line in results if "was created" in line]
            assert len(made) == 3, results
            assert all("Too many accounts were created from your address" in line
                       for line in results[3:]), results[3:]
            for n in range(5):  # from the unlimited address
                other = await player(port)
                assert "was created" in await answer(other, f"create honest{n} secret1")
                other.close()

    asyncio.run(scenario())


def test_a_login_flood_from_one_address_does_not_starve_another(
        game_factory: type[GameRunner]) -> None:
    """80 connections from one address keep the (single) hashing worker busy with wrong
    logins (no throttle here: this is about the queue). Served first come first served,
    a player behind them would wait for 80 hashes (~11 s at this cost); served round robin
    by address, for about one. Bound: 4 s."""
    game = game_factory({"portal": {"connection_rate": 1000.0, "connection_burst": 1000,
                                    "max_connections_per_address": 1000},
                         "server": {"scrypt_n": 65536, "logins": {
        **OPEN_LIMITS, "free_failures": 100_000, "lockout_after": 100_001,
        "account_lockout_after": 100_001}}})
    game.start()

    async def scenario() -> None:
        port = game.port  # (a `hearth status` each time it is read)
        honest = await player(port)
        await enter(honest, "honest")
        honest.close()
        async with witnessed(port):
            bots = list(await asyncio.gather(*(player(port, ATTACKER, f"bot{n}")
                                               for n in range(80))))
            for n, bot in enumerate(bots):
                for k in range(5):
                    bot.send(f"connect victim wrong{n}-{k}")
            await bots[0].expect(WRONG, timeout=60)  # the flood is under way
            honest = await player(port)
            start = time.monotonic()
            assert "Hearth Hall" in await answer(honest, "connect honest secret1")
            took = time.monotonic() - start
            assert took < 4.0, f"the honest login took {took:.1f}s behind the flood"
            for bot in bots:
                bot.close()
            honest.close()

    asyncio.run(scenario())


# ---------------------------------------------------------------- issue 9, item 9


def test_the_first_account_is_not_admin_the_named_one_is(game: GameRunner) -> None:
    async def scenario() -> None:
        port = game.port  # (a `hearth status` each time it is read)
        first = await player(port)
        await enter(first, "first")
        first.send("reload")
        await first.expect("Command 'reload' is not available")
        first.send("help reload")
        await first.expect("No help found for 'reload'")
        result = await asyncio.to_thread(game.cli, "admin", "boss", input="bosspass1\n")
        assert result.returncode == 0, result.stderr
        assert "Created the account boss; it is an admin." in result.stdout
        boss = await player(port, name="boss")
        await enter(boss, "boss", "bosspass1", create=False)
        boss.send("help reload")
        await boss.expect(r"reload - \(admin\)")
        # an existing account, while it plays: at once, and taken back the same way
        result = await asyncio.to_thread(game.cli, "admin", "first")
        assert result.returncode == 0 and "first is now an admin" in result.stdout
        first.send("help reload")
        await first.expect(r"reload - \(admin\)")
        result = await asyncio.to_thread(game.cli, "admin", "first", "--revoke")
        assert result.returncode == 0 and "no longer" in result.stdout
        first.send("help reload")
        await first.expect("No help found for 'reload'")
        first.close()
        boss.close()

    asyncio.run(scenario())


def test_admin_on_a_game_that_never_started(game_factory: type[GameRunner]) -> None:
    game = game_factory()
    result = game.cli("admin", "owner", input="ownerpass\n")
    assert result.returncode == 0, result.stderr
    result = game.cli("admin", "xavier", input="pw\n")  # too short: refused, one line
    assert result.returncode == 1 and "at least" in result.stderr
    game.start()

    async def scenario() -> None:
        owner = await player(game.port, name="owner")
        await enter(owner, "owner", "ownerpass", create=False)
        owner.send("help shutdown")
        await owner.expect(r"shutdown - \(admin\)")
        owner.close()

    asyncio.run(scenario())


# ---------------------------------------------------------------- issue 10, item 7


class RawTelnet:
    """A raw socket that answers only the ECHO option (DO to WILL, DONT to WONT)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=15)
        self.received = b""
        self.seen = 0  # how far `read_until` has looked

    def read_until(self, needle: bytes, timeout: float = 15.0) -> bytes:
        deadline = time.monotonic() + timeout
        while needle not in self.received[self.seen:]:
            left = deadline - time.monotonic()
            assert left > 0, f"no {needle!r} within {timeout}s: {self.received[-300:]!r}"
            self.sock.settimeout(left)
            data = self.sock.recv(65536)
            assert data, f"closed while waiting for {needle!r}: {self.received[-300:]!r}"
            self.received += data
            self._answer_echo(data)
        end = self.received.index(needle, self.seen) + len(needle)
        chunk, self.seen = self.received[self.seen:end], end
        return chunk

    def _answer_echo(self, data: bytes) -> None:
        if b"\xff\xfb\x01" in data:  # IAC WILL ECHO
            self.sock.sendall(b"\xff\xfd\x01")
        if b"\xff\xfc\x01" in data:  # IAC WONT ECHO
            self.sock.sendall(b"\xff\xfe\x01")

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\r\n")

    def close(self) -> None:
        self.sock.close()


def test_connect_name_asks_for_the_password_with_echo_off_raw_socket(game: GameRunner) -> None:
    raw = RawTelnet(game.port)
    try:
        raw.read_until(b"connect <username> <password>")
        raw.send("create carol")
        shown = raw.read_until(b"Choose a password:")
        assert b"\xff\xfb\x01" in shown, "no IAC WILL ECHO before the password prompt"
        raw.send("hunter22")
        raw.read_until(b"Type it again:")
        raw.send("hunter22")
        raw.read_until(b"Hearth Hall")
        raw.send("quit")
        raw.read_until(b"Goodbye")
    finally:
        raw.close()
    raw = RawTelnet(game.port)
    try:
        raw.read_until(b"connect <username> <password>")
        raw.send("connect carol")
        shown = raw.read_until(b"Password:")
        assert b"\xff\xfb\x01" in shown
        raw.send("hunter22")
        after = raw.read_until(b"Hearth Hall")
        assert b"\xff\xfc\x01" in after, "echo was not turned back on (IAC WONT ECHO)"
        raw.send("ping after")
        raw.read_until(b"pong after")
    finally:
        raw.close()
    assert b"hunter22" not in raw.received
    logs = runtime_paths(game.dir).logs
    for path in logs.glob("*.log"):
        assert "hunter22" not in path.read_text(errors="replace"), f"password in {path.name}"


def test_connect_and_create_prompts_with_telnetlib3(game: GameRunner) -> None:
    async def scenario() -> None:
        port = game.port  # (a `hearth status` each time it is read)
        reader, writer = await asyncio.wait_for(telnetlib3.open_connection(
            "127.0.0.1", port, connect_minwait=0.2, connect_maxwait=2.0), 15)
        text = ""

        async def until(needle: str) -> None:
            nonlocal text
            deadline = time.monotonic() + 15
            while needle not in text:
                left = deadline - time.monotonic()
                assert left > 0, f"no {needle!r}; got {text[-300:]!r}"
                chunk = await asyncio.wait_for(reader.read(65536), left)
                assert chunk, f"closed while waiting for {needle!r}"
                text += chunk

        def echo_by_server() -> Any:
            return writer.remote_option.enabled(ECHO)

        try:
            await until("connect <username> <password>")
            writer.write("create dave\r\n")
            await until("Choose a password:")
            assert echo_by_server(), "the server did not take over echo (WILL ECHO)"
            writer.write("s3cret-dave\r\n")
            await until("Type it again:")
            writer.write("a different one\r\n")
            await until("The two passwords differ")
            writer.write("create dave\r\n")
            await until("Choose a password:")
            writer.write("s3cret-dave\r\n")
            await until("Type it again:")
            writer.write("s3cret-dave\r\n")
            await until("Hearth Hall")
            assert not echo_by_server(), "echo stayed off after the password"
            writer.write("quit\r\n")
            await until("Goodbye")
        finally:
            writer.close()
        assert "s3cret-dave" not in text and "different one" not in text

        reader, writer = await asyncio.wait_for(telnetlib3.open_connection(
            "127.0.0.1", port, connect_minwait=0.2, connect_maxwait=2.0), 15)
        text = ""
        try:
            await until("connect <username> <password>")
            writer.write("connect dave\r\n")
            await until("Password:")
            assert echo_by_server()
            writer.write("s3cret-dave\r\n")
            await until("Hearth Hall")
        finally:
            writer.close()
        assert "s3cret-dave" not in text

    asyncio.run(scenario())


# ---------------------------------------------------------------- issue 10, item 8


async def logged_in_twice(game: GameRunner) -> tuple[MudClient, MudClient, str]:
    first = await player(game.port, name="first")
    await enter(first, "alice")
    second = await player(game.port, source=WITNESS, name="second")
    return first, second, await answer(second, "connect alice secret1")


def test_takeover_the_newer_connection_takes_the_account(game: GameRunner) -> None:
    async def scenario() -> None:
        first, second, result = await logged_in_twice(game)
        assert "Hearth Hall" in result
        await first.expect(r"logged in from another connection \(127\.0\.0\.3\)")
        await first.wait_closed()
        second.send("who")
        await second.expect(r"^Players online \(1\): alice$")
        second.close()

    asyncio.run(scenario())


def test_refuse_the_newer_connection_is_refused(game_factory: type[GameRunner]) -> None:
    game = game_factory({"server": {"multisession": "refuse"}})
    game.start()

    async def scenario() -> None:
        first, second, result = await logged_in_twice(game)
        assert "alice is already playing from another connection" in result
        second.send("look")
        await second.expect("connect <username> <password>")  # still at the screen
        first.send("who")
        await first.expect(r"^Players online \(1\): alice$")
        assert not first.closed
        first.close()
        second.close()

    asyncio.run(scenario())


def test_allow_both_connections_play(game_factory: type[GameRunner]) -> None:
    game = game_factory({"server": {"multisession": "allow"}})
    game.start()

    async def scenario() -> None:
        first, second, result = await logged_in_twice(game)
        assert "Hearth Hall" in result
        first.send("who")
        await first.expect(r"^Players online \(2\): alice, alice$")
        first.close()
        second.close()

    asyncio.run(scenario())


def test_a_reload_between_prompt_and_password_keeps_the_password_unseen(
        game: GameRunner) -> None:
    """The question survives the reload (server_data): the line after it is still taken as
    the password, not run as a command that would show it back."""
    raw = RawTelnet(game.port)
    try:
        raw.read_until(b"connect <username> <password>")
        raw.send("create erin hunter22")
        raw.read_until(b"Hearth Hall")
    finally:
        raw.close()
    raw = RawTelnet(game.port)
    try:
        raw.read_until(b"connect <username> <password>")
        raw.send("connect erin")
        raw.read_until(b"Password:")
        result = game.cli("reload")
        assert result.returncode == 0, result.stderr
        raw.send("hunter22")
        raw.read_until(b"Hearth Hall")
        assert b"not available" not in raw.received and b"hunter22" not in raw.received
    finally:
        raw.close()
