"""The supervisor's periodic health watch: samples per pid, limits per role, what to do.

`HealthWatch` keeps one `HealthSampler` (one `psutil.Process`) per watched pid and the
last few samples of each, so the CPU figure is measured between two ticks of the same
object and `status` can show it without sampling again. `decide` is pure: given the role
that passed a limit, the settings and the time of the last action, it says what the
supervisor should do. A server is recycled through the reload path (players stay
connected); a portal is only reported unless the operator asked for restarts, because
restarting the portal disconnects every player.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Literal

from ipc.settings import HealthSettings
from supervisor.health import HealthLimits, HealthSample, HealthSampler, evaluate

__all__ = ["HealthAction", "HealthWatch", "decide", "limits_for"]

HealthAction = Literal["recycle", "replace", "report", "wait"]
KEEP_SAMPLES = 16


def limits_for(role: str, settings: HealthSettings) -> HealthLimits:
    """The limits of one role (the supervisor itself has none)."""
    if role == "server":
        return HealthLimits(max_rss_mb=settings.server_max_rss_mb,
                            max_cpu_percent=settings.server_max_cpu_percent,
                            cpu_samples=settings.cpu_samples,
                            max_open_files=settings.server_max_open_files)
    if role == "portal":
        return HealthLimits(max_rss_mb=settings.portal_max_rss_mb,
                            max_open_files=settings.portal_max_open_files)
    return HealthLimits()


def decide(role: str, settings: HealthSettings, now: float,
           last_action: float | None) -> HealthAction:
    """What to do about `role` being over a limit at `now` (monotonic seconds).

    `last_action` is when the last recycle / reboot for this role was started (None:
    never). Within `recycle_cooldown` of it the answer is "wait", so a new server that is
    still over the limit, or a reload that keeps failing, is not retried every tick.
    """
    if role == "portal" and not settings.portal_restart:
        return "report"
    if last_action is not None and now - last_action < settings.recycle_cooldown:
        return "wait"
    return "recycle" if role == "server" else "replace"  # the portal: reload-portal


class _Watched:
    def __init__(self, pid: int, role: str, limits: HealthLimits) -> None:
        self.role = role
        self.limits = limits
        self.sampler = HealthSampler(pid)
        self.samples: deque[HealthSample] = deque(maxlen=KEEP_SAMPLES)
        self.over_limit: str | None = None


class HealthWatch:
    """Samples of every watched process; `tick` once per interval, `forget` at exit."""

    def __init__(self, settings: HealthSettings) -> None:
        self.settings = settings
        self._watched: dict[int, _Watched] = {}

    def watch(self, pid: int, role: str) -> None:
        """Start watching `pid` (primes its CPU counter; idempotent)."""
        if pid not in self._watched:
            self._watched[pid] = _Watched(pid, role, limits_for(role, self.settings))

    def configure(self, settings: HealthSettings) -> None:
        """Use new limits, for the processes already watched too."""
        self.settings = settings
        for watched in self._watched.values():
            watched.limits = limits_for(watched.role, settings)

    def forget(self, pid: int) -> None:
        self._watched.pop(pid, None)

    def tick(self, pids: list[int], now: float) -> dict[int, str]:
        """Sample each of `pids` once; return the ones over a limit, with the reason."""
        over: dict[int, str] = {}
        for pid in pids:
            watched = self._watched.get(pid)
            if watched is None:
                continue
            sample = watched.sampler.sample(now, connections=False)
            if sample is None:
                continue
            watched.samples.append(sample)
            watched.over_limit = evaluate(list(watched.samples), watched.limits)
            if watched.over_limit:
                over[pid] = watched.over_limit
        return over

    def figures(self, pid: int, now: float) -> dict[str, Any]:
        """The latest figures of `pid` for `status` (sampled now if there are none yet)."""
        watched = self._watched.get(pid)
        if watched is None:
            return {}
        if not watched.samples:
            self.tick([pid], now)
        if not watched.samples:
            return {}
        sample = watched.samples[-1]
        return {"rss": sample.rss, "cpu_percent": sample.cpu_percent,
                "open_files": sample.open_files, "threads": sample.threads,
                "connections": watched.sampler.count_connections(),
                "sampled_ago": max(0.0, now - sample.at),
                "over_limit": watched.over_limit}
