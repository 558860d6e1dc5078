"""Events over MQTT: QoS 1, not retained, through the persisted outbox."""

from __future__ import annotations

import logging

from daemon.events import encode_event
from daemon.events.outbox import Outbox
from daemon.sync.link import MqttLink

log = logging.getLogger(__name__)


class MqttEventSink:
    """Publishes each event and forgets it only when the broker acknowledged it.

    While the broker is unreachable paho keeps the messages queued and sends them on
    reconnect; the outbox keeps them across a restart. Call ``poll()`` from the main
    loop: it retires acknowledged events and, after each (re)connection, re-sends
    outbox entries that are not already queued in paho (e.g. left by a previous run).
    """

    def __init__(self, link: MqttLink, outbox: Outbox, topic: str):
        self.link = link
        self.outbox = outbox
        self.topic = topic
        self._in_flight: dict[int, str] = {}  # paho message id -> event_id
        self._seen_connects = 0

    def emit(self, event: dict) -> None:
        payload = encode_event(event)
        self.outbox.add(event["event_id"], payload)
        self._send(event["event_id"], payload)

    def _send(self, event_id: str, payload: bytes) -> None:
        mid = self.link.publish(self.topic, payload)
        if mid is None:
            log.warning("MQTT queue full; event %s stays in the outbox until the next connection", event_id)
        else:
            self._in_flight[mid] = event_id

    def poll(self) -> None:
        for mid in self.link.take_acks():
            event_id = self._in_flight.pop(mid, None)
            if event_id is not None:
                self.outbox.remove(event_id)
        if self.link.connect_count != self._seen_connects:
            self._seen_connects = self.link.connect_count
            queued = set(self._in_flight.values())
            for event_id, payload in self.outbox.pending():
                if event_id not in queued:
                    log.info("re-sending undelivered event %s", event_id)
                    self._send(event_id, payload)

    @property
    def pending(self) -> int:
        """Events not yet acknowledged by the broker."""
        return len(self.outbox)
