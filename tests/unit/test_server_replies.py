"""`session.ask` and `@reply`: the next line goes to its handler, unseen and unlogged."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from ipc.frames import DataOut, Frame, InputItem, OutputItem, SessionData
from server.api import Command, Context, Registry
from server.session import ASK_KEY
from server.sessions import ServerSessionHandler

SECRET = "hunter22-secret"


class FakeGame:
    def is_admin(self, session: Any) -> bool:
        return False

    def has_perm(self, session: Any, perm: str | None) -> bool:
        return perm is None


def make_handler() -> tuple[ServerSessionHandler, list[Frame]]:
    registry = Registry()

    def ask(ctx: Context) -> None:
        ctx.session.ask("pw", "Password:", hidden=True, name=ctx.args)

    async def broken_reply(ctx: Context) -> None:
        raise RuntimeError("the reply handler failed")

    def connect(ctx: Context) -> None:
        raise RuntimeError("connect failed")

    registry.add_command(Command("ask", ask, logged_in=None))
    registry.add_command(Command("connect", connect, logged_in=False))
    registry.replies["pw"] = Command("pw", broken_reply, logged_in=None)
    sent: list[Frame] = []
    handler = ServerSessionHandler(registry, sent.append)
    handler.game = FakeGame()  # type: ignore[assignment]
    handler.connect(SessionData(sessid=1, protocol_key="telnet", address="127.0.0.1"))
    return handler, sent


def outputs(sent: list[Frame]) -> list[OutputItem]:
    return [item for frame in sent if isinstance(frame, DataOut) for item in frame.items]


def test_a_hidden_reply_is_not_parsed_echoed_or_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        handler, sent = make_handler()
        session = handler.sessions[1]
        handler.receive_input([InputItem(1, 1, "text", ["ask alice"], {})])
        await asyncio.sleep(0.01)
        out = outputs(sent)
        assert [(o.cmdname, o.kwargs) for o in out[:1]] == [("echo", {"hidden": True})]
        assert out[1].cmdname == "prompt" and out[1].args == ["Password:"]
        assert session.server_data[ASK_KEY]["data"] == {"name": "alice"}
        sent.clear()
        with caplog.at_level(logging.DEBUG):
            handler.receive_input([InputItem(2, 1, "text", [SECRET], {})])
            await asyncio.sleep(0.01)
        out = outputs(sent)
        assert ("echo", {"hidden": False}) in [(o.cmdname, o.kwargs) for o in out]
        texts = " ".join(str(o.args) for o in out)
        assert "not available" not in texts and SECRET not in texts
        assert "reply 'pw' of session 1 failed" in caplog.text
        assert SECRET not in caplog.text
        assert ASK_KEY not in session.server_data  # the next line is a command again

    asyncio.run(scenario())


def test_a_failing_login_command_is_logged_without_its_password(
        caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        handler, _ = make_handler()
        with caplog.at_level(logging.DEBUG):
            handler.receive_input([InputItem(1, 1, "text", [f"connect alice {SECRET}"], {})])
            await asyncio.sleep(0.01)
        assert "connect ..." in caplog.text and SECRET not in caplog.text

    asyncio.run(scenario())
