"""The door daemon's main loop.

    frame -> faces + quality gate -> aligned crops -> embeddings -> matches -> liveness -> decision -> events
    (frames)  (faces.align.prepare_faces, quality)   (embeddings)  (matching)  (liveness)  (decision)  (events)

One thread does all of that, plus the gallery and outbox writes; paho's thread only
receives and validates (see daemon/door/link.py). Nothing a camera, a broker or a
publisher sends can stop the loop: bad frames and messages are logged and counted in
the health record, a failing camera is reopened with backoff, an unreachable broker is
retried while the stored gallery keeps recognising people.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np

from daemon import notify as systemd
from daemon.config import Config, check_device_trust
from daemon.decision import UnlockDecider
from daemon.events import StdoutSink, unknown_face_event, unlock_event
from daemon.faces.align import prepare_faces
from daemon.frames import Frame, FrameSource, ResilientSource, open_source
from daemon.gallery import Gallery, PhotoRejected, seed_from_photos
from daemon.liveness import FacePoints, Verdict, build_gate
from daemon.matching import MATCH, UNKNOWN, GalleryIndex, Matcher, MatchResult
from daemon.quality import DESCRIPTIONS, QualityPolicy
from daemon.state import private_dir
from daemon.protocol import topics
from daemon.server.publish import iso_utc

log = logging.getLogger(__name__)

STAGES = ("capture", "faces", "embed", "match", "liveness", "decide")  # faces = detect + quality gate + align
UNKNOWN_KEY = "<unknown>"  # the "person" unknown faces vote for
FLUSH_TIMEOUT_S = 3.0


class StageTimer:
    """Per-stage latency: a moving average in ms for health, and totals for benchmarks."""

    def __init__(self, alpha: float = 0.05):
        self.alpha = alpha
        self.mean_ms: dict[str, float] = {}
        self.total_s: Counter = Counter()
        self.count: Counter = Counter()

    def add(self, stage: str, seconds: float) -> None:
        ms = seconds * 1000.0
        old = self.mean_ms.get(stage)
        self.mean_ms[stage] = ms if old is None else old + self.alpha * (ms - old)
        self.total_s[stage] += seconds
        self.count[stage] += 1

    def snapshot(self) -> dict[str, float]:
        return {s: round(self.mean_ms[s], 3) for s in STAGES if s in self.mean_ms}


@dataclass
class FrameOutcome:
    """What one frame produced (returned by process_frame for tests and benchmarks)."""

    faces: int = 0
    skipped: list[str] = field(default_factory=list)      # quality reasons
    crops: list[np.ndarray] = field(default_factory=list)  # what was embedded, in order
    results: list[MatchResult] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)


@dataclass
class Counters:
    frames: int = 0
    faces: int = 0
    frame_errors: int = 0
    skipped_faces: Counter = field(default_factory=Counter)
    results: Counter = field(default_factory=Counter)      # match / unknown / ambiguous
    stale_records: int = 0                                  # older or equal versions ignored
    applied_records: int = 0
    events: Counter = field(default_factory=Counter)
    withheld_unlocks: int = 0                               # on_expired_manifest = "deny" and no fresh manifest


class Service:
    """Build with a Config, then start(), run(), close(). ``source``, ``encoder`` and
    ``detector`` may be injected (tests, benchmarks); otherwise they come from the config."""

    def __init__(self, cfg: Config, *, source: FrameSource | None = None, encoder=None, detector=None,
                 stdout: TextIO | None = None, wall_clock=time.time, clock=time.monotonic):
        self.cfg = cfg
        self._raw_source = source
        self.encoder = encoder
        self.detector = detector
        self._stdout = stdout
        self._wall = wall_clock
        self._clock = clock
        self._stop = threading.Event()
        self.counters = Counters()
        self.timer = StageTimer()
        self.quality = QualityPolicy(cfg.quality.min_detection_score, cfg.quality.min_face_px,
                                     cfg.quality.min_eye_distance_px, cfg.quality.min_blur)
        self.decider = UnlockDecider(cfg.decision.k, cfg.decision.n, cfg.decision.cooldown_s)
        self.unknown_decider = UnlockDecider(cfg.decision.k, cfg.decision.n, cfg.events.unknown_face_interval_s)
        self.liveness = None  # a LivenessGate, built with the models in start(); None = mode off
        self.gallery: Gallery | None = None
        self.matcher: Matcher | None = None
        self.source: ResilientSource | None = None
        self.link = None
        self.admission = None                               # the manifest gate, with a broker only
        self.mqtt_sink = None
        self.sinks: list = []
        self.last_error: str | None = None
        self.started_at = clock()
        self.ready_after_s: float | None = None
        self._index_generation = None
        self._manifest_state = None
        self._frame_times: deque[float] = deque(maxlen=120)
        self._next_health = 0.0
        self._next_watchdog = 0.0
        self._watchdog_s = systemd.watchdog_interval()

    # ------------------------------------------------------------------ start
    def start(self) -> None:
        """Load the model and the gallery, connect, open the camera. READY=1 is sent once
        the model and gallery are loaded: from then on the door can recognise people."""
        cfg = self.cfg
        check_device_trust(cfg)  # before anything slow: a door must not sync unsigned records by accident
        state_dir = private_dir(cfg.device.state_dir)  # refuses a folder others can write to
        self._load_model()
        self.gallery = Gallery.open(state_dir)
        if cfg.gallery.photos:
            self._seed_gallery(cfg.gallery.photos)
        self._start_events(state_dir)
        self._rebuild_index()
        self.ready_after_s = self._clock() - self.started_at
        systemd.notify("READY=1\nSTATUS=model and gallery loaded; starting camera")
        log.info("ready in %.2f s: model %s, %d person(s) in the gallery", self.ready_after_s,
                 self.model_id, len(self.gallery))
        self.source = ResilientSource(self._raw_source or self._build_source(), initial_backoff=0.5,
                                      max_backoff=cfg.source.retry_max_s,
                                      # keeps syncing (revocations!), health and the watchdog
                                      # going while a dead camera is retried
                                      heartbeat=self._housekeeping)
        self.source.open()
        if self.link is not None and cfg.mqtt.sync_wait_s > 0:
            if not self.link.wait_for_sync(cfg.mqtt.sync_wait_s, poll=self._poll_link):
                log.warning("broker not reachable yet; using the %d stored person(s) the stored manifest lists",
                            len(self.matcher.index.person_ids))
            self._poll_link()
            if self.admission.state() != "fresh":
                # An empty broker is not a complete sync: only the server's manifest says who is enrolled.
                log.warning("no fresh site manifest yet (%s): %d person(s) recognised until the enrollment "
                            "server's manifest arrives", self.admission.state(), len(self.matcher.index.person_ids))

    def _load_model(self) -> None:
        from daemon.embeddings import load_encoder
        from daemon.faces.detect import FaceDetector
        if self.encoder is None:
            self.encoder = load_encoder(self.cfg.model.path or None, self.cfg.model.backend,
                                        num_threads=self.cfg.model.threads)
        if self.detector is None:
            self.detector = FaceDetector(num_threads=self.cfg.model.threads)
        self.liveness = build_gate(self.cfg.liveness, num_threads=self.cfg.model.threads)

    @property
    def model_id(self) -> str:
        return self.encoder.info.model_id

    def _seed_gallery(self, photos_dir: str) -> None:
        def embed(image: np.ndarray) -> np.ndarray:
            found = prepare_faces(image, self.detector, self.encoder.info.input_size, max_faces=1,
                                  quality=self.quality)
            if not found.aligned:
                raise PhotoRejected(DESCRIPTIONS[found.rejected[0][1]] if found.rejected else "no face found")
            return self.encoder.embed(found.aligned[0].crop)[0]

        seed_from_photos(self.gallery, photos_dir, embed, self.model_id, now=self._wall)

    def _build_source(self) -> FrameSource:
        s = self.cfg.source
        if s.kind == "replay":
            return open_source("replay", path=s.path, fps=s.fps or 1.0, loop=s.loop, realtime=s.fps > 0)
        if s.kind == "opencv":
            return open_source("opencv", device=s.device, size=(s.width, s.height), realtime=s.realtime)
        return open_source("picamera2", size=(s.width, s.height))

    def _start_events(self, state_dir: Path) -> None:
        cfg = self.cfg
        if not cfg.broker_configured or cfg.events.stdout:
            self.sinks.append(StdoutSink(self._stdout))
        if cfg.broker_configured:
            from daemon.events import homeassistant
            from daemon.events.mqtt import MqttEventSink
            from daemon.events.outbox import Outbox
            from daemon.protocol.broker import BrokerSettings
            from daemon.door.admission import Admission
            from daemon.door.link import MqttLink
            from daemon.protocol.manifest import Manifest
            from daemon.protocol.signing import load_trust
            m, en = cfg.mqtt, cfg.enrollment
            trust = load_trust(en.public_key, en.allow_unsigned)
            if en.allow_unsigned:
                log.warning("enrollment.allow_unsigned is on: anyone who can publish to the broker can "
                            "enroll people on this device (development only)")
            log.info("accepting enrollment records signed by key(s) %s", ", ".join(trust.keys) or "none")
            self.link = MqttLink(broker=BrokerSettings.from_config(m), site=cfg.device.site,
                                 device_id=cfg.device.id, model_id=self.model_id,
                                 embedding_size=self.encoder.info.embedding_size, trust=trust,
                                 keepalive_s=m.keepalive_s, reconnect_min_s=m.reconnect_min_s,
                                 reconnect_max_s=m.reconnect_max_s, max_queued=m.max_queued_events,
                                 retained=homeassistant.door_messages(cfg))  # HA discovery (issue 11)
            stored = self.gallery.load_manifest(self.model_id)
            self.admission = Admission(self.model_id, Manifest.from_dict(stored) if stored else None, wall=self._wall)
            if stored is None:
                log.warning("no site manifest stored for model %s: no enrollment record is applied until a fresh "
                            "one arrives from the enrollment server (`facegate server`)", self.model_id)
            self.mqtt_sink = MqttEventSink(self.link, Outbox.open(state_dir),
                                           topics.event_topic(cfg.device.site, cfg.device.id),
                                           unlock_max_age_s=cfg.events.unlock_max_age_s,
                                           max_age_s=cfg.events.max_age_s)
            self.sinks.append(self.mqtt_sink)
            self.link.start()

    # ------------------------------------------------------------------ loop
    def run(self, exit_at_end: bool = False) -> None:
        """Process frames until stop() (or, with ``exit_at_end``, until a replay ends)."""
        while not self._stop.is_set():
            started = self._clock()
            try:
                frame = self.source.read()
            except Exception as exc:  # ResilientSource handles SourceError; anything else is a bug
                self._record_error(f"frame source: {exc!r}")
                log.exception("frame source failed")
                self._stop.wait(1.0)
                continue
            if frame is None:
                if self._stop.is_set() or exit_at_end:
                    break
                self._idle()  # replay finished: keep syncing and reporting until stopped
                continue
            self.timer.add("capture", self._clock() - started)
            self.process_frame(frame)
            self._housekeeping()

    def _idle(self) -> None:
        self._housekeeping()
        self._stop.wait(0.2)

    def process_frame(self, frame: Frame) -> FrameOutcome:
        """Recognise the faces in one frame and emit any events; never raises."""
        try:
            return self._process(frame.image)
        except Exception as exc:  # a frame must never take the daemon down
            self.counters.frame_errors += 1
            self._record_error(f"frame {frame.index} from {frame.source}: {exc!r}")
            log.exception("frame %d could not be processed", frame.index)
            return FrameOutcome()
        finally:
            self.counters.frames += 1
            self._frame_times.append(self._clock())

    def _process(self, image: np.ndarray) -> FrameOutcome:
        outcome = FrameOutcome()
        t = self._clock()
        found = prepare_faces(image, self.detector, self.encoder.info.input_size,
                              max_faces=self.cfg.quality.max_faces, quality=self.quality)
        t = self._lap("faces", t)
        outcome.faces = len(found.detected)
        self.counters.faces += len(found.detected)
        outcome.skipped = [reason for _, reason in found.rejected]
        self.counters.skipped_faces.update(outcome.skipped)
        outcome.crops = found.crops
        if outcome.crops:
            embeddings = self.encoder.embed(np.stack(outcome.crops))
            t = self._lap("embed", t)
            outcome.results = self.matcher.match_many(embeddings)
            if log.isEnabledFor(logging.DEBUG):  # -v: why each face did or did not match
                for i, (embedding, result) in enumerate(zip(embeddings, outcome.results), 1):
                    log.debug("face %d/%d: %s", i, len(embeddings), self.matcher.explain(embedding, result))
            t = self._lap("match", t)
            self.counters.results.update(r.status for r in outcome.results)
        # ---- liveness hook (issue 11): measure only faces that matched (or just matched) someone ----
        if self.liveness is not None:
            now = self._clock()
            self.liveness.observe_frame(image, [(FacePoints.of(a.face), r)
                                                for a, r in zip(found.aligned, outcome.results)],
                                        self.matcher.threshold, now)
            for person_id in self.liveness.expire(now):
                log.info("liveness: rejected a presentation of %s (no live evidence before it ended)", person_id)
            t = self._lap("liveness", t)
        # ---- end of liveness hook ----
        outcome.events = self._decide(outcome.results)
        self._lap("decide", t)
        return outcome

    def _lap(self, stage: str, since: float) -> float:
        now = self._clock()
        self.timer.add(stage, now - since)
        return now

    def _decide(self, results: list[MatchResult]) -> list[dict]:
        now, wall = self._clock(), self._wall()
        matched: dict[str, float] = {}
        for r in results:
            if r.status == MATCH:
                matched[r.person_id] = min(r.distance, matched.get(r.person_id, r.distance))
        events = []
        verdicts: dict[str, Verdict] = {}

        def live(unlock) -> bool:  # liveness hook (issue 11): the vote says unlock; does liveness agree?
            verdict = self.liveness.decide(unlock.person_id, now) if self.liveness is not None else None
            log.debug("decision %s: matched in %d of the last %d frames (best distance %.3f); %s -> %s",
                      unlock.person_id, unlock.frames_voted, self.decider.n, unlock.distance,
                      f"liveness {verdict.mode}: {verdict.explain()}" if verdict else "liveness off",
                      "unlock" if verdict is None or verdict.passed else "no unlock")
            if verdict is not None:
                verdicts[unlock.person_id] = verdict
            return verdict is None or verdict.passed

        for unlock in self.decider.observe(matched, now, gate=live):
            if self._unlocks_denied():
                self.counters.withheld_unlocks += 1
                log.warning("unlock of %s withheld: the site manifest is %s and enrollment.on_expired_manifest = "
                            "deny", unlock.person_id, self.admission.state())
                continue
            verdict = verdicts.get(unlock.person_id)
            events.append(unlock_event(
                device_id=self.cfg.device.id, site=self.cfg.device.site, person_id=unlock.person_id,
                name=self.matcher.index.name_of(unlock.person_id), distance=unlock.distance,
                frames_voted=unlock.frames_voted, model_id=self.model_id, ts=wall,
                liveness=verdict.to_event() if verdict else None))
        if self.cfg.events.unknown_face:
            unknown = [r.distance for r in results if r.status == UNKNOWN]
            for vote in self.unknown_decider.observe({UNKNOWN_KEY: min(unknown)} if unknown else {}, now):
                events.append(unknown_face_event(device_id=self.cfg.device.id, site=self.cfg.device.site,
                                                 distance=vote.distance, frames_voted=vote.frames_voted,
                                                 model_id=self.model_id, ts=wall))
        for event in events:
            self.emit(event)
        return events

    def _unlocks_denied(self) -> bool:
        return (self.admission is not None and self.cfg.enrollment.on_expired_manifest == "deny"
                and self.admission.state() != "fresh")

    def emit(self, event: dict) -> None:
        self.counters.events[event["event"]] += 1
        log.info("%s %s", event["event"], {k: event[k] for k in ("person_id", "distance", "frames_voted")
                                            if k in event})
        for sink in self.sinks:
            try:
                sink.emit(event)
            except Exception as exc:  # e.g. a full disk under the outbox, a closed stdout
                self._record_error(f"event sink {type(sink).__name__}: {exc!r}")
                log.exception("event %s could not be written to %s", event["event_id"], type(sink).__name__)

    # ------------------------------------------------------------------ sync, health, watchdog
    def _housekeeping(self) -> None:
        try:
            self._sync_and_report()
        except Exception as exc:  # reporting must never stop recognition
            self._record_error(f"housekeeping: {exc!r}")
            log.exception("housekeeping failed")
        self._watchdog()

    def _sync_and_report(self) -> None:
        self._poll_link()
        now = self._clock()
        if now >= self._next_health:
            self._next_health = now + self.cfg.mqtt.health_interval_s
            self._publish_health()

    def _poll_link(self) -> None:
        if self.link is None:
            return
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
        self._rebuild_index()
        try:
            self.mqtt_sink.poll()
        except Exception as exc:
            self._record_error(f"event outbox: {exc}")
            log.exception("event outbox")

    def _apply(self, record, quiet: bool = False) -> None:
        try:
            applied = self.gallery.apply(record)
        except Exception as exc:  # a disk error: keep the old gallery, report it
            self._record_error(f"gallery write: {exc}")
            log.error("%s", exc)
            return
        if applied:
            self.counters.applied_records += 1
            log.info("gallery: %s %s (v%d)", "revoked" if record.deleted else "enrolled",
                     record.person_id, record.version)
        elif not quiet:
            self.counters.stale_records += 1
            log.info("gallery: ignored %r: not newer than the stored v%d", record,
                     self.gallery.get(record.person_id).version)

    def _adopt(self, manifest) -> None:
        """Persist a newly accepted manifest, then apply the revocations it lists (so a
        revoked person's encodings are erased even if their tombstone message never comes)."""
        try:
            self.gallery.save_manifest(manifest.model_id, manifest.seq, manifest.to_dict())
        except Exception as exc:
            self._record_error(f"gallery write: {exc}")
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

    def _rebuild_index(self) -> None:
        generation = (self.gallery.generation, self.admission.generation if self.admission else 0)
        if generation == self._index_generation:
            return
        info = self.encoder.info
        people = self.gallery.people()
        if self.admission is not None:  # with a broker, only the versions the manifest lists
            people = [r for r in people if self.admission.admits(r)]
        index = GalleryIndex.build(people, info.model_id, info.embedding_size)
        threshold = self.cfg.matching.threshold or info.threshold
        self.matcher = Matcher(index, threshold, self.cfg.matching.margin)
        self._index_generation = generation
        log.info("matching %d person(s) / %d encoding(s) at threshold %.3f", len(index.person_ids),
                 index.size, threshold)

    def _watchdog(self) -> None:
        if self._watchdog_s is None:
            return
        now = self._clock()
        if now >= self._next_watchdog:
            self._next_watchdog = now + self._watchdog_s
            systemd.notify("WATCHDOG=1")

    def _record_error(self, message: str) -> None:
        self.last_error = f"{iso_utc(self._wall())} {message}"

    def fps(self) -> float:
        times = self._frame_times
        if len(times) < 2 or times[-1] <= times[0]:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])

    def health(self) -> dict:
        """The periodic health record (schema in docs/mqtt.md)."""
        c, index, src = self.counters, self.matcher.index, self.source
        errors = [e for e in (self.last_error, src.last_error if src else None,
                              self.link.last_error if self.link else None) if e]
        return {
            "device_id": self.cfg.device.id, "site": self.cfg.device.site, "ts": iso_utc(self._wall()),
            "uptime_s": round(self._clock() - self.started_at, 1),
            "model_id": self.model_id,
            "gallery": {"persons": len(index.person_ids), "encodings": index.size,
                        "other_model": len(index.other_model),
                        "other_model_ids": list(index.other_model[:20]),
                        "tombstones": sum(r.deleted for r in self.gallery.all_records()),
                        # stored, but not the version the manifest lists: never matched
                        "not_in_manifest": sum(not self.admission.admits(r) for r in self.gallery.people())
                        if self.admission else 0},
            "fps": round(self.fps(), 2), "frames": c.frames, "faces": c.faces,
            "frame_errors": c.frame_errors,
            "skipped_faces": dict(c.skipped_faces), "results": dict(c.results),
            "records": {"applied": c.applied_records, "stale": c.stale_records,
                        "rejected": self.link.rejected_counts() if self.link else {},
                        "waiting": self.admission.waiting if self.admission else 0,
                        "superseded": self.admission.superseded if self.admission else 0},
            "manifest": self._manifest_health(),
            "events": {**dict(c.events), "pending": self.mqtt_sink.pending if self.mqtt_sink else 0,
                       "expired": self.mqtt_sink.expired if self.mqtt_sink else 0,
                       "refused": self.mqtt_sink.refused if self.mqtt_sink else 0,
                       "withheld_unlocks": c.withheld_unlocks},
            "source": {"name": src.name if src else None, "healthy": bool(src and src.healthy),
                       "idle": bool(src and src.ended),  # a video file or replay at its end
                       "reopen_count": src.reopen_count if src else 0,
                       "last_error": src.last_error if src else None},
            "broker": {"connected": bool(self.link and self.link.connected)} if self.link else None,
            "liveness": self.liveness.health() if self.liveness is not None else {"mode": "off"},
            "last_error": errors[0] if errors else None,
            "timings_ms": self.timer.snapshot(),
        }

    def _manifest_health(self) -> dict | None:
        if self.admission is None:
            return None
        rejected = Counter(self.link.manifest_rejected_counts())
        rejected.update(self.admission.rejected)
        return {**self.admission.health(), "on_expired": self.cfg.enrollment.on_expired_manifest,
                "rejected": dict(rejected)}

    def _publish_health(self) -> None:
        health = self.health()
        source = ("source idle: end of the recording" if health["source"]["idle"] else "camera ok"
                  if health["source"]["healthy"] else f"camera down: {health['source']['last_error']}")
        systemd.notify(f"STATUS={health['fps']} fps, {health['gallery']['persons']} people, {source}")
        log.debug("health %s", health)
        if self.link is not None and self.link.connected:
            self.link.publish(topics.health_topic(self.cfg.device.site, self.cfg.device.id),
                              json.dumps(health).encode(), retain=True)

    # ------------------------------------------------------------------ shutdown
    def stop(self) -> None:
        """Ask run() to return soon; safe from a signal handler or another thread."""
        self._stop.set()
        if self.source is not None:
            self.source.stop()

    def close(self) -> None:
        """Deliver what we can, say goodbye on the status topic, close files."""
        systemd.notify("STOPPING=1")
        if self.link is not None:
            deadline = self._clock() + FLUSH_TIMEOUT_S
            self._poll_link()
            while self.link.connected and self.mqtt_sink.pending and self._clock() < deadline:
                time.sleep(0.05)
                self._poll_link()
            if self.mqtt_sink.pending:
                log.warning("%d event(s) not yet delivered; kept in the outbox for the next start",
                            self.mqtt_sink.pending)
            if self.link.connected:
                self._publish_health()
            self.link.stop()
            self.mqtt_sink.outbox.close()
        if self.source is not None:
            self.source.close()
        if self.gallery is not None:
            self.gallery.close()
        log.info("stopped")
