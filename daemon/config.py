"""The daemon's configuration: typed sections loaded from TOML and validated at start.

Every field carries its own documentation (``doc=``), which is also what
``config/facegate.example.toml`` is generated from (``python -m daemon.config``), so the
example can never drift from the code. Unknown keys are errors (a typo must not silently
fall back to a default on a door lock), and every error names the key.

Secrets never need to be in the file: ``FACEGATE_MQTT_PASSWORD`` or
``FACEGATE_MQTT_PASSWORD_FILE`` override ``mqtt.password`` / ``mqtt.password_file``
(and ``FACEGATE_MQTT_USERNAME`` overrides ``mqtt.username``). Files named in the config
(TLS certificates, keys, the enrollment public key) are checked when it is loaded.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from daemon.events.homeassistant import DEFAULT_PREFIX, prefix_error
from daemon.protocol.topics import valid_name

# The words a config may use; the command line and the packages that act on them import
# them from here (this module stays cheap to import: no models, no OpenCV).
SOURCE_KINDS = ("replay", "opencv", "picamera2")       # daemon.frames.SOURCES maps them to classes
BACKENDS = ("cpu", "edgetpu")                          # daemon.embeddings.load_encoder
LIVENESS_MODES = ("off", "blink", "passive", "both")   # daemon.liveness.policy.MODES says which cues each runs
ON_EXPIRED_MANIFEST = ("keep", "deny")
PASSWORD_ENV = "FACEGATE_MQTT_PASSWORD"
PASSWORD_FILE_ENV = "FACEGATE_MQTT_PASSWORD_FILE"
USERNAME_ENV = "FACEGATE_MQTT_USERNAME"


class ConfigError(ValueError):
    """An invalid configuration; the message names the key."""

    def __init__(self, message: str):
        super().__init__(f"config error: {message}")


def doc(default, text: str, **kwargs):
    return field(default=default, metadata={"doc": text}, **kwargs)


@dataclass
class DeviceConfig:
    """Who this device is and where it keeps its state."""
    id: str = doc("door", "Device id, unique within the site; a topic level (letters, digits, '_', '.', '-').")
    site: str = doc("default", "Site (building) this device belongs to; it receives the site's enrollments.")
    state_dir: str = doc("/var/lib/facegate", "Gallery database and event outbox live here "
                                              "(systemd's StateDirectory).")


@dataclass
class SourceConfig:
    """Where frames come from."""
    kind: str = doc("opencv", "One of: replay (a folder of images), opencv (camera index, URL or "
                              "video file), picamera2 (Raspberry Pi camera).")
    device: str = doc("0", "opencv: camera index such as \"0\", an rtsp:// or http:// URL, or a video file.")
    path: str = doc("", "replay: folder of images, played in name order.")
    fps: float = doc(10.0, "replay: frames per second (0 = as fast as possible).")
    loop: bool = doc(False, "replay: start again at the end instead of stopping.")
    realtime: bool = doc(False, "opencv video file: play it at its own frame rate, so that voting and "
                                "cooldowns behave as with a camera (false: as fast as it decodes).")
    width: int = doc(640, "opencv camera / picamera2: requested capture width in pixels.")
    height: int = doc(480, "opencv camera / picamera2: requested capture height in pixels.")
    retry_max_s: float = doc(30.0, "A failing camera or stream is reopened after 0.5 s, doubling up to this.")


@dataclass
class ModelConfig:
    """The face encoder."""
    path: str = doc("", "Encoder .tflite with its model.json beside it; empty = the model shipped with facegate.")
    backend: str = doc("cpu", "cpu (ai-edge-litert) or edgetpu (Coral; needs libedgetpu1-std).")
    threads: int = doc(1, "Interpreter threads for the detector and the encoder.")


@dataclass
class QualityConfig:
    """Faces that fail these checks are skipped (and counted in health), not matched."""
    min_detection_score: float = doc(0.6, "Minimum face detector confidence, 0..1.")
    min_face_px: float = doc(40.0, "Minimum shorter side of the face box, in frame pixels.")
    min_eye_distance_px: float = doc(15.0, "Minimum distance between the eyes, in frame pixels.")
    min_blur: float = doc(25.0, "Minimum sharpness (variance of the Laplacian of the aligned crop).")
    max_faces: int = doc(3, "At most this many faces per frame are embedded, largest first.")


@dataclass
class DetectionConfig:
    """Where the face detector searches a camera's frames (daemon/faces/track.py)."""
    track: bool = doc(True, "After a frame with faces, search the next one only around them (about a "
                            "fifth of the detector's cost); false: search every whole frame.")
    full_frame_every: int = doc(10, "Search the whole frame at least every this many frames (someone "
                                    "stepping in beside a tracked face, or a face too small for the "
                                    "glance, is found within them); with glance off, also at once "
                                    "whenever the tracked region holds no face.")
    glance: bool = doc(True, "With nobody tracked, first look at the frame shrunk to 320 px (under half "
                             "the detector's cost) and search only around the faces it shows; faces "
                             "under ~60 px then wait for the next whole-frame search. Needs track.")


