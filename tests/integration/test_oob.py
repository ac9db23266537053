"""GMCP and MSDP as the default game sends them, to telnetlib3's library client.

One game for the module. The GMCP client announces itself as Mudlet does (Core.Hello,
Core.Supports.Set with Char.Login), logs in with Char.Login.Credentials, gets Char.Name,
Room.Info and Comm.Channel.Text, keeps its packages across a reload, and gets
Core.Goodbye before the close. The MSDP client refuses GMCP, REPORTs variables and
reads them after its login. Web clients on the gmcp.mudstandards.org and v1 formats get
Room.Info as those formats spell it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
import telnetlib3
from telnetlib3.client import TelnetClient
from telnetlib3.telopt import GMCP, MSDP

from benchmarks.client import GameRunner
from tests.integration.test_web_protocol import open_ws, until

TIMEOUT = 15.0
PASSWORD = "secret-oob1"


@pytest.fixture(scope="module")
def game(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GameRunner]:
    runner = GameRunner(tmp_path_factory.mktemp("oob"), {"portal": {"web_port": 0}})
    try:
        runner.make_admin("ann", PASSWORD)  # an account to log in to (an admin may reload)
        runner.start()
        yield runner
    finally:
        leftovers = runner.cleanup()
        state = runner.dir / ".hearth"
        left = [p.name for p in (*state.glob("*.sock"), *state.glob("*.pid"))]
        assert not left and not leftovers, (left, leftovers)


class OobClient:
    """telnetlib3's client; GMCP messages or MSDP variables collected in arrival order."""

    def __init__(self, msdp: bool = False) -> None:
        self.msdp = msdp
        self.messages: list[tuple[str, Any]] = []
        self.text = ""
        self._changed = asyncio.Event()
        self.writer: Any = None
        self._task: asyncio.Task[None] | None = None

    def _factory(self, **kwargs: Any) -> TelnetClient:
        client = TelnetClient(**kwargs)
        made = client.connection_made

        def connection_made(transport: asyncio.BaseTransport) -> None:
            made(transport)
            writer = client.writer
            if self.msdp and writer is not None:  # an MSDP-only client: refuse GMCP, take MSDP
                writer.passive_do.discard(GMCP)
                writer.always_dont.add(GMCP)
                writer.passive_do.add(MSDP)

        client.connection_made = connection_made  # type: ignore[method-assign]
        return client

    async def connect(self, port: int) -> None:
        reader, self.writer = await asyncio.wait_for(telnetlib3.open_connection(
            "127.0.0.1", port, client_factory=self._factory, connect_minwait=0.2,
            connect_maxwait=2.0), TIMEOUT)
        if self.msdp:
            self.writer.set_ext_callback(MSDP, self._msdp)
        else:
            self.writer.set_ext_callback(GMCP, self._gmcp)
        self._task = asyncio.create_task(self._read(reader))

    def _gmcp(self, package: str, data: Any) -> None:
        self.messages.append((package, data))
        self._changed.set()

    def _msdp(self, variables: dict[str, Any]) -> None:
        self.messages.extend(variables.items())
        self._changed.set()

    async def _read(self, reader: Any) -> None:
        while chunk := await reader.read(65536):
            self.text += chunk
            self._changed.set()

    async def until(self, name: str, timeout: float = TIMEOUT) -> Any:
        """The data of the first message `name`, taken off the list (waits for it)."""
        async def wait() -> Any:
            while True:
                for i, (got, data) in enumerate(self.messages):
                    if got == name:
                        del self.messages[i]
                        return data
                self._changed.clear()
                await self._changed.wait()
        try:
            return await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"no {name} within {timeout}s; got {self.messages}") from None

    async def expect_text(self, needle: str) -> None:
        async def wait() -> None:
            while needle not in self.text:
                self._changed.clear()
                await self._changed.wait()
        try:
            await asyncio.wait_for(wait(), TIMEOUT)
        except TimeoutError:
            raise AssertionError(f"no {needle!r}; text: {self.text[-500:]!r}") from None

    def send(self, line: str) -> None:
        self.writer.write(line + "\r\n")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self._task is not None:
            self._task.cancel()


