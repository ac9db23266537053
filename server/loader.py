"""Import a game directory as a package, whatever the directory is called."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

GAME_MODULE = "hearth_game"


def load_game(game_dir: Path) -> ModuleType:
    """Import `game_dir/__init__.py` as the package `hearth_game`.

    The game's own modules import each other relatively (`from . import commands`) or as
    `hearth_game.commands`. Any exception (a syntax error included) propagates.
    """
    init = game_dir / "__init__.py"
    if not init.is_file():
        raise FileNotFoundError(f"{game_dir} has no __init__.py: it is not a game package")
    spec = importlib.util.spec_from_file_location(
        GAME_MODULE, init, submodule_search_locations=[str(game_dir)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[GAME_MODULE] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[GAME_MODULE]
        raise
    return module
