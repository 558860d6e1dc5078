"""The door's side of the broker: enrollments in, events and health out, or no broker at all.

``connect(...)`` returns ``BrokerSync`` when ``mqtt.host`` is set and ``Standalone``
otherwise; both answer the same calls, so the main loop never asks whether there is a
broker. All gallery and outbox writes happen here, in the main thread (paho's thread
only queues, see link.py).
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from pathlib import Path

from daemon.config import Config
from daemon.gallery import Gallery
from daemon.protocol.person import PersonRecord
from daemon.protocol.wire import iso_utc

log = logging.getLogger(__name__)

FLUSH_TIMEOUT_S = 3.0  # at shutdown, how long to wait for the broker to acknowledge events


class Standalone:
    """No broker (``mqtt.host`` empty): the stored gallery is all there is, and every
    person in it is matched."""

    generation = 0
    sinks = ()
    last_error = None

    def start(self) -> None:
        pass

    def wait_for_sync(self, timeout_s: float, poll) -> None:
        pass

    def poll(self) -> None:
        pass

    def admits(self, record: PersonRecord) -> bool:
        return True

    def unlocks_denied(self) -> bool:
        return False

    def health(self) -> dict:
        return {"records": {"applied": 0, "stale": 0, "rejected": {}, "waiting": 0, "superseded": 0},
                "manifest": None, "events": {"pending": 0, "expired": 0, "refused": 0}, "broker": None}

    def publish_health(self, health: dict) -> None:
        pass

    def close(self, final_health) -> None:
        pass


class BrokerSync:
    """The MQTT link, the manifest gate (admission) and the event outbox of one door."""

    def __init__(self, cfg: Config, gallery: Gallery, encoder_info, state_dir: Path, *, wall, clock, on_error):
        from daemon.door.admission import Admission
        from daemon.door.link import MqttLink
        from daemon.events import homeassistant
        from daemon.events.mqtt import MqttEventSink
        from daemon.events.outbox import Outbox
        from daemon.protocol import topics
        from daemon.protocol.broker import BrokerSettings
        from daemon.protocol.manifest import Manifest
        from daemon.protocol.signing import load_trust

        self.cfg, self.gallery = cfg, gallery
        self._clock, self._on_error = clock, on_error
        self.applied = 0        # records that changed the gallery
        self.stale = 0          # older or equal versions ignored
        self._manifest_state = None
        m, en, model_id = cfg.mqtt, cfg.enrollment, encoder_info.model_id
        trust = load_trust(en.public_key, en.allow_unsigned)
        if en.allow_unsigned:
            log.warning("enrollment.allow_unsigned is on: anyone who can publish to the broker can "
                        "enroll people on this device (development only)")
        log.info("accepting enrollment records signed by key(s) %s", ", ".join(trust.keys) or "none")
        self.link = MqttLink(broker=BrokerSettings.from_config(m), site=cfg.device.site,
                             device_id=cfg.device.id, model_id=model_id,
                             embedding_size=encoder_info.embedding_size, trust=trust,
                             keepalive_s=m.keepalive_s, reconnect_min_s=m.reconnect_min_s,
                             reconnect_max_s=m.reconnect_max_s, max_queued=m.max_queued_events,
                             retained=homeassistant.door_messages(cfg))
        stored = gallery.load_manifest(model_id)
        self.admission = Admission(model_id, Manifest.from_dict(stored) if stored else None, wall=wall)
        if stored is None:
            log.warning("no site manifest stored for model %s: no enrollment record is applied until a fresh "
                        "one arrives from the enrollment server (`facegate server`)", model_id)
        self.sink = MqttEventSink(self.link, Outbox.open(state_dir),
                                  topics.event_topic(cfg.device.site, cfg.device.id),
                                  unlock_max_age_s=cfg.events.unlock_max_age_s, max_age_s=cfg.events.max_age_s)
        self.sinks = (self.sink,)
        self._health_topic = topics.health_topic(cfg.device.site, cfg.device.id)

    @property
    def generation(self) -> int:
        """Changes whenever the set of admitted records may have changed."""
        return self.admission.generation

    @property
    def last_error(self) -> str | None:
        return self.link.last_error

    def start(self) -> None:
        """Connect in the background (and keep reconnecting until close)."""
        self.link.start()

    def wait_for_sync(self, timeout_s: float, poll) -> None:
        """Wait up to ``timeout_s`` for the retained enrollments; ``poll`` applies what
        arrives meanwhile."""
        if timeout_s <= 0:
            return
        if not self.link.wait_for_sync(timeout_s, poll=poll):
            log.warning("broker not reachable yet; using the stored people the stored manifest lists")
        poll()
        if self.admission.state() != "fresh":
            # An empty broker is not a complete sync: only the server's manifest says who is enrolled.
            log.warning("no fresh site manifest yet (%s): only the people the stored one lists are recognised "
                        "until the enrollment server's manifest arrives", self.admission.state())

    # ---- enrollments in
    def poll(self) -> None:
        """Hand what the link received to the admission gate and apply what it lets through."""
        admission = self.admission
        for item in self.link.take_manifests():
            if isinstance(item, tuple):
                admission.offer_page(*item)
            else:
                admission.offer_top(item)
        for record in self.link.take_records():
            admission.offer_record(record)
        adopted = admission.take_adopted()
        if adopted is not None:
            self._adopt(adopted)
        for record in admission.take_ready():
            self._apply(record)
        self._report_manifest_state()
        try:
            self.sink.poll()
        except Exception as exc:
            self._on_error(f"event outbox: {exc}")
            log.exception("event outbox")

    def admits(self, record: PersonRecord) -> bool:
        """May this stored record be matched? Only the version the site manifest lists."""
        return self.admission.admits(record)

    def unlocks_denied(self) -> bool:
        return self.cfg.enrollment.on_expired_manifest == "deny" and self.admission.state() != "fresh"

    def _apply(self, record: PersonRecord, quiet: bool = False) -> None:
        try:
            applied = self.gallery.apply(record)
        except Exception as exc:  # a disk error: keep the old gallery, report it
            self._on_error(f"gallery write: {exc}")
            log.error("%s", exc)
            return
        if applied:
            self.applied += 1
            log.info("gallery: %s %s (v%d)", "revoked" if record.deleted else "enrolled",
                     record.person_id, record.version)
        elif not quiet:
            self.stale += 1
            log.info("gallery: ignored %r: not newer than the stored v%d", record,
                     self.gallery.get(record.person_id).version)

    def _adopt(self, manifest) -> None:
        """Persist a newly accepted manifest, then apply the revocations it lists (so a
        revoked person's encodings are erased even if their tombstone message never comes)."""
        try:
            self.gallery.save_manifest(manifest.model_id, manifest.seq, manifest.to_dict())
        except Exception as exc:
            self._on_error(f"gallery write: {exc}")
            log.error("%s", exc)
        for tombstone in manifest.revocations():
            current = self.gallery.get(tombstone.person_id)
            if current is None or current.version < tombstone.version:
                self._apply(tombstone, quiet=True)

    def _report_manifest_state(self) -> None:
        state = self.admission.state()
        if state != self._manifest_state:
            if state == "expired":
                how = ("no unlocks until a fresh one arrives (enrollment.on_expired_manifest = deny)"
                       if self.cfg.enrollment.on_expired_manifest == "deny" else
                       "keeping the people it lists (enrollment.on_expired_manifest = keep)")
                log.warning("the site manifest expired at %s: the enrollment server has not been heard from; %s",
                            iso_utc(self.admission.manifest.expires_at), how)
            elif self._manifest_state is not None:
                log.info("site manifest: %s", state)
            self._manifest_state = state

    # ---- health out
    def health(self) -> dict:
        """This side's part of the health record (schema in docs/mqtt.md)."""
        admission, sink = self.admission, self.sink
        rejected = Counter(self.link.manifest_rejected_counts())
        rejected.update(admission.rejected)
        return {"records": {"applied": self.applied, "stale": self.stale, "rejected": self.link.rejected_counts(),
                            "waiting": admission.waiting, "superseded": admission.superseded},
                "manifest": {**admission.health(), "on_expired": self.cfg.enrollment.on_expired_manifest,
                             "rejected": dict(rejected)},
                "events": {"pending": sink.pending, "expired": sink.expired, "refused": sink.refused},
                "broker": {"connected": self.link.connected}}

    def publish_health(self, health: dict) -> None:
        if self.link.connected:
            self.link.publish(self._health_topic, json.dumps(health).encode(), retain=True)

    def close(self, final_health) -> None:
        """Wait up to FLUSH_TIMEOUT_S for unacknowledged events, publish ``final_health()``
        (the retained status turns offline as the link stops), close the outbox."""
        deadline = self._clock() + FLUSH_TIMEOUT_S
        self.poll()
        while self.link.connected and self.sink.pending and self._clock() < deadline:
            time.sleep(0.05)
            self.poll()
        if self.sink.pending:
            log.warning("%d event(s) not yet delivered; kept in the outbox for the next start", self.sink.pending)
        if self.link.connected:
            final_health()
        self.link.stop()
        self.sink.outbox.close()


def connect(cfg: Config, gallery: Gallery, encoder_info, state_dir: Path, *, wall=time.time, clock=time.monotonic,
            on_error=lambda message: None) -> BrokerSync | Standalone:
    """The door's broker side as configured."""
    if not cfg.broker_configured:
        return Standalone()
    return BrokerSync(cfg, gallery, encoder_info, state_dir, wall=wall, clock=clock, on_error=on_error)
