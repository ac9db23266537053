"""Window sizes, as every door reports them (telnet's NAWS, an SSH pty and its
window-change): clamped to `MAX_WINDOW` columns and rows before a flag holds them.

A client may claim any size (NAWS up to 65535, SSH up to 2^32 - 1); a game that pads,
wraps or draws maps by `SCREENWIDTH`/`SCREENHEIGHT` would then build lines and screens
of that size for it. No terminal is wider or taller than this.
"""

from __future__ import annotations

from typing import Final

MAX_WINDOW: Final = 1000  # columns and rows; the README's limits table says so


def clamp_window(size: int) -> int:
    """`size` within 0 (unknown) to `MAX_WINDOW`."""
    return max(0, min(size, MAX_WINDOW))
