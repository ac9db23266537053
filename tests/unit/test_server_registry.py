"""Issue 21, item 7: a game that registers a command name already taken is told, once."""

from __future__ import annotations

import logging

import pytest

from server.api import Command, Context, Registry


def look(ctx: Context) -> None: ...


def other_look(ctx: Context) -> None: ...


other_look.__module__ = "hearth_game.extra"
other_look.__qualname__ = "look"


def test_a_name_taken_by_another_module_warns_once_naming_both(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = Registry()
    registry.add_command(Command("look", look, ("l",)))
    with caplog.at_level(logging.WARNING, logger="server"):
        registry.add_command(Command("look", other_look, ("l", "glance")))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "'look', 'l'" in warnings[0]
    assert "hearth_game.extra.look" in warnings[0] and f"{__name__}.look" in warnings[0]
    assert registry.find("look", True) is registry.find("glance", True)
    assert registry.find("look", True).func is other_look  # the later one wins, as before


def test_registering_the_same_function_again_is_quiet(caplog: pytest.LogCaptureFixture) -> None:
    registry = Registry()
    with caplog.at_level(logging.WARNING, logger="server"):
        registry.add_command(Command("look", look))
        registry.add_command(Command("look", look, ("l",)))
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]
