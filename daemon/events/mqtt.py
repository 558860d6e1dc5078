"""Events over MQTT: QoS 1, not retained, through the persisted outbox."""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING

from daemon.events import UNLOCK, event_time
from daemon.events.outbox import Outbox
from daemon.protocol.wire import compact_json, iso_utc

if TYPE_CHECKING:
    from daemon.door.link import MqttLink

log = logging.getLogger(__name__)


class MqttEventSink:
    """Publishes each event and forgets it only when the broker acknowledged it.

    While the broker is unreachable paho keeps the messages queued and sends them on
    reconnect; the outbox keeps them across a restart. Call ``poll()`` from the main
    loop: it retires acknowledged events and, after each (re)connection, re-sends
    outbox entries that are not already queued in paho (e.g. left by a previous run).

    No event is sent once it is older than its maximum age (``unlock_max_age_s`` for
    unlocks, ``max_age_s`` for the others): a door controller must never act on an
    unlock minutes late. Such events are deleted unsent and counted (``expired``). An
    event the broker refuses is kept in the outbox's ``refused`` table and counted
    (``refused``), never silently dropped.
    """

    def __init__(self, link: MqttLink, outbox: Outbox, topic: str, *, unlock_max_age_s: float, max_age_s: float):
        self.link = link
        self.outbox = outbox
        self.topic = topic
        self.unlock_max_age_s = unlock_max_age_s
        self.max_age_s = max_age_s
        self.expired = 0
        self.refused = 0
        self._in_flight: dict[int, str] = {}  # paho message id -> event_id
        self._seen_connects = 0

    def deadline(self, event: dict) -> float:
        """Wall-clock time after which ``event`` must not be delivered."""
        return event_time(event) + (self.unlock_max_age_s if event["event"] == UNLOCK else self.max_age_s)

    def emit(self, event: dict) -> None:
        deadline = self.deadline(event)
        if deadline <= time.time():
            self._expire(event["event_id"], event, deleted=False)
            return
        payload = compact_json(event)
        self.outbox.add(event["event_id"], payload)
        self._send(event["event_id"], payload, deadline)

    def _send(self, event_id: str, payload: bytes, deadline: float) -> None:
        mid = self.link.publish(self.topic, payload, expires_at=deadline)
        if mid is None:
            log.warning("MQTT queue full; event %s stays in the outbox until the next connection", event_id)
        else:
            self._in_flight[mid] = event_id

    def _expire(self, event_id: str, event: dict | None, deleted: bool = True) -> None:
        if event is None:
            event = _decode(self.outbox.get(event_id))
        if deleted:
            self.outbox.remove(event_id)
        self.expired += 1
        what = f"{event['event']} of {event['ts']}" if event else "event"
        log.warning("%s %s not sent: older than its maximum age (events.unlock_max_age_s / max_age_s); "
                    "a late unlock could open the door long after the person left", what, event_id)

    def poll(self) -> None:
        for ack in self.link.take_acks():
            event_id = self._in_flight.pop(ack.mid, None)
            if event_id is None:
                continue
            if ack.refused:
                self.outbox.refuse(event_id, ack.refused)
                self.refused += 1
                log.error("event %s to %s refused by the broker (%s); kept in %s, not sent again", event_id,
                          ack.topic, ack.refused, self.outbox.path)
            else:
                self.outbox.remove(event_id)
        for mid in self.link.take_expired():
            event_id = self._in_flight.pop(mid, None)
            if event_id is not None:
                self._expire(event_id, None)
        if self.link.connect_count != self._seen_connects:
            self._seen_connects = self.link.connect_count
            self._resend()

    def _resend(self) -> None:
        queued = set(self._in_flight.values())
        now = time.time()
        for event_id, payload in self.outbox.pending():
            if event_id in queued:
                continue
            event = _decode(payload)
            if event is None:
                log.error("outbox entry %s is not a readable event; dropping it", event_id)
                self.outbox.remove(event_id)
                continue
            deadline = self.deadline(event)
            if deadline <= now:
                self._expire(event_id, event)
            else:
                log.info("re-sending undelivered event %s of %s (expires %s)", event_id, event["ts"], iso_utc(deadline))
                self._send(event_id, payload, deadline)

    @property
    def pending(self) -> int:
        """Events not yet acknowledged by the broker."""
        return len(self.outbox)


def _decode(payload: bytes | None) -> dict | None:
    """An outbox payload as an event with a readable type and time, or None."""
    try:
        event = json.loads(payload)
        event_time(event)
        return event if isinstance(event["event"], str) else None
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