@dataclass
class MatchingConfig:
    """1:N identification against the gallery."""
    threshold: float = doc(0.0, "Match distance threshold; 0 = the model's calibrated threshold from model.json.")
    margin: float = doc(0.05, "A match is ambiguous (no unlock) when the second-closest person is "
                              "less than this much farther than the closest.")


@dataclass
class DecisionConfig:
    """When matches become an unlock."""
    k: int = doc(3, "Unlock when the same person matched in k ...")
    n: int = doc(5, "... of the last n processed frames.")
    cooldown_s: float = doc(10.0, "After an unlock, no new unlock for the same person for this many seconds.")


@dataclass
class LivenessConfig:
    """Presentation-attack checks on faces that matched someone (docs/security.md#liveness)."""
    mode: str = doc("blink", "off (no check), blink (the eyes must close and reopen), passive (a network "
                             "judges each frame for print or screen), or both (blink and passive).")
    window_s: float = doc(5.0, "An unlock needs the k-of-n match and the liveness evidence of the same "
                               "person within the last this many seconds.")
    evidence_margin: float = doc(0.1, "A face that misses the match threshold by at most this much (closed eyes "
                                      "do that) still counts as liveness evidence of the person matched at the "
                                      "same place within the window; it never counts as a match.")
    blink_closed_ear: float = doc(0.17, "blink: eyes count as closed when both eye aspect ratios are at "
                                        "or below this.")
    blink_open_ear: float = doc(0.21, "blink: eyes count as open when the more open eye's aspect ratio is "
                                      "at or above this (must be above blink_closed_ear).")
    passive_threshold: float = doc(0.0, "passive: minimum mean live probability over the window, 0..1; "
                                        "0 = the model's calibrated threshold from liveness_pad.json.")
    passive_min_frames: int = doc(3, "passive: frames of the person that must be scored before it can pass.")
    passive_model: str = doc("", "passive: PAD network .tflite with its .json beside it; empty = the model "
                                 "shipped with facegate.")


@dataclass
class EventsConfig:
    """Where events go."""
    stdout: bool = doc(False, "Also print events as JSON lines on stdout (always on when no broker is configured).")
    unknown_face: bool = doc(False, "Emit an unknown_face event when an unenrolled face is seen in k of n frames.")
    unknown_face_interval_s: float = doc(30.0, "At most one unknown_face event per this many seconds.")
    unlock_max_age_s: float = doc(5.0, "An unlock older than this is never sent (it is dropped from the outbox and "
                                       "counted in health as events.expired), and its MQTT 5 message expiry "
                                       "makes the broker drop it at this age: a door controller must not open "
                                       "the door long after the person left.")
    max_age_s: float = doc(3600.0, "The same limit for every other event (unknown_face).")


