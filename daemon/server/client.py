"""The enrollment server's MQTT client: short-lived, synchronous, and loud on failure.

Unlike the device's link it does not retry in the background: a publish either is
acknowledged by the broker (MQTT 5 PUBACK with a success code) or raises BrokerError
saying why, e.g. that the broker's ACL does not let this client write the topic.
"""

from __future__ import annotations

import ssl
import threading
import time
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from daemon.protocol.broker import BrokerSettings


class BrokerError(RuntimeError):
    """The broker could not be reached, refused us, or refused a message."""


class EnrollmentClient:
    """Use as a context manager: ``with EnrollmentClient(settings) as client: ...``."""

    def __init__(self, broker: BrokerSettings, timeout_s: float = 10.0, client_id: str | None = None):
        self.broker = broker
        self.timeout_s = timeout_s
        self._connected = threading.Event()
        self._connect_reason = None
        self._acks: dict[int, object] = {}         # mid -> reason code
        self._acked = threading.Condition()
        self._subacks: dict[int, list] = {}
        self._messages: dict[str, bytes] = {}      # retained messages seen, topic -> payload
        self._last_message_at = 0.0
        self._lock = threading.Lock()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5,
                             client_id=client_id or f"facegate-enroll-{uuid.uuid4().hex[:12]}")
        broker.configure(client)
        client.on_connect = self._on_connect
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_disconnect = self._on_disconnect
        self._client = client
        self._dropped: str | None = None

    # ---- connection
    def __enter__(self) -> "EnrollmentClient":
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def connect(self) -> None:
        where = self.broker.describe()
        try:
            self._client.connect(self.broker.host, self.broker.port, keepalive=30)
        except ssl.SSLError as exc:
            raise BrokerError(f"TLS with {where} failed: {exc.reason or exc} (check mqtt.tls_ca_file, "
                              "the client certificate and the broker's host name)") from exc
        except OSError as exc:
            raise BrokerError(f"cannot connect to {where}: {exc.strerror or exc}") from exc
        self._client.loop_start()
        if not self._connected.wait(self.timeout_s):
            self.close()
            raise BrokerError(f"{where} did not answer within {self.timeout_s:.0f} s")
        if self._dropped is not None:
            self.close()
            hint = ("it probably refused our client certificate" if self.broker.tls
                    else "if it is a TLS port, set mqtt.tls = true")
            raise BrokerError(f"{where} closed the connection before accepting it ({self._dropped}): {hint}")
        if self._connect_reason is not None and self._connect_reason.is_failure:
            self.close()
            raise BrokerError(f"{where} refused the connection: {self._connect_reason} "
                              "(check the user name, password or client certificate)")

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    # ---- publishing
    def publish(self, topic: str, payload: bytes, retain: bool = True) -> None:
        """QoS 1 publish; returns once the broker acknowledged it, BrokerError otherwise."""
        properties = Properties(PacketTypes.PUBLISH)
        properties.ContentType = "application/json"
        info = self._client.publish(topic, payload, qos=1, retain=retain, properties=properties if payload else None)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise BrokerError(f"cannot publish to {topic}: {mqtt.error_string(info.rc)}")
        deadline = time.monotonic() + self.timeout_s
        with self._acked:
            while info.mid not in self._acks:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BrokerError(f"{self.broker.describe()} did not acknowledge {topic} "
                                      f"within {self.timeout_s:.0f} s")
                self._acked.wait(left)
            reason = self._acks.pop(info.mid)
        if getattr(reason, "is_failure", False):
            raise BrokerError(f"the broker refused {topic}: {reason} (does its ACL let this client "
                              "write the site's enroll and revoke topics?)")

    # ---- reading retained messages
    def retained(self, filters: list[str], quiet_s: float = 0.5) -> dict[str, bytes]:
        """The retained messages on ``filters`` (topic -> payload): subscribe, collect
        until ``quiet_s`` passes without a new one, unsubscribe."""
        with self._lock:
            self._messages.clear()
        result, mid = self._client.subscribe([(f, 1) for f in filters])
        if result != mqtt.MQTT_ERR_SUCCESS:
            raise BrokerError(f"cannot subscribe to {', '.join(filters)}: {mqtt.error_string(result)}")
        deadline = time.monotonic() + self.timeout_s
        while mid not in self._subacks:
            if time.monotonic() > deadline:
                raise BrokerError(f"{self.broker.describe()} did not acknowledge the subscription")
            time.sleep(0.02)
        refused = [f for f, code in zip(filters, self._subacks.pop(mid)) if code.is_failure]
        if refused:
            raise BrokerError(f"the broker refused to let this client read {', '.join(refused)} (ACL)")
        self._last_message_at = time.monotonic()
        while time.monotonic() - self._last_message_at < quiet_s and time.monotonic() < deadline:
            time.sleep(0.02)
        self._client.unsubscribe(filters)
        with self._lock:
            return dict(self._messages)

    # ---- paho callbacks (network thread)
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connect_reason = reason_code
        self._connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if not self._connected.is_set():  # dropped during the handshake: TLS or auth refused
            self._dropped = str(reason_code)
            self._connected.set()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._acked:
            self._acks[mid] = reason_code
            self._acked.notify_all()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        self._subacks[mid] = list(reason_codes)

    def _on_message(self, client, userdata, message) -> None:
        self._last_message_at = time.monotonic()
        if message.retain:  # a live publish by someone else is not "what the broker holds"
            with self._lock:
                self._messages[message.topic] = message.payload
