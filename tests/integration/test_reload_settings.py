"""Issue 10, item 3: `reload` applies edited settings it can and names those needing reboot."""

from __future__ import annotations

import asyncio

from benchmarks.client import GameRunner, MudClient, free_port
from tests.integration.test_supervision import DevProcess


async def screen_name(port: int) -> str:
    client = MudClient("look")
    await client.connect(port)
    line = await client.expect("Welcome to")
    client.close()
    return line


def test_reload_names_the_settings_that_need_reboot(game_factory: type[GameRunner]) -> None:
    first, second = free_port(), free_port()
    runner = game_factory({"portal": {"telnet_port": first}, "game": {"name": "Oldname"}})
    runner.start()
    runner.write_settings({"portal": {"telnet_port": second}, "game": {"name": "Newname"}})

    result = runner.cli("reload")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "portal.telnet_port (" in output and f"-> {second})" in output, output
    assert "need `reboot`" in output, output
    assert "settings applied: game.name" in output, output
    assert runner.port == first  # the running portal still listens where it did
    assert "Newname" in asyncio.run(screen_name(first))  # the new server read the rest

    again = runner.cli("reload")  # still waiting: named again, nothing new applied
    assert "portal.telnet_port" in again.stdout and "settings applied" not in again.stdout

    reboot = runner.cli("reboot")
    assert reboot.returncode == 0, reboot.stdout + reboot.stderr
    runner.remember_pids()
    assert runner.port == second
    quiet = runner.cli("reload")
    assert quiet.returncode == 0 and "settings" not in quiet.stdout, quiet.stdout


def test_dev_names_the_settings_that_need_reboot(game_factory: type[GameRunner]) -> None:
    runner = game_factory()
    process = DevProcess(runner.dir)
    runner.pids.add(process.proc.pid)
    try:
        process.expect("dev: watching")
        runner.remember_pids()
        port = runner.port
        runner.write_settings({"portal": {"telnet_port": free_port()}})
        process.expect("dev: reloaded")
        line = process.expect("need `reboot`")
        assert "portal.telnet_port (0 -> " in line, line
        assert runner.port == port
    finally:
        assert process.stop() == 0