@dataclass
class MqttConfig:
    """The broker link: enrollment sync, events, status and health. Empty host = standalone."""
    host: str = doc("", "Broker host name or address; empty = no broker (events on stdout).")
    port: int = doc(1883, "Broker port (8883 is usual with TLS).")
    tls: bool = doc(False, "Connect with TLS (1.2 or newer); the broker's certificate and host name are verified.")
    tls_ca_file: str = doc("", "CA certificate (PEM) that signed the broker's certificate; empty = the system's CAs.")
    tls_cert_file: str = doc("", "Client certificate (PEM) for brokers that require one; with Mosquitto's "
                                 "use_identity_as_username its CN is the user name the ACL sees.")
    tls_key_file: str = doc("", "Private key (PEM) of tls_cert_file; keep it readable only by facegate.")
    username: str = doc("", "User name, if the broker requires one (overridden by FACEGATE_MQTT_USERNAME).")
    password: str = doc("", "Password; prefer the FACEGATE_MQTT_PASSWORD environment variable or password_file.",
                        repr=False)
    password_file: str = doc("", "File holding the password (overridden by FACEGATE_MQTT_PASSWORD_FILE).")
    keepalive_s: int = doc(30, "MQTT keep-alive; the broker publishes our Last Will after 1.5x this.")
    reconnect_min_s: int = doc(1, "First reconnect delay; doubles on each failure ...")
    reconnect_max_s: int = doc(30, "... up to this.")
    health_interval_s: float = doc(30.0, "Seconds between health records.")
    sync_wait_s: float = doc(3.0, "At start, wait up to this long for the broker's retained enrollments before "
                                  "processing frames (the stored gallery is used meanwhile if it is unreachable).")
    max_queued_events: int = doc(1000, "Events kept in memory while the broker is unreachable "
                                       "(they are also persisted in the outbox).")


@dataclass
class HomeAssistantConfig:
    """Home Assistant MQTT discovery: the door appears there as a device (docs/mqtt.md#home-assistant)."""
    discovery: bool = doc(True, "With mqtt.host set, publish retained discovery configs on every connection: "
                                "an event entity for unlocks and unknown faces, the last person, camera ok "
                                "and diagnostics from health. false = publish none (to remove a door already "
                                "discovered, delete the device in Home Assistant, which clears its configs).")
    discovery_prefix: str = doc(DEFAULT_PREFIX, "Home Assistant's discovery prefix (its MQTT integration's "
                                                 "setting); the broker's ACL must let the door write "
                                                 "<prefix>/+/<device.id>/+/config.")


@dataclass
class EnrollmentConfig:
    """Who may enroll people: records must be signed by the enrollment server's key."""
    public_key: str = doc("", "The enrollment server's Ed25519 public key (PEM, from `facegate keygen`); the "
                              "file may hold two keys during a key rotation. Required when mqtt.host is set.")
    allow_unsigned: bool = doc(False, "Development only: also accept records without a signature (signed "
                                      "ones are still checked against public_key if set). Anyone who can "
                                      "publish to the broker can then enroll people. Never on a real door.")
    signing_key: str = doc("", "Enrollment server only (facegate enroll/remove/reembed/server): the Ed25519 "
                               "private key that signs records and manifests. Never put it on a device.")
    on_expired_manifest: str = doc("keep", "When the newest site manifest has expired (the enrollment server has "
                                           "been unreachable): keep = go on recognising the people it lists and "
                                           "report it in health; deny = no unlocks until a fresh manifest arrives "
                                           "(fail-secure). See docs/security.md.")


@dataclass
class ServerConfig:
    """Enrollment server only (facegate server/enroll/remove/list/reembed): its own store."""
    state_dir: str = doc("/var/lib/facegate-server", "The enrollment store (every record, tombstone and manifest "
                                                     "ever published) lives here; back it up.")
    manifest_interval_s: float = doc(900.0, "facegate server signs a new manifest this often ...")
    manifest_valid_s: float = doc(14400.0, "... valid for this long. Doors refuse an expired manifest; "
                                           "see enrollment.on_expired_manifest.")


@dataclass
class GalleryConfig:
    """Seeding the gallery without a server."""
    photos: str = doc("", "Folder of enrollment photos, one sub-folder per person (folder name = person id); "
                          "embedded at start, skipped when unchanged.")


