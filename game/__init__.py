"""The default Hearth game: Hearthstead, a small starter area to walk, take things and build.

Edit these files while the game runs and type `python run.py reload` (or `reload` in the
game, as the admin): players stay connected, every object runs the new code, and the
world (in the database) is as it was. See docs/guide.md.
"""

from . import (  # noqa: F401  (importing registers them)
    building,
    commands,
    hooks,
    keys,
    login,
    oob,
    options,
)
