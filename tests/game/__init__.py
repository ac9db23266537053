"""The test suite's own game: a single hall where players create accounts and talk.

A frozen copy of what the bundled `game/` once was. Every integration test and benchmark
runs a copy of this package (benchmarks.client.GameRunner), so the bundled `game/` can be
edited or rewritten freely without breaking the suite; only a deliberate smoke test
(tests/integration/test_console_script.py) starts a game made by `hearth init`.
"""

from . import commands, hooks, keys, login, oob, options  # noqa: F401  (importing registers them)
