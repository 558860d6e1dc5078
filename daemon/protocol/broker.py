"""How to reach the broker (address, credentials, TLS) and what the reconnecting paho
clients have in common: the device's link, the enrollment tool and `facegate server`.
Secrets stay out of logs: ``describe()`` and ``repr`` never show the password."""

from __future__ import annotations

import logging
import queue
import ssl
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt


@dataclass(frozen=True)
class BrokerSettings:
    host: str
    port: int = 1883
    username: str = ""
    password: str = field(default="", repr=False)
    tls: bool = False
    ca_file: str = ""      # CA that signed the broker's certificate; empty = the system's CAs
    cert_file: str = ""    # client certificate (brokers with require_certificate)
    key_file: str = ""

    @classmethod
    def from_config(cls, m) -> "BrokerSettings":
        """From a daemon.config.MqttConfig."""
        return cls(host=m.host, port=m.port, username=m.username, password=m.password, tls=m.tls,
                   ca_file=m.tls_ca_file, cert_file=m.tls_cert_file, key_file=m.tls_key_file)

    def describe(self) -> str:
        """'mqtts://host:port as user' for log lines (no password)."""
        who = f" as {self.username}" if self.username else ""
        cert = " with a client certificate" if self.cert_file else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}{who}{cert}"

    def configure(self, client: mqtt.Client) -> None:
        """Apply credentials and TLS to a paho client (before connecting)."""
        if self.username:
            client.username_pw_set(self.username, self.password or None)
        if self.tls:
            client.tls_set_context(tls_context(self.ca_file, self.cert_file, self.key_file))


def tls_context(ca_file: str = "", cert_file: str = "", key_file: str = "") -> ssl.SSLContext:
    """A client TLS context: TLS 1.2 or newer, the broker's certificate and host name
    verified against ``ca_file`` (or the system's CAs), and our certificate if given."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file or None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file:
        context.load_cert_chain(cert_file, key_file or None)
    return context


def drain(q: queue.SimpleQueue) -> list:
    """Everything queued so far (by paho's thread), oldest first, without waiting."""
    items = []
    while True:
        try:
            items.append(q.get_nowait())
        except queue.Empty:
            return items


class ConnectionState:
    """Connection bookkeeping and log lines of the reconnecting clients (the device's link,
    `facegate server`); paho's network thread calls these. Set ``stopping`` before a
    deliberate disconnect so it is not reported as an error."""

    broker: BrokerSettings
    connected = False
    connect_count = 0            # successful connections so far
    last_error: str | None = None
    stopping = False

    @property
    def _log(self) -> logging.Logger:
        return logging.getLogger(type(self).__module__)  # the client's module, not this one

    def _accepted(self, reason_code) -> bool:
        """on_connect's first step: False (logged, kept in last_error) if the broker refused us."""
        if reason_code.is_failure:
            self.last_error = f"broker {self.broker.describe()} refused the connection: {reason_code}"
            self._log.error("%s", self.last_error)
            return False
        self._log.info("connected to MQTT broker %s", self.broker.describe())
        return True

    def _on_connect_fail(self, client, userdata) -> None:
        tls = (" (or the TLS handshake failed: check mqtt.tls_ca_file, the client certificate and the "
               "broker's host name)") if self.broker.tls else ""
        self.last_error = f"cannot reach MQTT broker {self.broker.describe()}{tls}"
        self._log.warning("%s; retrying", self.last_error)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected = False
        if not self.stopping:
            self.last_error = f"disconnected from MQTT broker {self.broker.describe()}: {reason_code}"
            self._log.warning("%s; reconnecting", self.last_error)
