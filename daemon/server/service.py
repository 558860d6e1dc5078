"""`facegate server`: keeps the broker's retained state equal to the enrollment store.

The broker is a cache of the store (daemon/server/store.py). The server watches the
site's enroll, revoke and manifest topics (MQTT 5: it does not receive its own
messages, and sees whether what others publish is retained) and:

- after every connection (a broker that restarted without its retained messages, or was
  replaced), signs fresh manifests and publishes every retained message the broker lacks
  or holds differently;
- whenever a retained topic changes to something else than the store says (cleared,
  replaced, replayed), publishes the store's message again, or clears the topic;
- takes into the store what is newer and signed by its own key (tool.import_newer);
- signs a new manifest every ``manifest_interval_s``, so doors never see it expire
  while the server runs.

Threads: paho's network thread only queues; ``step()`` on the caller's thread does all
store reads and writes and all publishing.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from daemon import notify as systemd
from daemon.config import MqttConfig  # the defaults
from daemon.protocol import topics
from daemon.protocol.broker import BrokerSettings, ConnectionState, drain
from daemon.protocol.manifest import parse_top
from daemon.protocol.records import RecordError
from daemon.protocol.signing import Trust
from daemon.protocol.wire import iso_utc
from daemon.server.store import EnrollmentStore
from daemon.server.tool import import_newer

log = logging.getLogger(__name__)

SETTLE_S = 1.0          # after subscribing: the broker's retained messages arrive within this quiet time
MIN_REPAIR_GAP_S = 1.0  # a topic someone keeps overwriting is repaired at most once a second


class EnrollmentServer(ConnectionState):
    def __init__(self, store: EnrollmentStore, site: str, key: Ed25519PrivateKey, broker: BrokerSettings, *,
                 manifest_interval_s: float, manifest_valid_s: float, settle_s: float = SETTLE_S,
                 keepalive_s: int = MqttConfig.keepalive_s, reconnect_min_s: int = MqttConfig.reconnect_min_s,
                 reconnect_max_s: int = MqttConfig.reconnect_max_s):
        self.store, self.site, self.key, self.broker = store, site, key, broker
        self.manifest_interval_s, self.manifest_valid_s = manifest_interval_s, manifest_valid_s
        self.settle_s = settle_s
        self.trust = Trust.of(key.public_key())
        self.syncs = 0                       # full comparisons done (one after each connection)
        self.repairs = 0                     # topics published or cleared because the broker differed
        self.imported = 0
        self._keepalive_s = keepalive_s
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()  # ("connected",) / ("subscribed",) / (topic, payload)
        self._seen: dict[str, bytes] = {}    # what the broker holds, as far as we know
        self._settle_at: float | None = None # when to compare everything (after a (re)connection)
        self._settle_limit = 0.0
        self._dirty: set[str] = set()        # topics to compare once settled
        self._repaired_at: dict[str, float] = {}
        self._synced = False                 # sync_all done since the last connection
        self._next_sign = 0.0
        self._stop = threading.Event()
        self._refusals: queue.SimpleQueue = queue.SimpleQueue()
        self._topics: dict[int, str] = {}
        self._lock = threading.Lock()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"facegate-server-{site}", protocol=mqtt.MQTTv5)
        client.reconnect_delay_set(reconnect_min_s, reconnect_max_s)
        broker.configure(client)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = lambda c, u, mid, codes, p: self._inbox.put(("subscribed", list(codes)))
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        self._client = client
        self._json = Properties(PacketTypes.PUBLISH)
        self._json.ContentType = "application/json"

    @property
    def filters(self) -> list[str]:
        return [topics.enroll_filter(self.site), topics.revoke_filter(self.site), *topics.manifest_filters(self.site)]

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> None:
        self._client.connect_async(self.broker.host, self.broker.port, keepalive=self._keepalive_s)
        self._client.loop_start()

    def run(self) -> None:
        """Until stop(): keep the broker in step with the store."""
        systemd.notify("READY=1\nSTATUS=connecting to the broker")
        watchdog = systemd.Watchdog()
        while not self._stop.is_set():
            try:
                self.step()
            except Exception as exc:  # a store or broker hiccup must not end the server
                self.last_error = f"{iso_utc()} {exc!r}"
                log.exception("enrollment server step failed")
            watchdog.ping(self.status)
            self._stop.wait(0.2)

    def stop(self) -> None:
        self.stopping = True
        self._stop.set()

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def status(self) -> str:
        expiry = self.store.manifest_expiry(self.site)
        return (f"{'connected' if self.connected else 'not connected'}; manifests valid until "
                f"{iso_utc(expiry) if expiry else 'never signed'}; {self.repairs} repair(s)")

    # ---------------------------------------------------------------- the work (caller's thread)
    def step(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        for item in drain(self._inbox):
            if item[0] == "connected":
                self._seen.clear()
                self._settle_at = None
                self._synced = False
            elif item[0] == "subscribed":
                if any(code.is_failure for code in item[1]):
                    self.last_error = (f"the broker refused the subscriptions {', '.join(self.filters)}: "
                                       f"{item[1]} (its ACL must let this client read them)")
                    log.error("%s", self.last_error)
                self._settle_at = now + self.settle_s
                self._settle_limit = now + 10 * self.settle_s
            else:
                topic, payload = item
                self._seen[topic] = payload
                self._dirty.add(topic)
                if self._settle_at is not None:  # retained messages still arriving: wait a little more
                    self._settle_at = min(max(self._settle_at, now + 0.3), self._settle_limit)
        self._log_refusals()
        if not self.connected:
            return
        if self._settle_at is not None and now >= self._settle_at:
            self._settle_at = None
            self._dirty.clear()
            self.sync_all(now)
            self._synced = True
        elif self._synced and self._dirty:
            self._repair(now)
        if self._synced and now >= self._next_sign:
            self._sign_and_publish(now)

    def sync_all(self, now: float) -> None:
        """After a (re)connection: fresh manifests, then everything the broker lacks or
        holds differently, and every unknown topic cleared."""
        self._import(dict(self._seen))
        self._sign_and_publish(now, publish=False)
        expected = self.store.retained(self.site)
        changed = 0
        for topic, payload in expected.items():
            if self._seen.get(topic) != payload:
                self._publish(topic, payload)
                changed += 1
        for topic, payload in list(self._seen.items()):
            if topic not in expected and payload:
                self._publish(topic, b"")
                changed += 1
        self.repairs += changed
        self.syncs += 1
        log.info("broker in step with the store: %d retained message(s) published or cleared, %d expected",
                 changed, len(expected))

    def _repair(self, now: float) -> None:
        dirty = set()
        for topic in sorted(self._dirty):
            if now - self._repaired_at.get(topic, -1e9) < MIN_REPAIR_GAP_S:
                dirty.add(topic)
                continue
            seen = self._seen.get(topic, b"")
            if seen and topic == self._manifest_top(topic):
                self._check_foreign_manifest(topic, seen, now)
            elif seen and import_newer(self.store, self.site, {topic: seen}, self.trust):
                self.imported += 1
                self._sign_and_publish(now)
            seen = self._seen.get(topic, b"")
            expected = self.store.expected(self.site, topic) or b""
            if seen != expected:
                what = "cleared" if not seen else ("replaced or replayed" if expected else "not in the store")
                log.warning("broker holds a retained message on %s that the store does not (%s); %s", topic, what,
                            "republishing the store's" if expected else "clearing it")
                self._publish(topic, expected)
                self._repaired_at[topic] = now
                self.repairs += 1
        self._dirty = dirty

    def _manifest_top(self, topic: str) -> str | None:
        where = topics.parse_sync_topic(topic)
        if where is None or where.kind != topics.MANIFEST or where.page >= 0:
            return None
        return topics.manifest_topic(self.site, where.model_id)

    def _check_foreign_manifest(self, topic: str, payload: bytes, now: float) -> None:
        """A manifest signed by our key with a higher sequence than the store's (another copy
        of this server, a store restored from backup): continue above it."""
        where = topics.parse_sync_topic(topic)
        try:
            top = parse_top(topic, payload, self.site, where.model_id, trust=self.trust)
        except RecordError:
            return
        if top.seq > self.store.manifest_seq(self.site, where.model_id):
            log.warning("the broker holds manifest seq %d for %s, above the store's; signing above it",
                        top.seq, where.model_id)
            self._sign_and_publish(now, min_seq=top.seq)

    def _import(self, messages: dict[str, bytes]) -> None:
        imported = import_newer(self.store, self.site, messages, self.trust)
        self.imported += len(imported)

    def _sign_and_publish(self, now: float, publish: bool = True, min_seq: int = 0) -> None:
        manifests = self.store.sign_manifests(self.site, self.key, self.manifest_valid_s, min_seq=min_seq)
        self._next_sign = now + self.manifest_interval_s
        if publish:
            expected = self.store.manifest_messages(self.site)
            for manifest in manifests:
                for topic, payload in manifest.messages():
                    if self._seen.get(topic) != payload:
                        self._publish(topic, payload)
            for topic, payload in list(self._seen.items()):  # pages beyond a shrunk manifest
                if payload and topics.MANIFEST in topic.split("/")[2:3] and topic not in expected:
                    self._publish(topic, b"")
        if manifests:
            log.info("signed manifest(s) %s, valid until %s", ", ".join(f"{m.top[0]} seq {m.seq}" for m in manifests),
                     iso_utc(manifests[0].expires_at))

    def _publish(self, topic: str, payload: bytes) -> None:
        info = self._client.publish(topic, payload, qos=1, retain=True, properties=self._json if payload else None)
        with self._lock:
            self._topics[info.mid] = topic
        self._seen[topic] = payload

    def _log_refusals(self) -> None:
        for mid, reason in drain(self._refusals):
            with self._lock:
                topic = self._topics.pop(mid, "?")
            self.last_error = f"the broker refused {topic}: {reason}"
            log.error("%s (does its ACL let this client write facegate/%s/enroll, revoke and manifest?)",
                      self.last_error, self.site)

    # ---------------------------------------------------------------- paho callbacks (network thread)
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if not self._accepted(reason_code):
            return
        self._inbox.put(("connected",))
        self.connected = True
        self.connect_count += 1
        options = SubscribeOptions(qos=1, noLocal=True, retainAsPublished=True)
        client.subscribe([(f, options) for f in self.filters])

    def _on_message(self, client, userdata, message) -> None:
        if not message.retain:
            return  # a live, non-retained message does not change what the broker holds
        try:
            topic = message.topic
        except UnicodeDecodeError:
            return
        self._inbox.put((topic, message.payload))

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._refusals.put((mid, reason_code))
        else:
            with self._lock:
                self._topics.pop(mid, None)
