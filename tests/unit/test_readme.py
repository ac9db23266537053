"""Issue 10, items 9 and 10: the README's command lines work as written for a new user."""

from __future__ import annotations

import re
from pathlib import Path

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def command_lines() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", README, re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def test_no_bare_python_run_py() -> None:
    """Outside the venv `python run.py` fails (`No module named 'msgspec'`)."""
    bare = [line for line in command_lines() if re.search(r"(^|\s)python3? run\.py", line)]
    assert not bare, bare
    assert any(line.startswith(".venv/bin/hearth ") for line in command_lines())


def test_tintin_location_on_debian_is_explained() -> None:
    assert "/usr/games/tt++" in README
    assert re.search(r"/usr/games`? is not\s+in root's PATH", README)


def quick_start() -> str:
    """The README up to its first section: what a new user reads first."""
    return README.split("\n## ", 1)[0]


def test_the_first_two_commands_run_the_game_then_the_tests() -> None:
    first, second = command_lines()[:2]
    assert first.endswith(".venv/bin/python run.py start") and "pip install -e ." in first
    assert second.startswith("sh scripts/install-clients") and second.endswith("-m pytest")


def test_the_quick_start_says_how_to_stop_how_long_and_what_it_installs() -> None:
    """Issue 21, items 4 and 7."""
    text = " ".join(quick_start().split())
    assert "stop it with `.venv/bin/hearth stop`" in text
    assert re.search(r"about \d+ to \d+ minutes", text)
    assert "with `apt-get`, as root" in text
    assert ".venv/bin/hearth init mygame" in text
    assert "--game-dir mygame dev" in text
