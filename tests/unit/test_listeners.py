"""supervisor/listeners.py: which ports are held, and when they are rebound."""

from __future__ import annotations

import socket

from ipc.settings import PortalSettings
from supervisor.listeners import Listeners, from_systemd, wanted_ports


def test_wanted_ports_follow_the_settings() -> None:
    assert wanted_ports(PortalSettings(telnet_port=0)) == {"telnet": 0}
    assert wanted_ports(PortalSettings(telnet_port=0, telnet_ssl_port=0)) == {
        "telnet": 0, "telnet/ssl": 0}


def test_systemd_sockets_are_ours_only_for_our_pid() -> None:
    env = {"LISTEN_PID": "1", "LISTEN_FDS": "1", "LISTEN_FDNAMES": "telnet"}
    assert from_systemd(env, pid=2) == {}
    assert from_systemd({"LISTEN_PID": "2", "LISTEN_FDS": "x"}, pid=2) == {}


def test_open_keeps_a_held_port_and_rebinds_a_changed_one() -> None:
    listeners = Listeners()
    try:
        listeners.open(PortalSettings(telnet_port=0))
        first = listeners.sockets["telnet"]
        listeners.open(PortalSettings(telnet_port=0))
        assert listeners.sockets["telnet"] is first  # a reboot keeps the same socket
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            free = probe.getsockname()[1]
        listeners.open(PortalSettings(telnet_port=free, telnet_ssl_port=0))
        assert listeners.ports()["telnet"] == free
        assert set(listeners.fds()) == {"telnet", "telnet/ssl"}
        assert first.fileno() == -1  # the old one was closed
    finally:
        listeners.close()
    assert listeners.sockets == {}