def test_gmcp_login_room_info_channel_text_reload_and_goodbye(game: GameRunner) -> None:
    async def scenario() -> None:
        client = OobClient()
        await client.connect(game.port)
        try:
            await client.expect_text("connect <username> <password>")
            client.writer.send_gmcp("Core.Hello", {"client": "Mudlet", "version": "4.19.1"})
            client.writer.send_gmcp("Core.Supports.Set", [
                "Char 1", "Char.Items 1", "Room 1", "Client.Media 1", "Comm.Channel 1",
                "Char.Login 1"])
            assert await client.until("Char.Login.Default") == {"type": ["password-credentials"]}
            client.writer.send_gmcp("Char.Login.Credentials",
                                    {"account": "ann", "password": "wrong-one"})
            result = await client.until("Char.Login.Result")
            assert result["success"] is False and result["message"]
            client.writer.send_gmcp("Char.Login.Credentials",
                                    {"account": "ann", "password": PASSWORD})
            assert await client.until("Char.Name") == {"name": "ann", "fullname": "ann"}
            info = await client.until("Room.Info")
            assert isinstance(info["num"], int) and info["name"] == "Hearth Hall"
            assert set(info) >= {"num", "name", "area", "environment", "exits"}
            assert await client.until("Char.Login.Result") == {
                "success": True, "message": "Logged in as ann."}
            await client.expect_text("Hearth Hall")
            client.send("say hello")
            assert await client.until("Comm.Channel.Text") == {
                "channel": "say", "talker": "ann", "text": 'You say, "hello"'}
            # a reload keeps what the client asked for
            result = game.cli("reload", timeout=60)
            assert result.returncode == 0, result.stdout + result.stderr
            client.send("say after the reload")
            text = await client.until("Comm.Channel.Text")
            assert text["text"] == 'You say, "after the reload"'
            client.send("quit")
            assert await client.until("Core.Goodbye") == "Goodbye! Come back soon."
        finally:
            client.close()

    asyncio.run(scenario())


def test_msdp_report_list_and_values_after_login(game: GameRunner) -> None:
    async def scenario() -> None:
        client = OobClient(msdp=True)
        await client.connect(game.port)
        try:
            await client.expect_text("connect <username> <password>")
            client.writer.send_msdp({"LIST": "REPORTABLE_VARIABLES"})
            reportable = await client.until("REPORTABLE_VARIABLES")
            assert {"ROOM_VNUM", "ROOM_NAME", "ROOM_EXITS", "CHARACTER_NAME"} <= set(reportable)
            client.writer.send_msdp({"REPORT": ["CHARACTER_NAME", "ROOM_NAME", "ROOM_VNUM"]})
            client.send(f"connect ann {PASSWORD}")
            assert await client.until("CHARACTER_NAME") == "ann"
            assert await client.until("ROOM_NAME") == "Hearth Hall"
            assert int(await client.until("ROOM_VNUM")) > 0
            client.writer.send_msdp({"SEND": "ROOM_NAME"})
            assert await client.until("ROOM_NAME") == "Hearth Hall"
        finally:
            client.close()

    asyncio.run(scenario())



def test_web_clients_get_room_info_once_they_ask(game: GameRunner) -> None:
    async def scenario() -> None:
        port = int(game.status()["ports"]["web"])
        gmcp = await open_ws(port, "o1&c&x", ["gmcp.mudstandards.org"])
        v1 = await open_ws(port, "o2&c&x", ["v1.evennia.com"])
        try:
            await until(gmcp, "connect <username>")
            await gmcp.send('Core.Supports.Set ["Room 1"]')
            await gmcp.send(f"connect ann {PASSWORD}\r\n".encode())
            package, _, data = (await until(gmcp, "Room.Info"))[-1].partition(" ")
            assert package == "Room.Info" and json.loads(data)["name"] == "Hearth Hall"
            await until(v1, "connect to it by typing")  # (HTML: the <> are escaped)
            await v1.send(json.dumps(["Core.Supports.Set", ["Room 1"], {}]))
            await v1.send(json.dumps(["text", [f"connect ann {PASSWORD}"], {}]))
            message = (await until(v1, "room_info"))[-1]
            assert message[0] == "room_info" and message[2]["name"] == "Hearth Hall"
        finally:
            await gmcp.close()
            await v1.close()

    asyncio.run(scenario())
