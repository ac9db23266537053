"""The supervisor's health watch: what to do about a passed limit, and the sampled figures."""

from __future__ import annotations

import os

import pytest

from ipc.settings import HealthSettings
from supervisor.healthwatch import HealthWatch, decide, limits_for


def test_server_is_recycled_then_waits_out_the_cooldown() -> None:
    settings = HealthSettings(recycle_cooldown=60.0)
    assert decide("server", settings, now=100.0, last_action=None) == "recycle"
    assert decide("server", settings, now=159.0, last_action=100.0) == "wait"
    assert decide("server", settings, now=160.0, last_action=100.0) == "recycle"


def test_portal_is_only_reported_unless_restarts_are_allowed() -> None:
    assert decide("portal", HealthSettings(), now=0.0, last_action=None) == "report"
    allowed = HealthSettings(portal_restart=True, recycle_cooldown=10.0)
    assert decide("portal", allowed, now=0.0, last_action=None) == "replace"
    assert decide("portal", allowed, now=5.0, last_action=0.0) == "wait"


def test_limits_per_role() -> None:
    settings = HealthSettings(server_max_rss_mb=300, server_max_cpu_percent=90, cpu_samples=4,
                              portal_max_rss_mb=200, portal_max_open_files=5000)
    server = limits_for("server", settings)
    assert (server.max_rss_mb, server.max_cpu_percent, server.cpu_samples) == (300, 90, 4)
    portal = limits_for("portal", settings)
    assert (portal.max_rss_mb, portal.max_cpu_percent, portal.max_open_files) == (200, 0, 5000)
    assert limits_for("supervisor", settings).max_rss_mb == 0


@pytest.mark.parametrize("bad", [{"interval": -1}, {"server_max_rss_mb": -5},
                                 {"cpu_samples": 0}, {"recycle_cooldown": -1}])
def test_settings_reject_nonsense(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        HealthSettings(**bad)  # type: ignore[arg-type]


def test_tick_reports_a_process_over_its_limit() -> None:
    watch = HealthWatch(HealthSettings(server_max_rss_mb=1))
    watch.watch(os.getpid(), "server")
    over = watch.tick([os.getpid()], now=1.0)
    assert "rss" in over[os.getpid()]
    assert watch.figures(os.getpid(), now=1.5)["over_limit"] == over[os.getpid()]


def test_figures_come_from_the_latest_sample() -> None:
    watch = HealthWatch(HealthSettings())
    watch.watch(os.getpid(), "supervisor")
    assert watch.tick([os.getpid()], now=10.0) == {}
    figures = watch.figures(os.getpid(), now=12.0)
    assert figures["sampled_ago"] == 2.0
    assert figures["rss"] > 0 and figures["threads"] >= 1 and figures["open_files"] >= 3
    assert figures["over_limit"] is None
    assert figures["connections"] >= 0  # counted on demand, not on every tick


def test_unwatched_and_forgotten_pids_have_no_figures() -> None:
    watch = HealthWatch(HealthSettings())
    assert watch.figures(os.getpid(), now=0.0) == {}
    watch.watch(os.getpid(), "server")
    watch.forget(os.getpid())
    assert watch.tick([os.getpid()], now=0.0) == {}
    assert watch.figures(os.getpid(), now=0.0) == {}
