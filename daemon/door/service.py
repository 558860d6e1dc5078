"""The door daemon's main loop.

    frame -> faces + quality gate -> aligned crops -> embeddings -> matches -> liveness -> decision -> event
    (frames)  (faces.align.prepare_faces, quality)   (embeddings)  (matching)  (liveness)  (decision)  (events)

One thread does all of that, plus the gallery and outbox writes; paho's thread only
receives and validates (see link.py). Nothing a camera, a broker or a publisher sends
can stop the loop: bad frames and messages are logged and counted in the health record,
a failing camera is reopened with backoff, an unreachable broker is retried while the
stored gallery keeps recognising people. The side concerns live next door: the broker
(or its absence) in sync.py, the counters and timers in health.py, systemd in
daemon/notify.py.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TextIO

import numpy as np

from daemon import notify as systemd
from daemon.config import Config, check_device_trust
from daemon.decision import UnlockDecider
from daemon.door.health import Counters, FrameRate, StageTimer
from daemon.door.sync import Standalone, connect
from daemon.events import StdoutSink, unknown_face_event, unlock_event
from daemon.faces.align import PreparedFaces, prepare_faces
from daemon.faces.detect import GLANCE_SIDE
from daemon.faces.track import FaceTracker
from daemon.frames import Frame, FrameSource, ResilientSource, configured_source
from daemon.gallery import Gallery, PhotoRejected, seed_from_photos
from daemon.liveness import FacePoints, LivenessOff, Verdict, build_gate
from daemon.matching import MATCH, UNKNOWN, GalleryIndex, Matcher, MatchResult
from daemon.protocol.wire import iso_utc
from daemon.quality import DESCRIPTIONS, QualityPolicy
from daemon.state import private_dir

log = logging.getLogger(__name__)

UNKNOWN_FACES = "<unknown>"  # the one "person" every unknown face votes for (unknown_face events)


@dataclass
class FrameOutcome:
    """What one frame produced (returned by process_frame for tests and benchmarks)."""

    faces: int = 0
    skipped: list[str] = field(default_factory=list)      # quality reasons
    crops: list[np.ndarray] = field(default_factory=list)  # what was embedded, in order
    results: list[MatchResult] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)


class Service:
    """Build with a Config, then start(), run(), close(). ``source``, ``encoder`` and
    ``detector`` may be injected (tests, benchmarks); otherwise they come from the config.
    A ``timer`` passed in is where the per-stage latencies go (benchmarks read it)."""

    def __init__(self, cfg: Config, *, source: FrameSource | None = None, encoder=None, detector=None,
                 stdout: TextIO | None = None, timer: StageTimer | None = None, wall_clock=time.time,
                 clock=time.monotonic):
        self.cfg = cfg
        self._raw_source = source
        self.encoder = encoder
        self.detector = detector
        self._stdout = stdout
        self._wall = wall_clock
        self._clock = clock
        self._stop = threading.Event()
        self.counters = Counters()
        self.timer = timer or StageTimer()
        self.quality = QualityPolicy.from_config(cfg.quality)
        # Frames only; gallery photos are searched whole.
        det = cfg.detection
        self.tracker = FaceTracker(det.full_frame_every if det.track else 1,
                                   glance_side=GLANCE_SIDE if det.glance else 0)
        d = cfg.decision
        self.decider = UnlockDecider(k=d.k, n=d.n, cooldown_s=d.cooldown_s)
        self.unknown_decider = UnlockDecider(k=d.k, n=d.n, cooldown_s=cfg.events.unknown_face_interval_s)
        self.liveness = LivenessOff()  # the configured gate is built with the models in start()
        self.gallery: Gallery | None = None
        self.matcher: Matcher | None = None
        self.source: ResilientSource | None = None
        self.sync = Standalone()  # the broker side; connect() replaces it in start() when mqtt.host is set
        self.sinks: list = []
        self.last_error: str | None = None
        self.started_at = clock()
        self.ready_after_s: float | None = None
        self._index_generation = None
        self._frame_rate = FrameRate()
        self._next_health = 0.0
        self._watchdog = systemd.Watchdog(clock)

    # ------------------------------------------------------------------ start
    def start(self) -> None:
        """Load the model and the gallery, connect, open the camera. READY=1 is sent once
        the model and gallery are loaded: from then on the door can recognise people."""
        cfg = self.cfg
        check_device_trust(cfg)  # before anything slow: a door must not sync unsigned records by accident
        state_dir = private_dir(cfg.device.state_dir)  # refuses a folder others can write to
        self._load_models()
        self.gallery = Gallery.open(state_dir)
        if cfg.gallery.photos:
            self._seed_gallery(cfg.gallery.photos)
        self.sync = connect(cfg, self.gallery, self.encoder.info, state_dir, wall=self._wall, clock=self._clock,
                            on_error=self._record_error)
        if not cfg.broker_configured or cfg.events.stdout:
            self.sinks.append(StdoutSink(self._stdout))
        self.sinks += self.sync.sinks
        self.sync.start()
        self._rebuild_index()
        self.ready_after_s = self._clock() - self.started_at
        systemd.notify("READY=1\nSTATUS=model and gallery loaded; starting camera")
        log.info("ready in %.2f s: model %s, %d person(s) in the gallery", self.ready_after_s,
                 self.model_id, len(self.gallery))
        self.source = ResilientSource(self._raw_source or configured_source(cfg.source), initial_backoff=0.5,
                                      max_backoff=cfg.source.retry_max_s,
                                      # keeps syncing (revocations!), health and the watchdog
                                      # going while a dead camera is retried
                                      heartbeat=self._housekeeping)
        self.source.open()
        self.sync.wait_for_sync(cfg.mqtt.sync_wait_s, poll=self._poll)

    def _load_models(self) -> None:
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
            found = self._faces(image, max_faces=1)
            if not found.aligned:
                raise PhotoRejected(DESCRIPTIONS[found.rejected[0][1]] if found.rejected else "no face found")
            return self.encoder.embed(found.aligned[0].crop)[0]

        seed_from_photos(self.gallery, photos_dir, embed, self.model_id, now=self._wall)

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
                self._housekeeping()  # replay finished: keep syncing and reporting until stopped
                self._stop.wait(0.2)
                continue
            self.timer.add("capture", self._clock() - started)
            self.process_frame(frame)
            self._housekeeping()

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
            self._frame_rate.tick(self._clock())

    def _process(self, image: np.ndarray) -> FrameOutcome:
        out = FrameOutcome()
        t = self._clock()
        found = self.tracker.prepare(image, self.detector, size=self.encoder.info.input_size,
                                     max_faces=self.cfg.quality.max_faces, quality=self.quality)
        t = self._lap("faces", t)
        out.faces, out.skipped, out.crops = len(found.detected), [reason for _, reason in found.rejected], found.crops
        self.counters.faces += out.faces
        self.counters.skipped_faces.update(out.skipped)
        if out.crops:
            embeddings = self.encoder.embed(np.stack(out.crops))
            t = self._lap("embed", t)
            out.results = self.matcher.match_many(embeddings)
            if log.isEnabledFor(logging.DEBUG):  # -v: why each face did or did not match
                for i, (embedding, result) in enumerate(zip(embeddings, out.results), 1):
                    log.debug("face %d/%d: %s", i, len(embeddings), self.matcher.explain(embedding, result))
            t = self._lap("match", t)
            self.counters.results.update(r.status for r in out.results)
        self._observe_liveness(image, found, out.results)
        t = self._lap("liveness", t)
        out.events = self._decide(out.results)
        self._lap("decide", t)
        for event in out.events:
            self.emit(event)
        return out

    def _faces(self, image: np.ndarray, max_faces: int) -> PreparedFaces:
        return prepare_faces(image, self.detector, self.encoder.info.input_size, max_faces=max_faces,
                             quality=self.quality)

    def _observe_liveness(self, image: np.ndarray, found: PreparedFaces, results: list[MatchResult]) -> None:
        """Measure only the faces that matched (or just missed) someone."""
        now = self._clock()
        self.liveness.observe_frame(image, [(FacePoints.of(a.face), r) for a, r in zip(found.aligned, results)],
                                    self.matcher.threshold, now)
        for person_id in self.liveness.expire(now):
            log.info("liveness: rejected a presentation of %s (no live evidence before it ended)", person_id)

    def _lap(self, stage: str, since: float) -> float:
        now = self._clock()
        self.timer.add(stage, now - since)
        return now

    def _decide(self, results: list[MatchResult]) -> list[dict]:
        """The events this frame completes: unlocks (k of n votes, live, manifest allows) and
        unknown faces (if configured)."""
        now, wall = self._clock(), self._wall()
        who = {"device_id": self.cfg.device.id, "site": self.cfg.device.site, "model_id": self.model_id, "ts": wall}
        matched: dict[str, float] = {}
        for r in results:
            if r.status == MATCH:
                matched[r.person_id] = min(r.distance, matched.get(r.person_id, r.distance))
        events = []
        verdicts: dict[str, Verdict] = {}

        def live(unlock) -> bool:  # the votes say unlock; does liveness agree?
            verdict = self.liveness.decide(unlock.person_id, now)
            log.debug("decision %s: matched in %d of the last %d frames (best distance %.3f); %s -> %s",
                      unlock.person_id, unlock.frames_voted, self.decider.n, unlock.distance,
                      f"liveness {verdict.mode}: {verdict.explain()}" if verdict else "liveness off",
                      "unlock" if verdict is None or verdict.passed else "no unlock")
            if verdict is not None:
                verdicts[unlock.person_id] = verdict
            return verdict is None or verdict.passed

        for unlock in self.decider.observe(matched, now, gate=live):
            if self.sync.unlocks_denied():
                self.counters.withheld_unlocks += 1
                log.warning("unlock of %s withheld: no fresh site manifest and enrollment.on_expired_manifest = "
                            "deny", unlock.person_id)
                continue
            verdict = verdicts.get(unlock.person_id)
            events.append(unlock_event(**who, person_id=unlock.person_id,
                                       name=self.matcher.index.name_of(unlock.person_id), distance=unlock.distance,
                                       frames_voted=unlock.frames_voted,
                                       liveness=verdict.to_event() if verdict else None))
        if self.cfg.events.unknown_face:
            unknown = [r.distance for r in results if r.status == UNKNOWN]
            for vote in self.unknown_decider.observe({UNKNOWN_FACES: min(unknown)} if unknown else {}, now):
                events.append(unknown_face_event(**who, distance=vote.distance, frames_voted=vote.frames_voted))
        return events

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
            self._poll()
            now = self._clock()
            if now >= self._next_health:
                self._next_health = now + self.cfg.mqtt.health_interval_s
                self._publish_health()
        except Exception as exc:  # reporting must never stop recognition
            self._record_error(f"housekeeping: {exc!r}")
            log.exception("housekeeping failed")
        self._watchdog.ping()

    def _poll(self) -> None:
        self.sync.poll()
        self._rebuild_index()

    def _rebuild_index(self) -> None:
        generation = (self.gallery.generation, self.sync.generation)
        if generation == self._index_generation:
            return
        info = self.encoder.info
        people = [r for r in self.gallery.people() if self.sync.admits(r)]  # with a broker: the manifest's
        index = GalleryIndex.build(people, info.model_id, info.embedding_size)
        threshold = self.cfg.matching.threshold or info.threshold
        self.matcher = Matcher(index, threshold, self.cfg.matching.margin)
        self._index_generation = generation
        log.info("matching %d person(s) / %d encoding(s) at threshold %.3f", len(index.person_ids),
                 index.size, threshold)

    def _record_error(self, message: str) -> None:
        self.last_error = f"{iso_utc(self._wall())} {message}"

    def fps(self) -> float:
        return self._frame_rate.fps()

    def health(self) -> dict:
        """The periodic health record (schema in docs/mqtt.md)."""
        c, index, src, sync = self.counters, self.matcher.index, self.source, self.sync.health()
        errors = [e for e in (self.last_error, src.last_error if src else None, self.sync.last_error) if e]
        return {
            "device_id": self.cfg.device.id, "site": self.cfg.device.site, "ts": iso_utc(self._wall()),
            "uptime_s": round(self._clock() - self.started_at, 1),
            "model_id": self.model_id,
            "gallery": {"persons": len(index.person_ids), "encodings": index.size,
                        "other_model": len(index.other_model),
                        "other_model_ids": list(index.other_model[:20]),
                        "tombstones": sum(r.deleted for r in self.gallery.all_records()),
                        # stored, but not the version the manifest lists: never matched
                        "not_in_manifest": sum(not self.sync.admits(r) for r in self.gallery.people())},
            "fps": round(self.fps(), 2), "frames": c.frames, "faces": c.faces,
            "frame_errors": c.frame_errors,
            "searches": dict(self.tracker.searches),  # detector runs: whole frame / tracked region / glance
            "skipped_faces": dict(c.skipped_faces), "results": dict(c.results),
            "records": sync["records"],
            "manifest": sync["manifest"],
            "events": {**dict(c.events), **sync["events"], "withheld_unlocks": c.withheld_unlocks},
            "source": {"name": src.name if src else None, "healthy": bool(src and src.healthy),
                       "idle": bool(src and src.ended),  # a video file or replay at its end
                       "reopen_count": src.reopen_count if src else 0,
                       "last_error": src.last_error if src else None},
            "broker": sync["broker"],
            "liveness": self.liveness.health(),
            "last_error": errors[0] if errors else None,
            "timings_ms": self.timer.snapshot(),
        }

    def _publish_health(self) -> None:
        health = self.health()
        source = ("source idle: end of the recording" if health["source"]["idle"] else "camera ok"
                  if health["source"]["healthy"] else f"camera down: {health['source']['last_error']}")
        systemd.notify(f"STATUS={health['fps']} fps, {health['gallery']['persons']} people, {source}")
        log.debug("health %s", health)
        self.sync.publish_health(health)

    # ------------------------------------------------------------------ shutdown
    def stop(self) -> None:
        """Ask run() to return soon; safe from a signal handler or another thread."""
        self._stop.set()
        if self.source is not None:
            self.source.stop()

    def close(self) -> None:
        """Deliver what we can, say goodbye on the status topic, close files."""
        systemd.notify("STOPPING=1")
        self.sync.close(final_health=self._publish_health)
        if self.source is not None:
            self.source.close()
        if self.gallery is not None:
            self.gallery.close()
        log.info("stopped")
