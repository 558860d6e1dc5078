"""Home Assistant MQTT discovery: the door appears in Home Assistant as one device.

Each entity is a retained discovery config at
``<prefix>/<component>/<device_id>/facegate_<site>_<key>/config`` that points at topics the
door already publishes (docs/mqtt.md#home-assistant):

    event          Recognition          facegate/<site>/device/<id>/event   unlock / unknown_face
    sensor         Last person          .../event                          the name of the last unlock
    binary_sensor  Camera               .../health                         source.healthy
    sensor (diag.) Frame rate, Gallery size, Encoder model, Liveness rejections   from .../health

Availability is the door's status topic (``online``, and ``offline`` as its Last Will). The
configs carry no names, encodings or photos: the templates read names from the unlock events
at run time. The node level is the device id alone so that a Mosquitto ACL can grant each door
its own configs with ``%u`` (config/mosquitto/facegate.acl). The builders are pure;
``door_messages`` adapts a Config, and daemon/door/link.py publishes the messages on every
connection.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from importlib import metadata

from daemon.events import UNKNOWN_FACE, UNLOCK
from daemon.protocol import topics
from daemon.protocol.wire import compact_json

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "homeassistant"
EVENT_TYPES = (UNLOCK, UNKNOWN_FACE)
# Home Assistant's discovery topics allow only these in the node and object levels.
DISCOVERY_LEVEL = re.compile(r"[A-Za-z0-9_-]+")
HEALTH, EVENTS = "health", "event"  # which of the door's topics an entity reads

# Jinja templates, rendered by Home Assistant with the received payload as value_json.
# The event entity needs an "event_type" key; every other field of the event becomes an attribute.
EVENT_TEMPLATE = "{{ dict(value_json, event_type=value_json.event) | tojson }}"
# Only unlocks name someone; any other event keeps the current state and attributes.
LAST_PERSON_TEMPLATE = "{{ value_json.name if value_json.event == 'unlock' else this.state }}"
LAST_PERSON_ATTRIBUTES = ("{{ {'person_id': value_json.person_id, 'ts': value_json.ts} | tojson "
                          "if value_json.event == 'unlock' else this.attributes | tojson }}")
# "None" is Home Assistant's payload for an unknown value: with liveness off nothing is checked.
LIVENESS_TEMPLATE = ("{{ value_json.liveness.rejected_presentations "
                     "if value_json.liveness.mode != 'off' else 'None' }}")


@dataclass(frozen=True)
class Entity:
    component: str            # Home Assistant platform: event, sensor, binary_sensor
    key: str                  # stable: part of the discovery topic, unique_id and entity id
    name: str
    source: str               # EVENTS or HEALTH
    options: dict = field(default_factory=dict)  # platform keys: templates, classes, units
    diagnostic: bool = False


ENTITIES = (
    Entity("event", "recognition", "Recognition", EVENTS,
           {"event_types": list(EVENT_TYPES), "value_template": EVENT_TEMPLATE, "icon": "mdi:face-recognition"}),
    Entity("sensor", "last_person", "Last person", EVENTS,
           {"value_template": LAST_PERSON_TEMPLATE, "json_attributes_template": LAST_PERSON_ATTRIBUTES,
            "icon": "mdi:account-check"}),
    Entity("binary_sensor", "camera", "Camera", HEALTH,
           {"value_template": "{{ 'ON' if value_json.source.healthy else 'OFF' }}", "payload_on": "ON",
            "payload_off": "OFF", "device_class": "connectivity"}),
    Entity("sensor", "frame_rate", "Frame rate", HEALTH,
           {"value_template": "{{ value_json.fps }}", "unit_of_measurement": "fps", "state_class": "measurement",
            "suggested_display_precision": 1, "icon": "mdi:speedometer"}, diagnostic=True),
    Entity("sensor", "gallery_size", "Gallery size", HEALTH,
           {"value_template": "{{ value_json.gallery.persons }}", "unit_of_measurement": "people",
            "state_class": "measurement", "icon": "mdi:account-group"}, diagnostic=True),
    Entity("sensor", "model_id", "Encoder model", HEALTH,
           {"value_template": "{{ value_json.model_id }}", "icon": "mdi:chip"}, diagnostic=True),
    Entity("sensor", "liveness_rejections", "Liveness rejections", HEALTH,
           {"value_template": LIVENESS_TEMPLATE, "state_class": "total_increasing",
            "json_attributes_template": "{{ {'mode': value_json.liveness.mode} | tojson }}",
            "icon": "mdi:shield-alert"}, diagnostic=True),
)


def prefix_error(prefix: object) -> str | None:
    """Why ``prefix`` cannot be a discovery prefix (a topic to publish under), or None."""
    if not isinstance(prefix, str) or not prefix:
        return "must be a non-empty topic such as \"homeassistant\""
    if any(c in prefix for c in "+#\0") or prefix.startswith("$"):
        return f"must not contain '+', '#' or NUL, nor start with '$' (got {prefix!r})"
    if "" in prefix.split("/"):
        return f"must not start or end with '/' or contain '//' (got {prefix!r})"
    if len(prefix.encode()) > 200:
        return f"must be at most 200 bytes (got {len(prefix.encode())})"
    return None


def node_id(device_id: str) -> str | None:
    """The discovery node level: the device id itself, so an ACL can match it with %u.
    None if Home Assistant would refuse it (device ids may contain '.', its topics may not)."""
    return device_id if DISCOVERY_LEVEL.fullmatch(device_id) else None


def _slug(value: str) -> str:
    """Lower-case [a-z0-9_] without repeated or edge underscores, as Home Assistant entity ids need."""
    return re.sub(r"[^a-z0-9]+", "_", value.lower()).strip("_")


def discovery_topic(prefix: str, entity: Entity, site: str, device_id: str) -> str:
    # The site in the object level keeps two sites' "front-door"s apart on one broker.
    return f"{prefix}/{entity.component}/{device_id}/facegate_{site.replace('.', '_')}_{entity.key}/config"


def device_info(site: str, device_id: str, sw_version: str | None) -> dict:
    """The device block every entity repeats: Home Assistant groups entities by its identifiers."""
    device = {"identifiers": [f"facegate/{site}/{device_id}"], "name": device_id, "manufacturer": "facegate",
              "model": "facegate door"}
    if sw_version:
        device["sw_version"] = sw_version
    return device


def entity_config(entity: Entity, site: str, device_id: str, *, sw_version: str | None,
                  expire_after_s: int) -> dict:
    """One entity's discovery payload (full key names, no abbreviations)."""
    source = topics.event_topic(site, device_id) if entity.source == EVENTS else topics.health_topic(site, device_id)
    config = {
        "name": entity.name,
        "unique_id": f"facegate/{site}/{device_id}/{entity.key}",
        "default_entity_id": f"{entity.component}.facegate_{_slug(device_id)}_{entity.key}",
        "state_topic": source,
        "qos": 1,
        "availability": [{"topic": topics.status_topic(site, device_id),
                          "payload_available": "online", "payload_not_available": "offline"}],
        "device": device_info(site, device_id, sw_version),
        "origin": {"name": "facegate", **({"sw_version": sw_version} if sw_version else {})},
        **entity.options,
    }
    if "json_attributes_template" in entity.options:
        config["json_attributes_topic"] = source
    if entity.diagnostic:
        config["entity_category"] = "diagnostic"
    if entity.source == HEALTH:
        # A door whose main loop stalls keeps its connection (and "online"): stale health must expire.
        config["expire_after"] = expire_after_s
    return config


