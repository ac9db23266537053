"""Every benchmark still runs end to end (tiny sizes), so none rots, and its exit status
follows the checks it prints: correctness checks (nothing lost, duplicated or unanswered)
must pass; targets are reported, not enforced, at these sizes on a shared machine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent.parent

SMOKE = {
    "ipc": ["--frames", "2000", "--unbatched-frames", "500"],
    "latency": ["--clients", "1,3", "--duration", "0.3", "--warmup", "0.1", "--storm", "3"],
    "capacity": ["--sessions", "20"],
    "room": ["--players", "3", "--duration", "0.3", "--warmup", "0.1"],
    "ssh": ["--sessions", "10", "--logins", "3", "--clients", "3", "--duration", "0.3",
            "--warmup", "0.1"],
    "web": ["--sessions", "10", "--clients", "3", "--duration", "0.3", "--warmup", "0.1"],
    "startup": ["--repeats", "1", "--no-cached"],
    "hostile": ["--duration", "0.5", "--after", "0.3",
                "--patterns", "toggles,newlines,gmcp_poison,conn_flood"],
    "reload": ["--clients", "3", "--warmup", "0.2", "--quiet", "0.2", "--settle", "0.2",
               "--hang-timeout", "2"],
    "world": ["--quick"],
    "hotpath": ["--rounds", "2"],
}


@pytest.mark.parametrize("name", sorted(SMOKE))
def test_benchmark_runs(name: str, tmp_path: Path) -> None:
    env = {**os.environ, "HEARTH_BENCH_RESULTS": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", f"benchmarks.{name}", *SMOKE[name],
                             "--targets", "report"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert "JSON:" in result.stdout
    checks = result.stdout.split("\nchecks\n", 1)
    assert len(checks) == 2, f"no checks printed:\n{result.stdout[-3000:]}"
    assert "FAILED" not in checks[1] and "all checks passed" in checks[1]
    assert " correctness " in checks[1]
    assert list(tmp_path.glob(f"{name}*-latest.json"))


def test_a_failed_check_fails_the_benchmark(tmp_path: Path) -> None:
    """A target the run cannot meet (1,000 times bare sockets' frames/s), enforced: exit
    status 1, and the failed check named."""
    env = {**os.environ, "HEARTH_BENCH_RESULTS": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "benchmarks.ipc", *SMOKE["ipc"],
                             "--ratio-target", "1000", "--targets", "enforce"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=90)
    assert result.returncode == 1, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert "FAILED checks: batched frames/s ratio >= 1000.00" in result.stdout


def test_the_player_path_stays_under_its_bytecode_ceilings(tmp_path: Path) -> None:
    """`benchmarks.hotpath` counts bytecodes, not time, so its ceilings are enforced here:
    a change that adds Python work to every round trip fails this test until it raises a
    ceiling (deliberately, with its reason)."""
    env = {**os.environ, "HEARTH_BENCH_RESULTS": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "benchmarks.hotpath", "--targets", "enforce"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    if sys.version_info[:2] == (3, 11):
        assert "targets reported" not in result.stdout  # enforced, not only reported
