"""Shared fixtures: a real Mosquitto broker, the shipped encoder, face fixture paths."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FACES = Path(__file__).resolve().parent / "fixtures" / "faces"
SHIPPED_ENCODER = REPO / "daemon" / "models" / "encoder.tflite"


def _mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)), None)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MosquittoBroker:
    """A throwaway Mosquitto on a loopback port, with persistence (retained messages and
    persistent sessions survive stop()/start(), as on a real server), or without it (a
    restart loses everything). start() and stop() keep the same port, so clients see "the
    broker went down and came back"."""

    host = "127.0.0.1"

    def __init__(self, binary: str, workdir: Path, persistence: bool = True):
        self.binary = binary
        self.workdir = workdir
        self.port = _free_port()
        self.log_path = workdir / "mosquitto.log"
        self.conf_path = workdir / "mosquitto.conf"
        self.conf_path.write_text("\n".join([
            f"listener {self.port} {self.host}",
            "allow_anonymous true",
            f"persistence {'true' if persistence else 'false'}",
            f"persistence_location {workdir}/",
            "autosave_interval 1",
            f"log_dest file {self.log_path}",
            "log_type error", "log_type warning", "log_type notice",
            # As root Mosquitto would drop to the 'mosquitto' user, which cannot write here.
            f"user {getpass.getuser()}",
            "",
        ]))
        self._process: subprocess.Popen | None = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        if self.running:
            return
        self._process = subprocess.Popen([self.binary, "-c", str(self.conf_path)],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self._process.stderr.read().decode()[-2000:]}")
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on port {self.port} within {timeout} s")

    def stop(self) -> None:
        """Graceful stop (SIGTERM): Mosquitto saves retained messages and sessions first."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process.stderr.close()
        self._process = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture(scope="session")
def mosquitto_session(tmp_path_factory):
    binary = _mosquitto_binary()
    if binary is None:
        pytest.skip("mosquitto is not installed (apt install mosquitto); CI installs it")
    broker = MosquittoBroker(binary, tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def volatile_broker(tmp_path):
    """A broker of its own without persistence: restart() loses every retained message."""
    binary = _mosquitto_binary()
    if binary is None:
        pytest.skip("mosquitto is not installed (apt install mosquitto); CI installs it")
    workdir = tmp_path / "mosquitto-volatile"
    workdir.mkdir()
    broker = MosquittoBroker(binary, workdir, persistence=False)
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def broker(mosquitto_session):
    """The session's broker, running at the start and at the end of every test that uses it
    (a test may stop() and start() it in between)."""
    mosquitto_session.start()
    yield mosquitto_session
    mosquitto_session.start()


@pytest.fixture(scope="session")
def encoder_model() -> Path:
    """The shipped encoder (daemon/models/encoder.tflite + model.json), or the model named by
    $FACEGATE_TEST_ENCODER (to run the end-to-end tests against a candidate model)."""
    override = os.environ.get("FACEGATE_TEST_ENCODER")
    if override:
        return Path(override)
    if not SHIPPED_ENCODER.is_file() or not SHIPPED_ENCODER.with_name("model.json").is_file():
        pytest.skip(f"the shipped encoder model is missing ({SHIPPED_ENCODER} and model.json): "
                    "train and export it with model-build first; model-dependent end-to-end tests skipped")
    return SHIPPED_ENCODER


@pytest.fixture(scope="session")
def face_fixtures() -> Path:
    """tests/fixtures/faces/<person_id>/*.jpg: four LFW people, six photos each."""
    return FACES