def discovery_messages(prefix: str, site: str, device_id: str, *, health_interval_s: float,
                       sw_version: str | None = None) -> list[tuple[str, bytes]]:
    """Every (topic, payload) to publish retained, QoS 1. Raises ValueError for a prefix or a
    device id that Home Assistant's discovery topics cannot carry."""
    if (problem := prefix_error(prefix)) is not None:
        raise ValueError(f"discovery prefix {problem}")
    if node_id(device_id) is None:
        raise ValueError(f"device id {device_id!r} cannot be a Home Assistant discovery topic level "
                         "(only letters, digits, '_' and '-')")
    expire_after_s = max(60, int(3 * health_interval_s) + 1)  # three missed health records
    return [(discovery_topic(prefix, e, site, device_id),
             compact_json(entity_config(e, site, device_id, sw_version=sw_version, expire_after_s=expire_after_s)))
            for e in ENTITIES]


def installed_version() -> str | None:
    try:
        return metadata.version("facegate")
    except metadata.PackageNotFoundError:  # run from a source tree without installing
        return None


def door_messages(cfg) -> list[tuple[str, bytes]]:
    """The messages for a daemon.config.Config: none when ``homeassistant.discovery`` is off,
    and none (with a warning, the door still starts) when its device id cannot be a topic level."""
    ha = cfg.homeassistant
    if not ha.discovery:
        return []
    if node_id(cfg.device.id) is None:
        log.warning("Home Assistant discovery skipped: device.id %r contains '.', which Home Assistant's "
                    "discovery topics do not allow; rename the device or set homeassistant.discovery = false",
                    cfg.device.id)
        return []
    return discovery_messages(ha.discovery_prefix, cfg.device.site, cfg.device.id,
                              health_interval_s=cfg.mqtt.health_interval_s, sw_version=installed_version())
