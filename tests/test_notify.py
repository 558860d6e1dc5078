"""sd_notify against a real unix datagram socket, the way systemd listens."""

from __future__ import annotations

import os
import socket

import pytest

from daemon.notify import Watchdog, notify, watchdog_interval


@pytest.fixture
def listener(tmp_path_factory):
    # A short folder: unix socket paths are limited to about 108 bytes.
    path = tmp_path_factory.mktemp("sd") / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2.0)
    yield sock, str(path)
    sock.close()


def test_notify_delivers_the_state(listener, monkeypatch):
    sock, path = listener
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    assert notify("READY=1") is True
    assert sock.recv(4096) == b"READY=1"
    assert notify("STATUS=camera 0: 12.5 fps\nWATCHDOG=1") is True
    assert sock.recv(4096) == b"STATUS=camera 0: 12.5 fps\nWATCHDOG=1"


def test_notify_uses_the_abstract_namespace_for_an_at_sign(monkeypatch):
    name = f"facegate-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2.0)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert notify("STOPPING=1") is True
        assert sock.recv(4096) == b"STOPPING=1"


def test_notify_outside_systemd_is_a_no_op(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify("READY=1") is False


def test_notify_never_raises_on_socket_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    assert notify("WATCHDOG=1") is False
    monkeypatch.setenv("NOTIFY_SOCKET", "vsock:2:1234")  # newer systemd; not supported here
    assert notify("WATCHDOG=1") is False


def test_watchdog_interval_is_half_of_watchdog_usec(monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert watchdog_interval() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_interval() == 15.0


def test_watchdog_interval_for_another_process_or_unset_is_none(monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert watchdog_interval() is None
    monkeypatch.delenv("WATCHDOG_PID")
    monkeypatch.delenv("WATCHDOG_USEC")
    assert watchdog_interval() is None
    for bad in ("", "0", "soon"):
        monkeypatch.setenv("WATCHDOG_USEC", bad)
        assert watchdog_interval() is None


def test_the_watchdog_pings_once_per_half_interval_with_the_status(listener, monkeypatch):
    """systemd kills a service that misses WatchdogSec; pinging every loop would flood it."""
    sock, path = listener
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "10000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    now = [100.0]
    watchdog = Watchdog(clock=lambda: now[0])
    watchdog.ping(lambda: "3 people")
    assert sock.recv(4096) == b"WATCHDOG=1\nSTATUS=3 people"
    now[0] += 4.9
    watchdog.ping()                       # not due yet: nothing is sent
    sock.settimeout(0.2)
    with pytest.raises(socket.timeout):
        sock.recv(4096)
    sock.settimeout(2.0)
    now[0] += 0.1
    watchdog.ping()
    assert sock.recv(4096) == b"WATCHDOG=1", "the next ping comes 5 s (half of WatchdogSec) later, not earlier"


def test_without_a_systemd_watchdog_nothing_is_sent(listener, monkeypatch):
    sock, path = listener
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    Watchdog().ping()
    sock.settimeout(0.2)
    with pytest.raises(socket.timeout):
        sock.recv(4096)
