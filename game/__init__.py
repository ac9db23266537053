"""The default Hearth game: a single hall where players create accounts and talk.

Edit these files while the game runs and type `python run.py reload` (or `reload` in the
game, as the admin): players stay connected and the new code takes over.
"""

from . import commands, hooks, keys, login, oob, options  # noqa: F401  (importing registers them)
