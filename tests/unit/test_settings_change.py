"""Issue 10, item 3: a reload names the changed settings it cannot apply."""

from __future__ import annotations

import msgspec

from ipc.settings import Settings
from supervisor.settings_change import after_reload, compare


def settings(raw: dict) -> Settings:
    return msgspec.convert(raw, Settings)


def test_portal_keys_wait_for_reboot_and_the_rest_applies() -> None:
    running = settings({"portal": {"telnet_port": 4000}})
    edited = settings({"portal": {"telnet_port": 4100}, "game": {"name": "New"},
                       "supervisor": {"crash_loop_limit": 9, "health": {"interval": 5.0}}})
    change = compare(running, edited)
    assert change.waiting == ["portal.telnet_port (4000 -> 4100)"]
    assert change.applied == ["game.name", "supervisor.crash_loop_limit",
                              "supervisor.health.interval"]
    text = change.describe()
    assert "portal.telnet_port (4000 -> 4100)" in text and "`reboot`" in text
    now = after_reload(running, edited)
    assert now.portal.telnet_port == 4000  # what the running portal still listens on
    assert now.supervisor.crash_loop_limit == 9 and now.game.name == "New"
    assert compare(now, edited).applied == []  # the next reload names only what still waits


def test_nothing_changed_says_nothing() -> None:
    change = compare(Settings(), Settings())
    assert change.applied == change.waiting == [] and change.describe() == ""
