"""The device's one MQTT connection: enrollment sync in, events/status/health (and the
retained Home Assistant discovery configs) out.

Threads: paho's network thread runs the callbacks below and only validates and queues;
the daemon's main thread takes the queued records, manifests and acknowledgements
(take_records, take_manifests, take_acks) and does all gallery and outbox writes. So
SQLite is only touched from one thread, and no lock of ours is ever held while calling
into paho (paho calls on_publish while holding its own lock, which would otherwise
invite a deadlock).

Messages that must not arrive late (unlock events) are published with an expiry time.
paho keeps unacknowledged QoS 1 messages and sends them again after a reconnect, which
could be hours later; on every reconnect, before paho re-sends anything, the ones past
their expiry are taken out of paho's queue (take_expired) and the others get their
remaining lifetime as MQTT 5 message expiry.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from daemon.config import MqttConfig  # the defaults
from daemon.protocol import topics
from daemon.protocol.broker import BrokerSettings, ConnectionState, drain
from daemon.protocol.manifest import MAX_PAGE_BYTES, parse_page, parse_top
from daemon.protocol.person import PersonRecord
from daemon.protocol.records import BAD_TOPIC, EMPTY, RecordError, max_payload_bytes, parse_enrollment
from daemon.protocol.signing import Trust

log = logging.getLogger(__name__)

ONLINE = b"online"
OFFLINE = b"offline"


@dataclass(frozen=True)
class Ack:
    """The broker's answer to one of our QoS 1 messages."""

    mid: int
    topic: str
    refused: str | None = None   # the MQTT 5 reason code when the broker refused it (e.g. its ACL)


