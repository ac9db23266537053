"""Where the distribution clients the integration tests drive live, and what to do without one.

`require(name)` returns the client's path. Without it the test is skipped, except under
`CI=true`, where a missing client fails its test: CI installs every client
(`scripts/install-clients`), so a skip there would hide a broken install step.
"""

from __future__ import annotations

import os
import shutil

import pytest

PACKAGES = {"tt++": "tintin++", "telnet": "inetutils-telnet", "ssh": "openssh-client",
            "ssh-keygen": "openssh-client", "chromium": "chromium", "openssl": "openssl"}
FALLBACKS = {"tt++": ["/usr/games/tt++"]}  # Debian puts TinTin++ outside root's PATH


def find(name: str) -> str | None:
    found = shutil.which(name)
    return found or next((p for p in FALLBACKS.get(name, []) if os.access(p, os.X_OK)), None)


def require(name: str) -> str:
    path = find(name)
    if path is not None:
        return path
    package = PACKAGES.get(name, name)
    message = f"`{name}` not installed (Debian: apt-get install -y {package})"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + "; CI must install every client (scripts/install-clients)")
    pytest.skip(message)
