"""`run.py dev`: which saved files count, and the compile check before a reload."""

from __future__ import annotations

from pathlib import Path

import pytest
from watchfiles import Change

from supervisor.dev import GameFilter, Terminal, check_sources


@pytest.mark.parametrize(("path", "wanted"), [
    ("/g/commands.py", True),
    ("/g/world/rooms.py", True),
    ("/g/settings.toml", True),
    ("/g/.hearth/logs/server.log", False),
    ("/g/.hearth/x.py", False),
    ("/g/__pycache__/commands.cpython-311.pyc", False),
    ("/g/.commands.py.swp", False),
    ("/g/commands.py~", False),
    ("/g/.#commands.py", False),
    ("/g/notes.txt", False),
    ("/g/.git/config", False),
])
def test_filter(path: str, wanted: bool) -> None:
    assert GameFilter()(Change.modified, path) is wanted


def test_good_files_pass(tmp_path: Path) -> None:
    good = tmp_path / "good.py"
    good.write_text("def f():\n    return 1\n")
    assert check_sources([good], tmp_path) == {}


def test_a_syntax_error_is_reported_with_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("x = 1\ndef broken(:\n")
    error = check_sources([bad], tmp_path)[bad]
    assert f'File "{bad}", line 2' in error and "SyntaxError" in error


def test_deleted_files_are_ignored(tmp_path: Path) -> None:
    assert check_sources([tmp_path / "gone.py"], tmp_path) == {}


def test_bad_settings_name_the_key(tmp_path: Path) -> None:
    settings = tmp_path / "settings.toml"
    settings.write_text("[portal]\ntelnet_prot = 4000\n")
    assert "telnet_prot" in check_sources([settings], tmp_path)[settings]


def test_terminal_colours_only_when_asked(capsys: pytest.CaptureFixture[str]) -> None:
    import sys

    Terminal(sys.stdout, colour=False).line("server", 7, "ERROR server: boom")
    Terminal(sys.stdout, colour=True).line("server", 7, "ERROR server: boom")
    plain, coloured = capsys.readouterr().out.splitlines()
    assert "\x1b[" not in plain and plain.endswith("server           7 | ERROR server: boom")
    assert "\x1b[1;31mERROR server: boom\x1b[0m" in coloured


def test_a_traceback_already_shown_is_cut_to_its_exception() -> None:
    from supervisor.dev import without_traceback

    message = ("reload failed; server 1 keeps running. The new server failed:\n"
               "Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\n"
               "RuntimeError: boom\n")
    assert without_traceback(message) == ("reload failed; server 1 keeps running. The new "
                                           "server failed:\nRuntimeError: boom (traceback above)")
    assert without_traceback("no traceback here") == "no traceback here"
