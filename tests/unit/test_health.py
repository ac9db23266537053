"""psutil sampling on real processes, and the pure limit evaluation."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from supervisor.health import HealthLimits, HealthSample, HealthSampler, evaluate

MB = 1024 * 1024


@pytest.fixture
def child() -> Iterator[subprocess.Popen[bytes]]:
    """A child that lives until its stdin is closed."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


def end(proc: subprocess.Popen[bytes]) -> None:
    assert proc.stdin is not None
    proc.stdin.close()


def burn_cpu(seconds: float) -> None:
    start = time.process_time()
    while time.process_time() - start < seconds:
        pass


# --- sampler


def test_samples_this_process() -> None:
    sampler = HealthSampler(os.getpid())
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        burn_cpu(0.05)
        sample = sampler.sample(now=12.5)
    assert sample is not None
    assert sample.at == 12.5
    assert sample.rss > MB
    assert sample.cpu_percent > 0  # primed by the constructor, so not the bogus first 0.0
    assert sample.threads >= 1
    assert sample.open_files >= 4  # stdin/out/err and the listener at least
    assert sample.connections >= 1


def test_same_process_object_across_samples() -> None:
    sampler = HealthSampler(os.getpid())
    first, second = sampler.sample(1.0), sampler.sample(2.0)
    assert first is not None
    assert second is not None
    assert (first.at, second.at) == (1.0, 2.0)


def test_dead_pid_gives_none(child: subprocess.Popen[bytes]) -> None:
    end(child)
    child.wait(timeout=10)
    assert HealthSampler(child.pid).sample(1.0) is None


def test_child_that_ends_after_the_sampler_was_made(child: subprocess.Popen[bytes]) -> None:
    sampler = HealthSampler(child.pid)
    assert sampler.sample(1.0) is not None
    end(child)
    child.wait(timeout=10)
    assert sampler.sample(2.0) is None


def test_zombie_gives_none(child: subprocess.Popen[bytes]) -> None:
    sampler = HealthSampler(child.pid)
    end(child)
    # Wait for the exit without reaping it, so the child stays a zombie.
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
    assert sampler.sample(1.0) is None


# --- evaluate


def sample(
    *, rss: int = 100 * MB, cpu: float = 1.0, open_files: int = 10, at: float = 0.0
) -> HealthSample:
    return HealthSample(
        at=at, rss=rss, cpu_percent=cpu, open_files=open_files, threads=4, connections=2
    )


def test_no_samples_or_no_limits_is_healthy() -> None:
    assert evaluate([], HealthLimits(max_rss_mb=1)) is None
    huge = sample(rss=10**12, cpu=800.0, open_files=10**6)
    assert evaluate([huge] * 5, HealthLimits()) is None


def test_rss_limit() -> None:
    limits = HealthLimits(max_rss_mb=512)
    assert evaluate([sample(rss=512 * MB)], limits) is None
    assert evaluate([sample(rss=612 * MB)], limits) == "rss 612 MB over limit 512 MB"


def test_rss_judged_on_the_newest_sample() -> None:
    limits = HealthLimits(max_rss_mb=512)
    assert evaluate([sample(rss=900 * MB), sample(rss=100 * MB)], limits) is None


def test_open_files_limit() -> None:
    limits = HealthLimits(max_open_files=1024)
    assert evaluate([sample(open_files=1024)], limits) is None
    assert evaluate([sample(open_files=1500)], limits) == "open files 1500 over limit 1024"


def test_cpu_needs_consecutive_samples_over_the_limit() -> None:
    limits = HealthLimits(max_cpu_percent=90.0, cpu_samples=3)
    hot, cool = sample(cpu=99.0), sample(cpu=10.0)
    assert evaluate([hot, hot], limits) is None  # not enough samples yet
    assert evaluate([hot, cool, hot], limits) is None  # not consecutive
    assert evaluate([cool, hot, hot, sample(cpu=95.0)], limits) == (
        "cpu 95% over limit 90% for 3 samples"
    )


def test_cpu_exactly_at_the_limit_is_fine() -> None:
    limits = HealthLimits(max_cpu_percent=90.0, cpu_samples=1)
    assert evaluate([sample(cpu=90.0)], limits) is None


def test_memory_reported_before_cpu() -> None:
    limits = HealthLimits(max_rss_mb=10, max_cpu_percent=50.0, cpu_samples=1)
    reason = evaluate([sample(rss=20 * MB, cpu=100.0)], limits)
    assert reason is not None
    assert reason.startswith("rss 20 MB")


@pytest.mark.parametrize("bad", [{"max_rss_mb": -1}, {"max_cpu_percent": -1.0}, {"cpu_samples": 0}])
def test_limits_reject_nonsense(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        HealthLimits(**bad)  # type: ignore[arg-type]
