"""Resource use of a child (psutil) and the limits it must stay under.

`HealthSampler` is the only part that reads the operating system; call its
`sample` on a fixed tick and keep the last few samples. `evaluate` is pure: it
looks at those samples and says, in one line, which limit was passed. The
caller decides what to do about it (restart the child, as circus's
``resource_watcher`` and pm2's ``max_memory_restart`` do).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import msgspec
import psutil

__all__ = ["HealthLimits", "HealthSample", "HealthSampler", "evaluate"]

_MB = 1024 * 1024


class HealthSample(msgspec.Struct, frozen=True):
    """One reading of a child's resource use at time ``at`` (the caller's clock)."""

    at: float
    rss: int
    """Resident memory, bytes."""
    cpu_percent: float
    """Since the previous sample; may exceed 100 on several cores."""
    open_files: int
    """Open file descriptors (sockets and pipes included), 0 if unreadable."""
    threads: int
    connections: int
    """Internet sockets, 0 if unreadable, -1 if not counted (see `HealthSampler.sample`)."""


class HealthSampler:
    """Samples one child process.

    It holds one `psutil.Process` for the child's whole life: CPU use is
    measured between two calls on the *same* object, so the constructor primes
    it and the first `sample` already gives a meaningful figure. Make a new
    sampler for each new process. psutil compares creation times, so a pid
    reused by another process reads as gone rather than as the wrong process.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._process: psutil.Process | None
        try:
            self._process = psutil.Process(pid)
            self._process.cpu_percent(interval=None)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            self._process = None

    def sample(self, now: float, *, connections: bool = True) -> HealthSample | None:
        """Read the child's resource use, or None if it is gone or unreadable.

        Counting connections reads the whole system's socket tables (/proc/net/tcp*),
        which costs milliseconds on a busy host; a periodic watch passes
        ``connections=False`` and gets -1, and counts them only when asked
        (`count_connections`).
        """
        process = self._process
        if process is None or not process.is_running():
            return None
        try:
            with process.oneshot():
                if process.status() == psutil.STATUS_ZOMBIE:
                    return None
                return HealthSample(
                    at=now,
                    rss=int(process.memory_info().rss),
                    cpu_percent=float(process.cpu_percent(interval=None)),
                    open_files=_count_fds(process),
                    threads=int(process.num_threads()),
                    connections=_count_connections(process) if connections else -1,
                )
        except (psutil.NoSuchProcess, psutil.AccessDenied):  # ZombieProcess included
            return None


    def count_connections(self) -> int:
        """The child's internet sockets now (0 if gone or unreadable)."""
        if self._process is None:
            return 0
        try:
            return _count_connections(self._process)
        except psutil.NoSuchProcess:
            return 0


def _count_fds(process: psutil.Process) -> int:
    try:
        if hasattr(process, "num_fds"):  # POSIX
            return int(process.num_fds())
        return len(process.open_files())
    except psutil.AccessDenied:
        return 0


def _count_connections(process: psutil.Process) -> int:
    # psutil 6 renamed connections() to net_connections(); keep the old name as a fallback.
    method = getattr(process, "net_connections", None) or process.connections
    try:
        return len(method(kind="inet"))
    except psutil.AccessDenied:
        return 0


class HealthLimits(msgspec.Struct, frozen=True, kw_only=True):
    """Resource limits of one child; 0 turns a limit off."""

    max_rss_mb: int = 0
    """Resident memory, in MB of 2**20 bytes."""
    max_cpu_percent: float = 0
    cpu_samples: int = 3
    """How many samples in a row must be over ``max_cpu_percent``."""
    max_open_files: int = 0

    def __post_init__(self) -> None:
        if self.max_rss_mb < 0 or self.max_cpu_percent < 0 or self.max_open_files < 0:
            raise ValueError("limits must not be negative (0 = off)")
        if self.cpu_samples < 1:
            raise ValueError("cpu_samples must be at least 1")


def evaluate(samples: Sequence[HealthSample], limits: HealthLimits) -> str | None:
    """Say which limit the child passed, or None if it is within all of them.

    ``samples`` are oldest first. Memory and open files are judged on the
    newest sample; CPU only when each of the last ``cpu_samples`` samples is
    over the limit, because short bursts are normal.
    """
    if not samples:
        return None
    return (
        _rss_reason(samples[-1], limits)
        or _fds_reason(samples[-1], limits)
        or _cpu_reason(samples, limits)
    )


def _rss_reason(sample: HealthSample, limits: HealthLimits) -> str | None:
    if not limits.max_rss_mb or sample.rss <= limits.max_rss_mb * _MB:
        return None
    return f"rss {math.ceil(sample.rss / _MB)} MB over limit {limits.max_rss_mb} MB"


def _fds_reason(sample: HealthSample, limits: HealthLimits) -> str | None:
    if not limits.max_open_files or sample.open_files <= limits.max_open_files:
        return None
    return f"open files {sample.open_files} over limit {limits.max_open_files}"


def _cpu_reason(samples: Sequence[HealthSample], limits: HealthLimits) -> str | None:
    recent = samples[-limits.cpu_samples :]
    if not limits.max_cpu_percent or len(recent) < limits.cpu_samples:
        return None
    if any(s.cpu_percent <= limits.max_cpu_percent for s in recent):
        return None
    lowest = min(s.cpu_percent for s in recent)
    return (
        f"cpu {lowest:.0f}% over limit {limits.max_cpu_percent:g}% for {limits.cpu_samples} samples"
    )
