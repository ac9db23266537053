"""docs/guide.md stays true: its lamp (a typeclass, a command, a stored attribute and a
timer) is put into a copy of the default game and its own test is run on it."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from server.testkit import BUNDLED_GAME, TestGame

GUIDE = (Path(__file__).resolve().parents[2] / "docs" / "guide.md").read_text()


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", GUIDE, re.S)


def test_the_guides_lamp_and_its_test_work(tmp_path: Path) -> None:
    lamps, test = python_blocks()
    game = tmp_path / "mygame"
    shutil.copytree(BUNDLED_GAME, game, ignore=shutil.ignore_patterns("__pycache__"))
    (game / "lamps.py").write_text(lamps)
    with (game / "__init__.py").open("a") as init:
        init.write("from . import lamps  # noqa: F401\n")
    (game / "tests").mkdir()
    test_file = game / "tests" / "test_lamps.py"
    namespace: dict[str, object] = {"__file__": str(test_file), "__name__": "guide_test"}
    exec(compile(test, str(test_file), "exec"), namespace)
    kit = TestGame(tmp_path / "game.db", game)
    try:
        run = namespace["test_a_lamp_goes_out_and_keeps_its_oil_through_a_reload"]
        assert callable(run)
        run(kit)
    finally:
        kit.close()
    assert "from . import lamps  # noqa: F401" in GUIDE  # the line the guide says to add