@dataclass
class Config:
    device: DeviceConfig = field(default_factory=DeviceConfig)
    source: SourceConfig = field(default_factory=SourceConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    detection: DetectionConfig = field(default_factory=DetectionConfig)
    matching: MatchingConfig = field(default_factory=MatchingConfig)
    decision: DecisionConfig = field(default_factory=DecisionConfig)
    liveness: LivenessConfig = field(default_factory=LivenessConfig)
    events: EventsConfig = field(default_factory=EventsConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    homeassistant: HomeAssistantConfig = field(default_factory=HomeAssistantConfig)
    enrollment: EnrollmentConfig = field(default_factory=EnrollmentConfig)
    gallery: GalleryConfig = field(default_factory=GalleryConfig)
    server: ServerConfig = field(default_factory=ServerConfig)

    @property
    def broker_configured(self) -> bool:
        return bool(self.mqtt.host)


_TYPE_NAMES = {"str": "a string", "int": "an integer", "float": "a number", "bool": "true or false"}


def _coerce(key: str, value, type_name: str):
    if type_name == "bool":
        ok = isinstance(value, bool)
    elif type_name == "int":
        ok = type(value) is int
    elif type_name == "float":
        ok = type(value) in (int, float)
        value = float(value) if ok else value
    else:
        ok = isinstance(value, str)
    if not ok:
        raise ConfigError(f"{key} must be {_TYPE_NAMES[type_name]} (got {value!r})")
    return value


def _build(raw: dict) -> Config:
    if not isinstance(raw, dict):
        raise ConfigError("the top level must be a table")
    sections = {f.name: f for f in dataclasses.fields(Config)}
    unknown = sorted(set(raw) - set(sections))
    if unknown:
        raise ConfigError(f"unknown section or key {unknown[0]!r} (known sections: {', '.join(sections)})")
    built = {}
    for name, section_field in sections.items():
        cls = section_field.default_factory
        table = raw.get(name, {})
        if not isinstance(table, dict):
            raise ConfigError(f"[{name}] must be a table")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for key in table:
            if key not in fields:
                raise ConfigError(f"unknown key {name}.{key} (known: {', '.join(fields)})")
        built[name] = cls(**{k: _coerce(f"{name}.{k}", v, fields[k].type) for k, v in table.items()})
    return Config(**built)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def validate(cfg: Config) -> Config:
    """Range and cross-field checks; raises ConfigError naming the key."""
    d, s, m, q, mt, dc, ev, mq = (cfg.device, cfg.source, cfg.model, cfg.quality, cfg.matching,
                                  cfg.decision, cfg.events, cfg.mqtt)
    for key, value in (("device.id", d.id), ("device.site", d.site)):
        _check(valid_name(value), f"{key} must be 1-64 letters, digits, '_', '.' or '-', "
                                  f"starting with a letter or digit (got {value!r})")
    _check(bool(d.state_dir), "device.state_dir must not be empty")
    _check(s.kind in SOURCE_KINDS, f"source.kind must be one of {', '.join(SOURCE_KINDS)} (got {s.kind!r})")
    _check(s.kind != "replay" or bool(s.path), 'source.path is required when source.kind = "replay"')
    _check(s.kind != "opencv" or bool(s.device), 'source.device is required when source.kind = "opencv"')
    _check(s.fps >= 0, f"source.fps must be >= 0 (got {s.fps})")
    _check(s.retry_max_s >= 0.5, f"source.retry_max_s must be >= 0.5 (got {s.retry_max_s})")
    _check(s.width > 0 and s.height > 0, f"source.width and source.height must be > 0 (got {s.width}x{s.height})")
    _check(m.backend in BACKENDS, f"model.backend must be one of {', '.join(BACKENDS)} (got {m.backend!r})")
    _check(1 <= m.threads <= 64, f"model.threads must be in 1..64 (got {m.threads})")
    _check(0 <= q.min_detection_score <= 1, f"quality.min_detection_score must be in 0..1 (got {q.min_detection_score})")
    for key in ("min_face_px", "min_eye_distance_px", "min_blur"):
        _check(getattr(q, key) >= 0, f"quality.{key} must be >= 0 (got {getattr(q, key)})")
    _check(1 <= q.max_faces <= 16, f"quality.max_faces must be in 1..16 (got {q.max_faces})")
    _check(1 <= cfg.detection.full_frame_every <= 1000,
           f"detection.full_frame_every must be in 1..1000 (got {cfg.detection.full_frame_every})")
    _check(0 <= mt.threshold <= 2, f"matching.threshold must be in 0..2 (unit-vector distances; got {mt.threshold})")
    _check(0 <= mt.margin < 2, f"matching.margin must be in [0, 2) (got {mt.margin})")
    _check(1 <= dc.n <= 100, f"decision.n must be in 1..100 (got {dc.n})")
    _check(dc.k >= 1, f"decision.k must be >= 1 (got {dc.k})")
    _check(dc.k <= dc.n, f"decision.k must be ≤ decision.n (got k={dc.k}, n={dc.n})")
    _check(dc.cooldown_s >= 0, f"decision.cooldown_s must be >= 0 (got {dc.cooldown_s})")
    lv = cfg.liveness
    _check(lv.mode in LIVENESS_MODES, f"liveness.mode must be one of {', '.join(LIVENESS_MODES)} (got {lv.mode!r})")
    _check(0 < lv.window_s <= 60, f"liveness.window_s must be in (0, 60] (got {lv.window_s})")
    _check(0 <= lv.evidence_margin <= 0.5, f"liveness.evidence_margin must be in 0..0.5 (got {lv.evidence_margin})")
    _check(0 < lv.blink_closed_ear < 1, f"liveness.blink_closed_ear must be in (0, 1) (got {lv.blink_closed_ear})")
    _check(lv.blink_closed_ear < lv.blink_open_ear < 1,
           "liveness.blink_open_ear must be above liveness.blink_closed_ear and below 1 "
           f"(got {lv.blink_open_ear} with blink_closed_ear {lv.blink_closed_ear})")
    _check(0 <= lv.passive_threshold <= 1, f"liveness.passive_threshold must be in 0..1 (got {lv.passive_threshold})")
    _check(1 <= lv.passive_min_frames <= 100,
           f"liveness.passive_min_frames must be in 1..100 (got {lv.passive_min_frames})")
    _check(ev.unknown_face_interval_s >= 0,
           f"events.unknown_face_interval_s must be >= 0 (got {ev.unknown_face_interval_s})")
    _check(1 <= mq.port <= 65535, f"mqtt.port must be in 1..65535 (got {mq.port})")
    _check(5 <= mq.keepalive_s <= 3600, f"mqtt.keepalive_s must be in 5..3600 (got {mq.keepalive_s})")
    _check(mq.reconnect_min_s >= 1, f"mqtt.reconnect_min_s must be >= 1 (got {mq.reconnect_min_s})")
    _check(mq.reconnect_max_s >= mq.reconnect_min_s, "mqtt.reconnect_max_s must be ≥ mqtt.reconnect_min_s "
                                                     f"(got {mq.reconnect_max_s} < {mq.reconnect_min_s})")
    _check(mq.health_interval_s > 0, f"mqtt.health_interval_s must be > 0 (got {mq.health_interval_s})")
    _check(mq.sync_wait_s >= 0, f"mqtt.sync_wait_s must be >= 0 (got {mq.sync_wait_s})")
    _check(mq.max_queued_events >= 1, f"mqtt.max_queued_events must be >= 1 (got {mq.max_queued_events})")
    for key in ("unlock_max_age_s", "max_age_s"):
        _check(getattr(ev, key) >= 1, f"events.{key} must be >= 1 (MQTT expiry is in whole seconds; "
                                      f"got {getattr(ev, key)})")
    _check(not (mq.host and cfg.gallery.photos), "gallery.photos seeds a door that has no broker; with mqtt.host "
           "set, people are enrolled with `facegate enroll` and only those the site manifest lists are recognised")
    problem = prefix_error(cfg.homeassistant.discovery_prefix)
    _check(problem is None, f"homeassistant.discovery_prefix {problem}")
    en, sv = cfg.enrollment, cfg.server
    _check(en.on_expired_manifest in ON_EXPIRED_MANIFEST, "enrollment.on_expired_manifest must be one of "
           f"{', '.join(ON_EXPIRED_MANIFEST)} (got {en.on_expired_manifest!r})")
    _check(bool(sv.state_dir), "server.state_dir must not be empty")
    _check(sv.manifest_interval_s >= 1, f"server.manifest_interval_s must be >= 1 (got {sv.manifest_interval_s})")
    _check(sv.manifest_valid_s >= 2 * sv.manifest_interval_s,
           "server.manifest_valid_s must be at least twice server.manifest_interval_s, so a new manifest is "
           f"out well before the last one expires (got {sv.manifest_valid_s} and {sv.manifest_interval_s})")
    for key in ("tls_ca_file", "tls_cert_file", "tls_key_file"):
        _check(mq.tls or not getattr(mq, key), f"mqtt.{key} is set but mqtt.tls is false; set mqtt.tls = true")
    _check(bool(mq.tls_cert_file) == bool(mq.tls_key_file),
           "mqtt.tls_cert_file and mqtt.tls_key_file go together: set both or neither")
    return cfg


def check_device_trust(cfg: Config) -> None:
    """A device that syncs from a broker must know whose records to accept. Raises
    ConfigError unless enrollment.public_key is set (or allow_unsigned, for development)."""
    en = cfg.enrollment
    _check(not cfg.broker_configured or bool(en.public_key) or en.allow_unsigned,
           "enrollment.public_key is required when mqtt.host is set: the enrollment server's public key "
           "(`facegate keygen` writes it), so that only records it signed are accepted. For development "
           "only, enrollment.allow_unsigned = true accepts unsigned records")


def _check_files(cfg: Config) -> None:
    """Files the config names must be readable now, not at the first reconnect."""
    named = [(f"mqtt.{k}", getattr(cfg.mqtt, k)) for k in ("tls_ca_file", "tls_cert_file", "tls_key_file")]
    named += [("enrollment.public_key", cfg.enrollment.public_key),
              ("liveness.passive_model", cfg.liveness.passive_model)]
    for key, value in named:
        if value and not os.access(value, os.R_OK):
            raise ConfigError(f"{key}: cannot read {value}")
        if value and not Path(value).is_file():
            raise ConfigError(f"{key}: {value} is not a file")
    if cfg.enrollment.public_key:
        from daemon.protocol.signing import KeyFileError, load_public_keys
        try:
            load_public_keys(cfg.enrollment.public_key)
        except KeyFileError as exc:
            raise ConfigError(f"enrollment.public_key: {exc}") from exc


def _apply_overrides(raw: dict, overrides: dict) -> dict:
    raw = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for dotted, value in overrides.items():
        section, key = dotted.split(".", 1)
        table = raw.setdefault(section, {})
        if not isinstance(table, dict):
            raise ConfigError(f"[{section}] must be a table")
        table[key] = value
    return raw


def _resolve_password(cfg: Config, env) -> None:
    mq = cfg.mqtt
    if env.get(USERNAME_ENV):
        mq.username = env[USERNAME_ENV]
    if env.get(PASSWORD_FILE_ENV):
        mq.password_file = env[PASSWORD_FILE_ENV]
    if env.get(PASSWORD_ENV):
        mq.password = env[PASSWORD_ENV]
    elif mq.password_file:
        source = PASSWORD_FILE_ENV if env.get(PASSWORD_FILE_ENV) else "mqtt.password_file"
        try:
            mq.password = Path(mq.password_file).read_text().rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read {mq.password_file}: {exc.strerror or exc}") from exc


def config_from_dict(raw: dict, overrides: dict | None = None, env=None) -> Config:
    """Build and validate a Config from a parsed TOML table; ``overrides`` maps dotted
    keys ("source.fps") to values and wins over the table (command-line flags)."""
    cfg = _build(_apply_overrides(raw, overrides or {}))
    _resolve_password(cfg, os.environ if env is None else env)
    validate(cfg)
    _check_files(cfg)
    return cfg


def load_config(path: str | Path | None = None, overrides: dict | None = None, env=None) -> Config:
    """Read a TOML file (or nothing: built-in defaults) plus overrides; ConfigError on any problem."""
    raw = {}
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    return config_from_dict(raw, overrides, env)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def example_toml() -> str:
    """The documented example config: every key with its default and its doc."""
    lines = ["# facegate daemon configuration (generated by `python -m daemon.config`; every key is optional",
             "# and shown with its default). Run: facegate run --config /etc/facegate/facegate.toml", ""]
    for section in dataclasses.fields(Config):
        cls = section.default_factory
        lines.append(f"[{section.name}]")
        lines.append(f"# {cls.__doc__.strip()}")
        for f in dataclasses.fields(cls):
            lines.append(f"# {f.metadata['doc']}")
            commented = "# " if f.name == "password" else ""  # never suggest a secret in the file
            lines.append(f"{commented}{f.name} = {_toml_value(f.default)}")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(example_toml(), end="")
