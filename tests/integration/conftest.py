"""Integration fixtures: a real game directory, real processes, cleaned up by pid."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.client import TEST_GAME, GameRunner


@pytest.fixture
def game_factory(tmp_path: Path) -> Iterator[type[GameRunner]]:
    runners: list[GameRunner] = []

    class Runner(GameRunner):
        def __init__(self, settings: dict | None = None, name: str = "",
                     template: Path = TEST_GAME) -> None:
            root = tmp_path / name if name else tmp_path
            root.mkdir(parents=True, exist_ok=True)
            super().__init__(root, settings, template)
            runners.append(self)

    yield Runner
    leftovers = [line for runner in runners for line in runner.cleanup()]
    for runner in runners:
        state = runner.dir / ".hearth"
        left = [p.name for p in state.glob("*.sock")] + [p.name for p in state.glob("*.pid")]
        assert not left, f"left behind in {state}: {left}"
    assert not leftovers, f"processes left running: {leftovers}"


@pytest.fixture
def game(game_factory: type[GameRunner]) -> GameRunner:
    runner = game_factory()
    runner.start()
    return runner
