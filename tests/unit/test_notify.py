"""sd_notify against a real AF_UNIX datagram socket."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from supervisor import notify as sd


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[socket.socket, dict[str, str]]]:
    """A bound datagram socket playing systemd, and the env that points at it."""
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(5.0)
        yield sock, {"NOTIFY_SOCKET": str(path)}


def test_unset_socket_is_a_no_op() -> None:
    assert sd.notify("READY=1", {}) is False
    assert sd.ready({}) is False


def test_unsupported_address_is_a_no_op() -> None:
    assert sd.notify("READY=1", {"NOTIFY_SOCKET": "vsock:2:1234"}) is False


def test_missing_socket_file_returns_false(tmp_path: Path) -> None:
    assert sd.notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "gone.sock")}) is False


@pytest.mark.parametrize(
    ("send", "expected"),
    [
        (sd.ready, b"READY=1"),
        (sd.watchdog, b"WATCHDOG=1"),
        (sd.stopping, b"STOPPING=1"),
    ],
)
def test_helpers_send_one_datagram(
    receiver: tuple[socket.socket, dict[str, str]],
    send: Callable[[Mapping[str, str]], bool],
    expected: bytes,
) -> None:
    sock, env = receiver
    assert send(env) is True
    assert sock.recv(4096) == expected


def test_status_is_one_line(receiver: tuple[socket.socket, dict[str, str]]) -> None:
    sock, env = receiver
    assert sd.status("3 players\nREADY=1", env) is True
    assert sock.recv(4096) == b"STATUS=3 players READY=1"


def test_abstract_namespace_socket() -> None:
    name = f"hearth-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5.0)
        assert sd.notify("READY=1\nSTATUS=up", {"NOTIFY_SOCKET": "@" + name}) is True
        assert sock.recv(4096) == b"READY=1\nSTATUS=up"


def test_default_env_is_os_environ(
    receiver: tuple[socket.socket, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, env = receiver
    monkeypatch.setenv("NOTIFY_SOCKET", env["NOTIFY_SOCKET"])
    assert sd.ready() is True
    assert sock.recv(4096) == b"READY=1"


@pytest.mark.parametrize(
    ("env", "interval"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "500000"}, 0.25),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),
    ],
)
def test_watchdog_interval(env: dict[str, str], interval: float | None) -> None:
    assert sd.watchdog_interval(env) == interval


def test_watchdog_interval_for_a_given_pid() -> None:
    env = {"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "4242"}
    assert sd.watchdog_interval(env, pid=4242) == 1.0
