"""The web client's page and assets, read once at start and served from memory.

Only the files in `portal/web/static/` exist (no path is ever joined from a request), plus
`colours.css`, the 256 xterm colour classes generated from the palette `portal.colour`
uses for telnet, so a colour looks the same on both.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Final

FOLDER: Final = Path(__file__).parent / "static"
TYPES: Final = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
                ".js": "text/javascript; charset=utf-8", ".png": "image/png",
                ".svg": "image/svg+xml", ".ico": "image/x-icon"}
# The page loads nothing from elsewhere and runs no inline script: a tag that slipped
# through would still not run.
SECURITY: Final = [
    ("Content-Security-Policy", "default-src 'self'; connect-src 'self' ws: wss:; "
                                "img-src 'self' data:; style-src 'self' 'unsafe-inline'"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
]
_XTERM16: Final = ("000000", "cd0000", "00cd00", "cdcd00", "0000ee", "cd00cd", "00cdcd",
                   "e5e5e5", "7f7f7f", "ff0000", "00ff00", "ffff00", "5c5cff", "ff00ff",
                   "00ffff", "ffffff")
_LEVELS: Final = (0, 95, 135, 175, 215, 255)


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    headers: list[tuple[str, str]]


def xterm_hex(index: int) -> str:
    if index < 16:
        return _XTERM16[index]
    if index >= 232:
        grey = 8 + 10 * (index - 232)
        return f"{grey:02x}" * 3
    index -= 16
    return "".join(f"{_LEVELS[v]:02x}" for v in (index // 36, index // 6 % 6, index % 6))


def colours_css() -> str:
    rules = [f".color-{i:03d}{{color:#{xterm_hex(i)}}}" for i in range(256)]
    rules += [f".bgcolor-{i:03d}{{background-color:#{xterm_hex(i)}}}" for i in range(256)]
    return "\n".join(rules) + "\n"


class StaticFiles:
    def __init__(self, game_name: str) -> None:
        self.assets: dict[str, Asset] = {}
        for path in sorted(FOLDER.iterdir()):
            if path.suffix in TYPES and path.is_file():
                body = path.read_bytes()
                if path.name == "index.html":
                    body = body.replace(b"{{name}}", html.escape(game_name).encode())
                self._add("/static/" + path.name, body, path.suffix)
        self._add("/static/colours.css", colours_css().encode(), ".css")
        index = self.assets.get("/static/index.html")
        if index is not None:
            self.assets["/"] = index

    def _add(self, route: str, body: bytes, suffix: str) -> None:
        cache = "no-cache"  # revalidate: a reload of the game may come with a new page
        headers = [("Content-Type", TYPES[suffix]), ("Cache-Control", cache), *SECURITY]
        self.assets[route] = Asset(body, headers)

    def get(self, path: str) -> Asset | None:
        return self.assets.get(path)