class MqttLink(ConnectionState):
    """Connects in the background and keeps reconnecting (with backoff) until stop()."""

    def __init__(self, *, broker: BrokerSettings, site: str, device_id: str, model_id: str,
                 embedding_size: int, trust: Trust, keepalive_s: int = MqttConfig.keepalive_s,
                 reconnect_min_s: int = MqttConfig.reconnect_min_s, reconnect_max_s: int = MqttConfig.reconnect_max_s,
                 max_queued: int = MqttConfig.max_queued_events, retained: Sequence[tuple[str, bytes]] = ()):
        if not topics.valid_model_id(model_id):
            raise ValueError(f"model id {model_id!r} cannot be an MQTT topic level "
                             "(1-128 letters, digits, '_', '.', '-')")
        self.broker = broker
        self.host, self.port = broker.host, broker.port
        self.site, self.device_id, self.model_id = site, device_id, model_id
        self.embedding_size = embedding_size
        self.trust = trust
        self.keepalive_s = keepalive_s
        self.status_topic = topics.status_topic(site, device_id)
        # Published retained after "online" on every connection (Home Assistant discovery configs),
        # so a broker that lost its retained messages gets them back at the next reconnect.
        self.retained = tuple(retained)
        # This model's manifest first (Mosquitto sends retained messages filter by filter, so
        # records then find their manifest already there), then only this model's person
        # records (another model's encodings are useless here and must not replace ours),
        # and every tombstone.
        self.filters = (*topics.manifest_filters(site, model_id), topics.enroll_filter(site, model_id),
                        topics.revoke_filter(site))
        self.subscribed = threading.Event()  # set once the enrollment subscriptions are acknowledged
        self.last_record_at = 0.0            # time.monotonic() of the last enrollment message
        self.rejected: Counter[str] = Counter()  # reason code -> refused enrollment messages
        self.manifest_rejected: Counter[str] = Counter()  # the same for manifest tops and pages
        self._records: queue.SimpleQueue[PersonRecord] = queue.SimpleQueue()
        self._manifests: queue.SimpleQueue = queue.SimpleQueue()  # ManifestTop or (sha256, entries) of a page
        self._acks: deque[tuple[int, object]] = deque()  # (mid, reason code) the broker answered
        self._lock = threading.Lock()        # guards the counters, _topics, _expiring and _expired
        self._topics: dict[int, str] = {}    # mid -> topic of our messages not yet answered
        self._expiring: dict[int, tuple[float, Properties]] = {}  # mid -> (wall-clock deadline, its properties)
        self._expired: list[int] = []        # mids taken out of paho's queue, past their deadline

        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"facegate-{site}-{device_id}",
                             protocol=mqtt.MQTTv5)
        # If we vanish (power cut, crash, network gone) the broker marks us offline for us.
        client.will_set(self.status_topic, OFFLINE, qos=1, retain=True)
        client.reconnect_delay_set(reconnect_min_s, reconnect_max_s)
        # QoS 1 messages published while disconnected wait here and go out on reconnect.
        client.max_queued_messages_set(max_queued)
        self._max_packet = max(max_payload_bytes(embedding_size), MAX_PAGE_BYTES) + 4096
        broker.configure(client)  # credentials and TLS
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        self._client = client
        self._json = Properties(PacketTypes.PUBLISH)
        self._json.ContentType = "application/json"

    # ---- lifecycle (main thread) ----
    def start(self) -> None:
        """Connect in the background; returns at once even if the broker is down."""
        # MQTT 5: the broker must not send us packets larger than the biggest valid record
        # or manifest page, so an oversized payload is dropped before it reaches this process.
        connect = Properties(PacketTypes.CONNECT)
        connect.MaximumPacketSize = self._max_packet
        self._client.connect_async(self.host, self.port, keepalive=self.keepalive_s, properties=connect)
        self._client.loop_start()

    def stop(self, timeout: float = 3.0) -> None:
        """Publish "offline" (a clean disconnect does not fire the Last Will), then disconnect."""
        self.stopping = True
        if self.connected:
            info = self._client.publish(self.status_topic, OFFLINE, qos=1, retain=True)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError) as exc:
                log.warning("could not publish offline status: %s", exc)
        self._client.disconnect()
        self._client.loop_stop()

    def wait_for_sync(self, timeout: float, quiet: float = 0.5, poll=None) -> bool:
        """Wait up to ``timeout`` s for the subscription and the retained records that
        follow it (until ``quiet`` s pass without one). ``poll`` runs while waiting. True if
        the broker answered; False means we start from the stored gallery."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if poll:
                poll()
            if self.subscribed.is_set() and time.monotonic() - self.last_record_at >= quiet:
                return True
            time.sleep(0.05)
        return self.subscribed.is_set()

    # ---- main-thread API ----
    def publish(self, topic: str, payload: bytes, retain: bool = False, expires_at: float | None = None) -> int | None:
        """QoS 1 publish, queued by paho if we are disconnected. With ``expires_at`` (wall
        clock) it is never sent after that time, and carries the time left as its MQTT 5
        message expiry. Returns the message id (see take_acks, take_expired) or None if
        paho's queue is full."""
        properties = self._json
        if expires_at is not None:
            properties = Properties(PacketTypes.PUBLISH)  # its own: the expiry is updated on reconnect
            properties.ContentType = "application/json"
            properties.MessageExpiryInterval = max(1, math.ceil(expires_at - time.time()))
        info = self._client.publish(topic, payload, qos=1, retain=retain, properties=properties)
        if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
            return None
        with self._lock:
            self._topics[info.mid] = topic
            if expires_at is not None:
                self._expiring[info.mid] = (expires_at, properties)
        return info.mid

    def take_acks(self) -> list[Ack]:
        """The broker's answers since the last call. A refusal is logged here, naming the
        topic and the likely cause."""
        acks = []
        while self._acks:
            mid, reason = self._acks.popleft()
            with self._lock:
                topic = self._topics.pop(mid, "?")
                self._expiring.pop(mid, None)
            refused = str(reason) if getattr(reason, "is_failure", False) else None
            if refused:
                log.error("the broker refused our message to %s: %s. %s", topic, refused, self.refusal_hint(topic))
            acks.append(Ack(mid, topic, refused))
        return acks

    def refusal_hint(self, topic: str = "") -> str:
        if topic in {t for t, _ in self.retained}:
            return (f"The broker's ACL must let this door write its Home Assistant discovery configs "
                    f"(<prefix>/+/{self.device_id}/+/config, as in config/mosquitto/facegate.acl), "
                    f"or set homeassistant.discovery = false")
        return (f"Under the shipped ACL a device may write only facegate/{self.site}/device/<its user name>/..., "
                f"and its user name is its client certificate's CN (or its MQTT user name), which must equal "
                f"device.id ({self.device_id!r})")

    def take_expired(self) -> list[int]:
        """Message ids taken out of paho's queue because they expired before they could be sent."""
        with self._lock:
            expired, self._expired = self._expired, []
            for mid in expired:
                self._topics.pop(mid, None)
        return expired

    def take_manifests(self) -> list:
        """Verified manifest tops (ManifestTop) and pages ((sha256, entries)), in arrival order."""
        return drain(self._manifests)

    def take_records(self) -> list[PersonRecord]:
        """Validated enrollment records received since the last call, in arrival order."""
        return drain(self._records)

    def rejected_counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self.rejected)

    def manifest_rejected_counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self.manifest_rejected)

    # ---- paho callbacks (network thread): validate and queue, never raise ----
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if not self._accepted(reason_code):
            return
        self._drop_expired(client)
        self.connected = True
        self.connect_count += 1
        # Subscribing here (not once after connect) re-subscribes after every reconnect.
        client.subscribe([(f, 1) for f in self.filters])
        info = client.publish(self.status_topic, ONLINE, qos=1, retain=True)
        with self._lock:
            self._topics[info.mid] = self.status_topic
        for topic, payload in self.retained:
            info = client.publish(topic, payload, qos=1, retain=True, properties=self._json)
            with self._lock:
                self._topics[info.mid] = topic

    def _drop_expired(self, client: mqtt.Client) -> None:
        """Runs in on_connect, before paho re-sends its queue: take out what has expired and
        give the rest its remaining lifetime. paho has no public call for this; its queue is
        ``_out_messages`` under ``_out_message_mutex`` (paho 2.x, pinned in pyproject)."""
        now = time.time()
        with client._out_message_mutex, self._lock:
            queued = client._out_messages
            for mid, (deadline, properties) in list(self._expiring.items()):
                if mid not in queued:
                    del self._expiring[mid]
                elif deadline <= now:
                    del queued[mid], self._expiring[mid]
                    self._expired.append(mid)
                else:
                    properties.MessageExpiryInterval = max(1, math.ceil(deadline - now))

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        if any(rc.is_failure for rc in reason_codes):
            self.last_error = (f"broker refused the enrollment subscriptions {', '.join(self.filters)}: "
                               f"{reason_codes} (check the broker's ACL for this device)")
            log.error("%s", self.last_error)
            return
        self.last_record_at = time.monotonic()
        self.subscribed.set()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self._acks.append((mid, reason_code))  # logged by take_acks, which knows the topic

    def _on_message(self, client, userdata, message) -> None:
        self.last_record_at = time.monotonic()
        try:
            try:
                topic = message.topic  # paho decodes the UTF-8 here
            except UnicodeDecodeError:
                self._reject(BAD_TOPIC, "topic is not UTF-8")
                return
            if topic.split("/")[2:3] == [topics.MANIFEST]:
                self._handle_manifest(topic, message.payload)
                return
            record = self.handle(topic, message.payload)
        except Exception:  # a bug must not kill paho's thread and with it all syncing
            with self._lock:
                self.rejected["internal_error"] += 1
            log.exception("enrollment message could not be handled")
            return
        if record is not None:
            self._records.put(record)

    def _handle_manifest(self, topic: str, payload: bytes) -> None:
        if not payload:
            log.info("manifest topic cleared: %s", topic[:200])
            return
        try:
            if topic == topics.manifest_topic(self.site, self.model_id):
                item: object = parse_top(topic, payload, self.site, self.model_id, trust=self.trust)
            else:
                item = parse_page(topic, payload, self.site, self.model_id)
        except RecordError as exc:
            with self._lock:
                self.manifest_rejected[exc.reason] += 1
            log.warning("ignored manifest message: %s", exc)
            return
        self._manifests.put(item)

    def handle(self, topic: str, payload: bytes) -> PersonRecord | None:
        """Validate one enrollment message: the record, or None (logged and counted)."""
        try:
            return parse_enrollment(topic, payload, self.site, self.embedding_size, trust=self.trust)
        except RecordError as exc:
            if exc.reason == EMPTY:  # `facegate remove` clears old records after the tombstone
                log.info("enrollment topic cleared: %s", topic[:200])
            else:
                self._reject(exc.reason, str(exc))
            return None

    def _reject(self, reason: str, message: str) -> None:
        with self._lock:
            self.rejected[reason] += 1
        log.warning("ignored enrollment message: %s", message)
