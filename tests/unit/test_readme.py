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
