"""Transport security against a real Mosquitto running the shipped example configs
(config/mosquitto/facegate-tls.conf and facegate.acl, with test paths): TLS with client
certificates, the certificate's CN as the user name, per-device ACLs.

The test CA, the broker's certificate and the clients' certificates are generated in the
test session with `cryptography`; a second, rogue CA issues a look-alike door certificate.
"""

from __future__ import annotations

import datetime
import getpass
import ipaddress
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from paho.mqtt.enums import CallbackAPIVersion

from conftest import _free_port, _mosquitto_binary
from daemon.door.link import MqttLink
from daemon.protocol import topics
from daemon.protocol.broker import BrokerSettings
from daemon.server.client import BrokerError, EnrollmentClient
from daemon_helpers import TEST_TRUST, enrollment, unit_vectors

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "config" / "mosquitto"
SITE = "hq"  # the site the example ACL is written for


# ---------------------------------------------------------------- a throwaway PKI

@dataclass
class Pki:
    folder: Path

    def path(self, name: str) -> str:
        return str(self.folder / name)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(key, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def _make_ca(folder: Path, name: str):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    (folder / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert


def _issue(folder: Path, ca, cn: str, server: bool = False) -> None:
    ca_key, ca_cert = ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca_cert.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server
                                                     else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    (folder / f"{cn}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, folder / f"{cn}.key")


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca = _make_ca(folder, "ca")
    _issue(folder, ca, "broker", server=True)
    for cn in ("enroll-server", "door1", "door2", "door-controller", "homeassistant"):
        _issue(folder, ca, cn)
    rogue = folder / "rogue"
    rogue.mkdir()
    rogue_ca = _make_ca(rogue, "ca")
    _issue(rogue, rogue_ca, "door1")           # same CN as a real door, wrong issuer
    _issue(rogue, rogue_ca, "broker", server=True)
    return Pki(folder)


# ---------------------------------------------------------------- Mosquitto with the shipped configs

def example_config(pki: Pki, port: int, workdir: Path) -> str:
    """The shipped facegate-tls.conf with this test's port, certificate and ACL paths."""
    text = (EXAMPLES / "facegate-tls.conf").read_text()
    text = text.replace("listener 8883", f"listener {port} 127.0.0.1")
    text = text.replace("/etc/mosquitto/certs/ca.crt", pki.path("ca.crt"))
    text = text.replace("/etc/mosquitto/certs/broker.crt", pki.path("broker.crt"))
    text = text.replace("/etc/mosquitto/certs/broker.key", pki.path("broker.key"))
    text = text.replace("/etc/mosquitto/facegate.acl", str(EXAMPLES / "facegate.acl"))
    text = text.replace("persistence_location /var/lib/mosquitto/", f"persistence_location {workdir}/")
    return text + f"\nlog_dest file {workdir / 'mosquitto.log'}\nuser {getpass.getuser()}\n"


@pytest.fixture(scope="module")
def tls_broker(pki, tmp_path_factory):
    binary = _mosquitto_binary()
    if binary is None:
        pytest.skip("mosquitto is not installed (apt install mosquitto)")
    workdir = tmp_path_factory.mktemp("mosquitto-tls")
    port = _free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(example_config(pki, port, workdir))
    process = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"mosquitto exited: {process.stderr.read().decode()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    yield port
    process.terminate()
    process.wait(10)
    process.stderr.close()


def settings(pki: Pki, port: int, cn: str | None, ca: str = "ca.crt", folder: str = "") -> BrokerSettings:
    base = f"{folder}/" if folder else ""
    return BrokerSettings("127.0.0.1", port, tls=True, ca_file=pki.path(ca),
                          cert_file=pki.path(f"{base}{cn}.crt") if cn else "",
                          key_file=pki.path(f"{base}{cn}.key") if cn else "")


class Client:
    """A bare MQTT 5 client that records acknowledgements and messages."""

    def __init__(self, broker: BrokerSettings, client_id: str):
        self.connack = threading.Event()
        self.reason = None
        self.acks: dict[int, object] = {}
        self.subacks: dict[int, list] = {}
        self.messages: list[tuple[str, bytes]] = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        broker.configure(self.client)
        self.client.on_connect = lambda c, u, f, rc, p: (setattr(self, "reason", rc), self.connack.set())
        self.client.on_publish = lambda c, u, mid, rc, p: self.acks.__setitem__(mid, rc)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.subacks.__setitem__(mid, list(rcs))
        self.client.on_message = lambda c, u, m: self.messages.append((m.topic, m.payload))
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        assert self.connack.wait(5) and not self.reason.is_failure, f"not connected: {self.reason}"

    def publish(self, topic: str, payload: bytes, retain: bool = False):
        mid = self.client.publish(topic, payload, qos=1, retain=retain).mid
        assert wait(lambda: mid in self.acks)
        return self.acks[mid]

    def subscribe(self, topic_filter: str) -> list:
        mid = self.client.subscribe(topic_filter, qos=1)[1]
        assert wait(lambda: mid in self.subacks)
        return self.subacks[mid]

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def wait(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


# ---------------------------------------------------------------- the tests

def test_a_device_with_its_certificate_syncs_signed_records_over_tls(pki, tls_broker):
    """The whole path: the enrollment server publishes a signed record over TLS with its
    certificate, a door connects with its own and receives and verifies it."""
    with EnrollmentClient(settings(pki, tls_broker, "enroll-server")) as server:
        server.publish(*enrollment(SITE, "alice", unit_vectors(2), "m1", 7))
    link = MqttLink(broker=settings(pki, tls_broker, "door1"), site=SITE, device_id="door1", model_id="m1",
                    embedding_size=128, trust=TEST_TRUST, reconnect_min_s=1, reconnect_max_s=1)
    link.start()
    try:
        assert link.wait_for_sync(10), link.last_error
        records = [r for r in link.take_records() if r.person_id == "alice"]
        assert [(r.version, len(r.encodings)) for r in records] == [(7, 2)]
        np.testing.assert_allclose(records[0].encodings, unit_vectors(2), atol=1e-6)
        assert link.rejected_counts() == {}
    finally:
        link.stop()


def test_a_device_with_a_certificate_from_another_ca_is_refused(pki, tls_broker):
    with pytest.raises(BrokerError, match="closed the connection|TLS|cannot connect"):
        EnrollmentClient(settings(pki, tls_broker, "door1", folder="rogue"), timeout_s=5).connect()


def test_a_client_without_a_certificate_is_refused(pki, tls_broker):
    with pytest.raises(BrokerError, match="closed the connection|TLS|cannot connect"):
        EnrollmentClient(settings(pki, tls_broker, None), timeout_s=5).connect()


def test_plain_mqtt_on_the_tls_port_is_refused(pki, tls_broker):
    with pytest.raises(BrokerError):
        EnrollmentClient(BrokerSettings("127.0.0.1", tls_broker), timeout_s=3).connect()


def test_a_device_refuses_a_broker_whose_certificate_is_not_from_its_ca(pki, tls_broker):
    """The door checks the broker too: a CA file that did not sign the broker's
    certificate (a man in the middle, a rogue broker) fails the handshake."""
    rogue_trust = settings(pki, tls_broker, "door1", ca="rogue/ca.crt")
    with pytest.raises(BrokerError, match="TLS"):
        EnrollmentClient(rogue_trust, timeout_s=5).connect()
    context = ssl.create_default_context(cafile=pki.path("rogue/ca.crt"))
    with pytest.raises(ssl.SSLCertVerificationError):
        with socket.create_connection(("127.0.0.1", tls_broker)) as raw:
            context.wrap_socket(raw, server_hostname="127.0.0.1")


def test_a_device_cannot_publish_to_another_devices_topics(pki, tls_broker):
    watcher = Client(settings(pki, tls_broker, "door-controller"), "watcher")
    assert not watcher.subscribe(f"facegate/{SITE}/device/#")[0].is_failure
    door1 = Client(settings(pki, tls_broker, "door1"), "door1-acl")
    try:
        own = door1.publish(topics.event_topic(SITE, "door1"), b'{"event": "unlock"}')
        assert not own.is_failure
        assert wait(lambda: (topics.event_topic(SITE, "door1"), b'{"event": "unlock"}') in watcher.messages)
        for leaf in ("event", "status", "health"):
            refused = door1.publish(topics.device_topic(SITE, "door2", leaf), b"forged by door1", retain=True)
            assert refused.is_failure and "authori" in str(refused).lower(), (leaf, refused)
        time.sleep(0.3)
        assert not [m for m in watcher.messages if m[1] == b"forged by door1"], "the broker must drop them"
    finally:
        door1.close()
        watcher.close()


def test_a_door_writes_its_own_discovery_configs_and_home_assistant_reads_them(pki, tls_broker):
    """Under the shipped ACL a door publishes its Home Assistant discovery configs (node level =
    its CN) but not another door's; Home Assistant reads them and the topics they name, and may
    clear them (as it does when a device is deleted in its UI)."""
    from daemon.events.homeassistant import discovery_messages
    hass = Client(settings(pki, tls_broker, "homeassistant"), "hass")
    assert not any(rc.is_failure for rc in hass.subscribe("homeassistant/#") + hass.subscribe(
        topics.status_topic(SITE, "door1")))
    configs = discovery_messages("homeassistant", SITE, "door1", health_interval_s=30.0)
    link = MqttLink(broker=settings(pki, tls_broker, "door1"), site=SITE, device_id="door1", model_id="m1",
                    embedding_size=128, trust=TEST_TRUST, reconnect_min_s=1, reconnect_max_s=1, retained=configs)
    link.start()
    door1 = None
    try:
        acks = []
        assert wait(lambda: acks.extend(link.take_acks()) or len(acks) >= 1 + len(configs)), acks
        assert [a.topic for a in acks if a.refused] == []
        assert wait(lambda: set(configs) <= set(hass.messages)), "Home Assistant receives every config"
        assert wait(lambda: (topics.status_topic(SITE, "door1"), b"online") in hass.messages)

        door1 = Client(settings(pki, tls_broker, "door1"), "door1-ha")
        topic, payload = discovery_messages("homeassistant", SITE, "door2", health_interval_s=30.0)[0]
        assert door1.publish(topic, payload, retain=True).is_failure, "a door must not write another's configs"
        assert not hass.publish(configs[0][0], b"", retain=True).is_failure, "Home Assistant may clear a config"
    finally:
        link.stop()
        for client in (door1, hass):
            if client is not None:
                client.close()


def test_a_device_cannot_enroll_or_revoke_anyone(pki, tls_broker):
    """Even a stolen door certificate cannot write the enrollment topics (and the
    signature would stop a forged record anyway)."""
    door1 = Client(settings(pki, tls_broker, "door1"), "door1-enroll")
    try:
        for topic, payload in (enrollment(SITE, "mallory", unit_vectors(1)),
                               (topics.revoke_topic(SITE, "alice"), b"{}"),
                               (topics.enroll_topic(SITE, "m1", "alice"), b"")):
            reason = door1.publish(topic, payload, retain=True)
            assert reason.is_failure, topic
    finally:
        door1.close()
    with EnrollmentClient(settings(pki, tls_broker, "enroll-server")) as server:
        held = server.retained([topics.enroll_filter(SITE), topics.revoke_filter(SITE)])
    assert topics.enroll_topic(SITE, "m1", "mallory") not in held
    assert topics.revoke_topic(SITE, "alice") not in held


def test_the_enrollment_server_is_told_when_the_acl_refuses_it(pki, tls_broker):
    """Publishing outside its site is refused with a clear error, not silently dropped."""
    with EnrollmentClient(settings(pki, tls_broker, "enroll-server")) as server:
        with pytest.raises(BrokerError, match="refused facegate/other-site/enroll/m1/alice.*ACL"):
            server.publish(*enrollment("other-site", "alice", unit_vectors(1)))


def test_a_device_cannot_read_another_devices_events(pki, tls_broker):
    """Mosquitto grants the subscription but delivers only what the ACL lets it read."""
    door1 = Client(settings(pki, tls_broker, "door1"), "door1-read")
    door2 = Client(settings(pki, tls_broker, "door2"), "door2-write")
    watcher = Client(settings(pki, tls_broker, "door-controller"), "watcher-2")
    try:
        door1.subscribe(f"facegate/{SITE}/device/#")
        watcher.subscribe(topics.event_topic(SITE, "door2"))
        assert not door2.publish(topics.event_topic(SITE, "door2"), b"door2 event").is_failure
        assert wait(lambda: (topics.event_topic(SITE, "door2"), b"door2 event") in watcher.messages)
        time.sleep(0.3)
        assert not [m for m in door1.messages if m[1] == b"door2 event"]
    finally:
        for client in (door1, door2, watcher):
            client.close()


def test_only_doors_and_the_server_read_the_enrolled_face_encodings(pki, tls_broker):
    """Enrollment records carry face encodings (biometric templates): the clients that
    act on events (a door controller, Home Assistant) must not receive them, even though
    the pattern lines grant every door, i.e. every authenticated client, read access."""
    with EnrollmentClient(settings(pki, tls_broker, "enroll-server")) as server:
        server.publish(*enrollment(SITE, "acl-reader", unit_vectors(1)))
    readers = {cn: Client(settings(pki, tls_broker, cn), f"{cn}-enroll-read")
               for cn in ("door1", "door-controller", "homeassistant")}
    try:
        for client in readers.values():
            client.subscribe(topics.enroll_filter(SITE))
        assert wait(lambda: any("acl-reader" in t for t, _ in readers["door1"].messages))
        time.sleep(0.3)
        for cn in ("door-controller", "homeassistant"):
            assert not [t for t, _ in readers[cn].messages if "/enroll/" in t], cn
    finally:
        for client in readers.values():
            client.close()


def test_the_shipped_broker_config_keeps_retained_messages_across_a_restart():
    """Persistence is on (facegate no longer depends on it, but doors see an empty broker
    until `facegate server` reconnects without it)."""
    text = (EXAMPLES / "facegate-tls.conf").read_text()
    settings_ = dict(line.split(None, 1) for line in text.splitlines() if line and not line.startswith("#")
                     and len(line.split(None, 1)) == 2)
    assert settings_["persistence"] == "true" and int(settings_["autosave_interval"]) <= 60


def test_the_enrollment_server_and_a_door_exchange_the_manifest_under_the_shipped_acl(pki, tls_broker, tmp_path):
    import threading

    from daemon.server.service import EnrollmentServer
    from daemon.server.store import EnrollmentStore, Publication
    from daemon.protocol.records import parse_enrollment
    from daemon_helpers import TEST_KEY
    store = EnrollmentStore.open(tmp_path / "server")
    topic, payload = enrollment(SITE, "alice", unit_vectors(2), "m1", 7)
    store.add(Publication.of(SITE, topic, payload, parse_enrollment(topic, payload, SITE, None, trust=TEST_TRUST)))
    server = EnrollmentServer(store, SITE, TEST_KEY, settings(pki, tls_broker, "enroll-server"),
                              manifest_interval_s=3600, manifest_valid_s=7200, settle_s=0.3)
    server.start()
    runner = threading.Thread(target=server.run, daemon=True)
    runner.start()
    link = MqttLink(broker=settings(pki, tls_broker, "door1"), site=SITE, device_id="door1", model_id="m1",
                    embedding_size=128, trust=TEST_TRUST, reconnect_min_s=1, reconnect_max_s=1)
    link.start()
    try:
        got = []
        assert wait(lambda: got.extend(link.take_manifests()) or len(got) >= 2, timeout=15), link.last_error
        assert link.manifest_rejected_counts() == {} and server.last_error is None
    finally:
        link.stop()
        server.stop()
        runner.join(5)
        server.close()
        store.close()


def test_an_event_the_acl_refuses_is_kept_counted_and_logged_with_its_topic(pki, tls_broker, tmp_path, caplog):
    """A door whose certificate CN (door2) is not its device.id (door1): the shipped ACL
    refuses its events. Nothing is silently deleted."""
    import time as _time

    from daemon.events import unlock_event
    from daemon.door.service import Service
    from daemon_helpers import PixelEncoder, service_config
    cfg = service_config(tmp_path, None, device={"id": "door1", "site": SITE}, mqtt={
        "host": "127.0.0.1", "port": tls_broker, "tls": True, "tls_ca_file": pki.path("ca.crt"),
        "tls_cert_file": pki.path("door2.crt"), "tls_key_file": pki.path("door2.key"), "sync_wait_s": 0.0},
        enrollment={"allow_unsigned": True})

    class NoFrames:
        name = "idle"
        open = close = lambda self: None
        read = lambda self: None

    service = Service(cfg, encoder=PixelEncoder(), source=NoFrames())
    service.start()
    try:
        assert wait(lambda: (service._housekeeping(), service.sync.link.connected)[1], timeout=10)
        service.emit(unlock_event(device_id="door1", site=SITE, person_id="alice", name="Alice", distance=0.3,
                                  frames_voted=3, model_id="pixel-test", ts=_time.time()))
        assert wait(lambda: (service._housekeeping(), service.health()["events"]["refused"])[1] == 1, timeout=10)
        assert service.health()["events"]["pending"] == 0
        [(event_id, payload, reason)] = service.sync.sink.outbox.refused()
        assert b'"person_id":"alice"' in payload and "authori" in reason.lower()
    finally:
        service.close()
    refused = topics.event_topic(SITE, "door1")
    assert f"refused our message to {refused}" in caplog.text
    assert "CN" in caplog.text and "must equal device.id ('door1')" in caplog.text
    # Its Home Assistant discovery configs (node door1) are refused too, with their own hint.
    assert "refused our message to homeassistant/event/door1/facegate_hq_recognition/config" in caplog.text
    assert "or set homeassistant.discovery = false" in caplog.text
