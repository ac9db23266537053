"""`python -m benchmarks`: the whole suite with default settings (about 3-4 minutes).

Runs each benchmark as its own process, one after the other, so a failure in one does not
stop the rest; every one prints its table and writes JSON to benchmarks/results/.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SUITE = [
    ("ipc", []),
    ("startup", []),
    ("latency", []),
    ("capacity", []),
    ("reload", ["--clients", "100"]),
    ("reload", ["--clients", "1000"]),
]
LIMIT = 120.0  # seconds per benchmark


def main() -> int:
    args = sys.argv[1:]
    quick = "--quick" in args
    failed = []
    start = time.monotonic()
    for name, extra in SUITE:
        if quick and extra == ["--clients", "1000"]:
            continue
        cmd = [sys.executable, "-m", f"benchmarks.{name}", *extra]
        print(f"\n=== {' '.join(cmd[1:])}", flush=True)
        try:
            code = subprocess.run(cmd, cwd=REPO, timeout=LIMIT).returncode
        except subprocess.TimeoutExpired:
            code = -1
            print(f"timed out after {LIMIT:.0f}s (the child's own cleanup ran or was killed)")
        if code:
            failed.append(f"{name} {' '.join(extra)} (exit {code})")
    print(f"\nsuite finished in {time.monotonic() - start:.0f}s; "
          f"{'failed: ' + ', '.join(failed) if failed else 'all ran'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
