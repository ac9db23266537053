"""`ruff check` and `mypy --strict` on the packages, as part of the test command (CI runs
the suite, so a type error or lint fails it). mypy keeps its cache in `.mypy_cache`, so a
rerun takes seconds; the first run may take a minute."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
PACKAGES = ["ipc", "supervisor", "portal", "server", "game"]


def run(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def test_ruff_check_is_clean() -> None:
    result = run("ruff", "check", "--no-cache", ".", timeout=120)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]


def test_mypy_strict_is_clean_on_the_packages() -> None:
    result = run("mypy", "--strict", "--cache-dir", str(REPO / ".mypy_cache"), *PACKAGES,
                 timeout=170)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]


def test_every_package_folder_is_installed() -> None:
    """pyproject.toml lists packages by hand: a new sub-package missing there imports from
    the repository but not from an installed copy (`hearth start` from a venv)."""
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())
                 ["tool"]["setuptools"]["packages"])
    found = {".".join(init.parent.relative_to(REPO).parts)
             for top in PACKAGES for init in (REPO / top).rglob("__init__.py")}
    assert found - listed == set(), f"add to [tool.setuptools] packages: {found - listed}"
