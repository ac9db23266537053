"""Issue 23: the SSH door as hard as telnet's.

SSH tells no name apart (only `new` skips authentication); an unfinished SSH line is
bounded (`max_line`, `line_timeout`) and costs a witness nothing; the command rate is the
same number over SSH as over telnet, whatever the channel's window still delivers; window
sizes are clamped on both doors.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from typing import Any

import asyncssh
import pytest

from benchmarks.client import GameRunner, MudClient, percentile
from portal.window import MAX_WINDOW
from tests.integration.test_ssh import (
    TIMEOUT,
    client_options,
    openssh,
    ssh_port,
    started,
    telnet_player,
)
from tests.integration.test_telnet_clients import parse_flags

IAC, WILL, SB, SE, NAWS = 255, 251, 250, 240, 31


def test_ssh_tells_no_name_apart_and_clamps_window_sizes(
        game_factory: type[GameRunner]) -> None:
    game = started(game_factory)
    port = ssh_port(game)

    def batch(user: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            openssh(port, user, "-T", "-o", "BatchMode=yes", "-o",
                    "PreferredAuthentications=none,publickey,password", command="who"),
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT)

    async def wrong_password(user: str) -> tuple[str, float]:
        start = time.monotonic()
        with pytest.raises(asyncssh.PermissionDenied) as caught:
            await asyncssh.connect(**client_options(port, user, password="wrong"))
        return type(caught.value).__name__, time.monotonic() - start

    async def scenario() -> None:
        alice = await telnet_player(game, "alice")
        known, unknown = await asyncio.gather(asyncio.to_thread(batch, "alice"),
                                              asyncio.to_thread(batch, "nobody"))
        assert (known.returncode, unknown.returncode) == (255, 255), unknown.stdout
        said = [r.stderr.replace(f"{n}@", "NAME@") for r, n in ((known, "alice"),
                                                                (unknown, "nobody"))]
        assert said[0] == said[1], said  # the same methods offered, the same refusal
        assert "Permission denied (publickey,keyboard-interactive,password)" in said[1]
        (k, k_took), (u, u_took) = [await wrong_password(n) for n in ("alice", "nobody")]
        assert k == u and abs(k_took - u_took) < 0.5, (k_took, u_took)

        # a 100000 x 100000 pty, a window change as large, and NAWS 8192 x 12288
        async with asyncssh.connect(**client_options(port, "new")) as conn:
            proc = await conn.create_process(term_type="xterm", term_size=(100000, 100000))
            await asyncio.wait_for(proc.stdout.readuntil("connect <username>"), TIMEOUT)

            async def size() -> tuple[Any, Any]:
                proc.stdin.write("@flags SCREENWIDTH SCREENHEIGHT\r")
                said = await asyncio.wait_for(proc.stdout.readuntil("flags)"), TIMEOUT)
                flags = parse_flags(said.replace("\r", ""))
                return flags["SCREENWIDTH"], flags["SCREENHEIGHT"]

            assert await size() == ({"0": MAX_WINDOW}, {"0": MAX_WINDOW})
            proc.change_terminal_size(4000000, 70)
            deadline = time.monotonic() + TIMEOUT
            while (got := await size()) != ({"0": MAX_WINDOW}, {"0": 70}):
                assert time.monotonic() < deadline, got
        assert alice._writer is not None
        alice._writer.write(bytes((IAC, WILL, NAWS, IAC, SB, NAWS, 0x20, 0, 0x30, 0, IAC, SE)))
        alice.send("@flags SCREENWIDTH SCREENHEIGHT")
        for name in ("SCREENHEIGHT", "SCREENWIDTH"):  # sorted, as @flags lists them
            line = await alice.expect(f"^flag {name} = ")
            assert parse_flags(line) == {name: {"0": MAX_WINDOW}}, line
        alice.close()

    asyncio.run(scenario())


async def witness_waits(witness: MudClient, seconds: float) -> list[float]:
    waits: list[float] = []
    end, n = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        n += 1
        start = time.monotonic()
        witness.send(f"ping w{n}")
        await witness.expect(f"^pong w{n}$", TIMEOUT)
        waits.append(time.monotonic() - start)
        await asyncio.sleep(0.02)
    return waits


def test_an_unfinished_ssh_line_is_bounded_and_costs_a_witness_nothing(
        game_factory: type[GameRunner]) -> None:
    game = started(game_factory, portal={"line_timeout": 1.0})
    port = ssh_port(game)

    async def scenario() -> None:
        witness = await telnet_player(game, "witness")
        async with asyncssh.connect(**client_options(port, "new")) as conn:
            proc = await conn.create_process(term_type="xterm", term_size=(80, 24))
            await asyncio.wait_for(proc.stdout.readuntil("connect <username>"), TIMEOUT)
            said: list[str] = []
            more = asyncio.Event()

            async def read() -> None:
                while data := await proc.stdout.read(65536):
                    said.append(data)
                    more.set()

            async def until(text: str) -> str:
                while text not in (got := "".join(said)):
                    more.clear()
                    await asyncio.wait_for(more.wait(), TIMEOUT)
                return got

            reading = asyncio.create_task(read())

            async def flood(seconds: float) -> None:
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    proc.stdin.write("x" * 32768)
                    await asyncio.wait_for(proc.stdin.drain(), TIMEOUT)

            flooding = asyncio.create_task(flood(2.5))
            waits = await witness_waits(witness, 2.0)
            await flooding
            assert percentile(waits, 50) < 0.02, f"witness median {percentile(waits, 50):.3f}s"
            assert max(waits) < 1.0, f"witness worst {max(waits):.3f}s"
            proc.stdin.write("\rping after\r")  # the line ends: dropped, the player told
            text = await until("pong after")
            assert "longer than 4096 bytes; it was dropped" in text, text[-500:]
            proc.stdin.write("ping slow")  # an unfinished line older than line_timeout
            await asyncio.sleep(1.3)
            proc.stdin.write("ly\rping done\r")
            text = await until("pong done")
            assert "finish a line within 1 seconds" in text, text[-500:]
            assert "pong slowly" not in text, text[-500:]
            reading.cancel()
        witness.close()

    asyncio.run(scenario())


def test_the_command_rate_is_the_same_number_over_ssh_and_telnet(
        game_factory: type[GameRunner]) -> None:
    # more lines than `input_buffer_per_session` (1000) in one write: one SSH packet
    rate, burst, count = 1000, 10, 1100
    game = started(game_factory, portal={"commands_per_second": rate, "command_burst": burst})
    port = ssh_port(game)
    lines = "".join(f"ping r{n}\n" for n in range(count))

    async def over_ssh() -> tuple[float, str]:
        async with asyncssh.connect(**client_options(port, "new")) as conn:
            proc = await conn.create_process()  # no pty: the window takes it all at once
            await asyncio.wait_for(proc.stdout.readuntil("connect <username>"), TIMEOUT)
            start = time.monotonic()
            proc.stdin.write(lines)
            said = await asyncio.wait_for(proc.stdout.readuntil(f"pong r{count - 1}\n"),
                                          TIMEOUT)
            return time.monotonic() - start, said

    async def over_telnet() -> tuple[float, str]:
        client = MudClient("t")
        await client.connect(game.port)
        await client.expect("connect <username>")
        start = time.monotonic()
        assert client._writer is not None
        client._writer.write(lines.encode())
        await client.expect(f"^pong r{count - 1}$", TIMEOUT)
        took = time.monotonic() - start
        said = "\n".join(client.lines)
        client.close()
        return took, said

    async def scenario() -> dict[str, Any]:
        return {"ssh": await over_ssh(), "telnet": await over_telnet()}

    result = asyncio.run(scenario())
    least = (count - burst) / rate * 0.9
    for door, (took, said) in result.items():
        pongs = [line for line in said.splitlines() if line.startswith("pong r")]
        assert pongs == [f"pong r{n}" for n in range(count)], (door, len(pongs), said[-300:])
        assert "dropped" not in said, (door, said[-300:])
        assert least <= took < least * 1.5, (door, took, least)
