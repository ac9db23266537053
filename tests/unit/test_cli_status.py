"""The `status` table."""

from __future__ import annotations

from typing import Any

from supervisor.cli import STATUS_COLUMNS, format_status

DATA: dict[str, Any] = {
    "game_dir": "/srv/game",
    "ports": {"telnet": 4000, "telnet/ssl": 4003},
    "sessions": 7,
    "supervisor": {"pid": 10, "state": "running", "uptime": 3725.0, "rss": 31 * 2**20,
                   "cpu_percent": 0.0},
    "portal": {"pid": 11, "state": "running", "uptime": 3724.0, "restarts": 0,
               "rss": 600 * 2**20, "cpu_percent": 1.25, "last_exit": "",
               "over_limit": "rss 600 MB over limit 512 MB"},
    "server": {"pid": None, "state": "backoff", "restarts": 3,
               "last_exit": "pid 12 crash (exit code 1)"},
}


def test_table_has_a_row_per_process_and_every_column() -> None:
    lines = format_status(DATA).splitlines()
    assert lines[0].split() == [word for col in STATUS_COLUMNS for word in col.split()]
    supervisor, portal, server = (line.split() for line in lines[1:4])
    assert supervisor[:4] == ["supervisor", "10", "running", "1h02m"]
    assert portal[:10] == ["portal", "11", "running", "1h02m", "0", "600.0", "MB", "1.2%", "7",
                           "telnet:4000,telnet/ssl:4003"]
    assert server[:5] == ["server", "-", "backoff", "-", "3"]
    assert lines[3].endswith("pid 12 crash (exit code 1)")


def test_health_warnings_and_game_folder_follow_the_table() -> None:
    lines = format_status(DATA).splitlines()
    assert lines[4] == "warning: portal 11 is over a health limit: rss 600 MB over limit 512 MB"
    assert lines[5] == "game: /srv/game"


def test_nothing_known_is_shown_as_dashes() -> None:
    lines = format_status({}).splitlines()
    assert lines[1].split() == ["supervisor", "-", "-", "-", "-", "-", "-", "-", "-", "-"]
