"""`python -m benchmarks.run_all` (or `python -m benchmarks`): the whole suite, default settings.

Runs each benchmark as its own process, one after the other, so a failure in one does not
stop the rest; every one prints its table and writes JSON to benchmarks/results/.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SUITE = [
    ("hotpath", []),
    ("ipc", []),
    ("startup", []),
    ("latency", []),
    ("room", []),
    ("capacity", []),
    ("ssh", []),
    ("web", []),
    ("reload", ["--clients", "100"]),
    ("reload", ["--clients", "1000"]),
    ("hostile", []),
    ("churn", []),
    ("world", []),
]
LIMIT = 120.0  # seconds per benchmark
# hostile: 9 attack patterns of 10 s, plus the idle baseline; world: two games of 1,000
# players (an empty world and 100,000 objects), each logging in and through four events
LIMITS = {"hostile": 300.0, "world": 420.0}


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
        proc = subprocess.Popen(cmd, cwd=REPO)
        try:
            code = proc.wait(timeout=LIMITS.get(name, LIMIT))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)  # its `finally` blocks stop what it started
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            code = -1
            print(f"timed out after {LIMITS.get(name, LIMIT):.0f}s; interrupted")
        if code:
            failed.append(f"{name} {' '.join(extra)} (exit {code})")
    print(f"\nsuite finished in {time.monotonic() - start:.0f}s; "
          f"{'failed: ' + ', '.join(failed) if failed else 'all ran'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
