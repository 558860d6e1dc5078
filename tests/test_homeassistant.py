"""Home Assistant MQTT discovery (daemon/events/homeassistant.py) against a real Mosquitto:
the configs appear retained, carry what Home Assistant's MQTT discovery documents as
required, and name only topics the running door really publishes. Their templates are
rendered with Jinja2 (Home Assistant's template engine, sandboxed as there) against the
payloads the door actually sent.

Required keys, from Home Assistant's MQTT docs (event.mqtt, sensor.mqtt, binary_sensor.mqtt,
and the discovery section of mqtt): ``state_topic`` for all three platforms, ``event_types``
for events; ``device`` only works with ``unique_id`` and needs ``identifiers`` (or
``connections``); discovery topics are ``<prefix>/<component>/[<node_id>/]<object_id>/config``
with node and object ids of ``[a-zA-Z0-9_-]``.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import time
import uuid
from types import SimpleNamespace

import numpy as np
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from daemon.api import embed_image
from daemon.config import ConfigError
from daemon.door.service import Service
from daemon.events import homeassistant as ha
from daemon.liveness import LivenessGate
from daemon.protocol.topics import event_topic, health_topic, status_topic
from daemon_helpers import PixelEncoder, Probe, ServiceThread, SiteServer, enrollment, person_photos, service_config

X, Y = "Jean_Chretien", "Serena_Williams"  # X is enrolled, Y is not
X_NAME = "Jean Chrétien"

# Home Assistant's own pattern for discovery topics (after "<prefix>/") and for entity ids.
HA_TOPIC = re.compile(r"(?P<component>\w+)/(?:(?P<node_id>[a-zA-Z0-9_-]+)/)?(?P<object_id>[a-zA-Z0-9_-]+)/config")
HA_ENTITY_ID = re.compile(r"(?!.+__)(?!_)[\da-z_]+(?<!_)\.(?!_)[\da-z_]+(?<!_)")
REQUIRED = {"event": {"state_topic", "event_types"}, "sensor": {"state_topic"}, "binary_sensor": {"state_topic"}}
# Keys Home Assistant documents for these platforms: a misspelt key would be silently ignored there.
COMMON = {"name", "unique_id", "default_entity_id", "state_topic", "qos", "availability", "device", "origin",
          "entity_category", "icon", "value_template", "json_attributes_topic", "json_attributes_template"}
DOCUMENTED = {"event": COMMON | {"event_types", "device_class"},
              "sensor": COMMON | {"unit_of_measurement", "state_class", "device_class", "expire_after",
                                  "suggested_display_precision"},
              "binary_sensor": COMMON | {"payload_on", "payload_off", "device_class", "expire_after"}}
DIAGNOSTICS = {"frame_rate", "gallery_size", "model_id", "liveness_rejections"}

JINJA = ImmutableSandboxedEnvironment()


def render(template: str, payload: bytes, state: str = "unknown", attributes: dict | None = None) -> str:
    """What Home Assistant renders for a value template: value, value_json and `this` (the entity's state)."""
    this = SimpleNamespace(state=state, attributes=attributes or {})
    return JINJA.from_string(template).render(value=payload.decode(), value_json=json.loads(payload), this=this)


def configs(messages) -> dict[str, dict]:
    """Entity key -> its config (with the discovery topic added as "topic")."""
    out = {}
    for topic, payload in messages:
        config = json.loads(payload)
        out[config["unique_id"].rsplit("/", 1)[1]] = {"topic": topic, **config}
    return out


def named_topics(config: dict) -> set[str]:
    """Every topic a config tells Home Assistant to subscribe to."""
    return {config["state_topic"], *(a["topic"] for a in config["availability"]),
            *([config["json_attributes_topic"]] if "json_attributes_topic" in config else [])}


# ---------------------------------------------------------------- the configs themselves

def messages(prefix="homeassistant", site="hq", device="front-door", **kw):
    return ha.discovery_messages(prefix, site, device, health_interval_s=30.0, **kw)


def test_each_config_has_the_keys_home_assistant_requires_and_only_documented_ones():
    got = messages(sw_version="1.2.3")
    assert len(got) == len(ha.ENTITIES) == 7
    assert len({t for t, _ in got}) == 7
    ids, devices = set(), []
    for topic, payload in got:
        assert topic.startswith("homeassistant/")
        match = HA_TOPIC.fullmatch(topic.removeprefix("homeassistant/"))
        assert match and match["node_id"] == "front-door", topic
        config = json.loads(payload)
        component = match["component"]
        assert REQUIRED[component] <= set(config), (topic, REQUIRED[component] - set(config))
        assert set(config) <= DOCUMENTED[component], (topic, set(config) - DOCUMENTED[component])
        assert config["state_topic"] in {event_topic("hq", "front-door"), health_topic("hq", "front-door")}
        assert config["availability"] == [{"topic": status_topic("hq", "front-door"), "payload_available": "online",
                                           "payload_not_available": "offline"}]
        assert HA_ENTITY_ID.fullmatch(config["default_entity_id"]) and \
            config["default_entity_id"].startswith(f"{component}.facegate_front_door_")
        assert config["origin"] == {"name": "facegate", "sw_version": "1.2.3"}
        ids.add(config["unique_id"])
        devices.append(config["device"])
    assert len(ids) == 7, "unique ids must differ"
    assert all(d == devices[0] for d in devices), "one device per door"
    assert devices[0]["identifiers"] == ["facegate/hq/front-door"] and devices[0]["name"] == "front-door"
    by_key = configs(got)
    assert by_key["recognition"]["event_types"] == ["unlock", "unknown_face"]
    assert {k for k, c in by_key.items() if c.get("entity_category") == "diagnostic"} == DIAGNOSTICS
    assert {k for k, c in by_key.items() if "expire_after" in c} == {"camera"} | DIAGNOSTICS
    assert all(c["expire_after"] == 91 for k, c in by_key.items() if "expire_after" in c), "3 x 30 s + 1"


def test_two_sites_with_the_same_door_name_get_different_topics_and_ids():
    a, b = configs(messages(site="hq")), configs(messages(site="annex"))
    assert not {c["topic"] for c in a.values()} & {c["topic"] for c in b.values()}
    assert not {c["unique_id"] for c in a.values()} & {c["unique_id"] for c in b.values()}
    assert a["camera"]["device"]["identifiers"] != b["camera"]["device"]["identifiers"]


@pytest.mark.parametrize("prefix,problem", [
    ("", "non-empty"), ("ha/+", "'+'"), ("ha/#", "'#'"), ("$SYS", "'$'"), ("/ha", "'/'"), ("ha/", "'/'"),
    ("ha//x", "'//'"), ("x" * 201, "200 bytes")])
def test_a_bad_discovery_prefix_is_a_config_error_naming_the_key(tmp_path, prefix, problem):
    with pytest.raises(ConfigError, match=f"homeassistant.discovery_prefix .*{re.escape(problem)}"):
        service_config(tmp_path, homeassistant={"discovery_prefix": prefix})
    with pytest.raises(ValueError, match="discovery prefix"):
        messages(prefix=prefix)


def test_discovery_is_on_by_default_and_a_nested_prefix_is_fine(tmp_path):
    cfg = service_config(tmp_path)
    assert cfg.homeassistant.discovery and cfg.homeassistant.discovery_prefix == "homeassistant"
    assert all(t.startswith("ha/discovery/") for t, _ in messages(prefix="ha/discovery"))


def test_a_device_id_home_assistant_cannot_carry_skips_discovery_with_a_warning(tmp_path, caplog):
    with pytest.raises(ValueError, match="'door.1' cannot be a Home Assistant discovery topic level"):
        messages(device="door.1")
    cfg = service_config(tmp_path, device={"id": "door.1"})
    with caplog.at_level(logging.WARNING):
        assert ha.door_messages(cfg) == []
    assert "discovery skipped: device.id 'door.1'" in caplog.text and "homeassistant.discovery = false" in caplog.text
    assert ha.door_messages(service_config(tmp_path, homeassistant={"discovery": False})) == []


# ---------------------------------------------------------------- a running door and a real broker

def frames_of_x_then_y(face_fixtures, folder):
    """Three photos of the enrolled X, then three of the stranger Y, looped by the replay."""
    folder.mkdir(parents=True, exist_ok=True)
    for n, photo in enumerate(person_photos(face_fixtures, X)[:3] + person_photos(face_fixtures, Y)[:3]):
        shutil.copy(photo, folder / f"frame_{n:03d}.jpg")


@pytest.fixture
def door(tmp_path, broker, face_fixtures):
    """A running door with X enrolled by the site's server, unknown_face events on, discovery
    under a prefix of its own; yields (cfg, prefix) and stops the door afterwards."""
    frames_of_x_then_y(face_fixtures, tmp_path / "frames")
    prefix = f"ha-{uuid.uuid4().hex[:8]}"
    cfg = service_config(tmp_path, broker, source={"loop": True, "fps": 15.0}, decision={"cooldown_s": 0.5},
                         events={"unknown_face": True, "unknown_face_interval_s": 1.0},
                         homeassistant={"discovery_prefix": prefix})
    encoder = PixelEncoder()
    encodings = np.stack([embed_image(p, encoder).embedding for p in person_photos(face_fixtures, X)[:3]])
    server = SiteServer(broker, cfg.device.site, tmp_path)
    server.publish(*enrollment(cfg.device.site, X, encodings, "pixel-test", 1, name=X_NAME))
    running = ServiceThread(Service(cfg, encoder=encoder))
    try:
        yield cfg, prefix, running
    finally:
        running.stop()
        server.close()


def test_the_door_publishes_retained_configs_that_name_only_topics_it_publishes(broker, door):
    cfg, prefix, running = door
    site = cfg.device.site
    device_topics = Probe(broker, f"facegate/{site}/device/door1/#")
    try:
        assert device_topics.wait_for(lambda p: p.payloads(status_topic(site, "door1"))[-1:] == [b"online"])
        # Once the broker has them, a client that subscribes later gets them from it: retained.
        assert retained_configs(broker, prefix) is not None
        discovery = Probe(broker, f"{prefix}/#")
        assert discovery.wait_for(lambda p: len(p.messages) >= len(ha.ENTITIES)), discovery.messages
        assert all(retain for _, _, retain in discovery.messages), "discovery configs must be retained"
        by_key = configs([(t, p) for t, p, _ in discovery.messages])
        assert set(by_key) == {e.key for e in ha.ENTITIES}
        for key, config in by_key.items():
            component = next(e.component for e in ha.ENTITIES if e.key == key)
            assert config["topic"] == f"{prefix}/{component}/door1/facegate_{site}_{key}/config"

        # Every topic they name receives messages from the running door: an unlock of X, an
        # unknown face (Y), health, and the status.
        events_topic, health = event_topic(site, "door1"), health_topic(site, "door1")
        assert device_topics.wait_for(lambda p: {e["event"] for e in p.json(events_topic)} >= {"unlock", "unknown_face"},
                                      timeout=20), device_topics.json(events_topic)
        assert device_topics.wait_for(lambda p: any(h["gallery"]["persons"] == 1 and h["fps"] > 0
                                                    for h in p.json(health)))
        published = {t for t, _, _ in device_topics.messages}
        for key, config in by_key.items():
            assert named_topics(config) <= published, (key, named_topics(config) - published)

        # The configs carry no biometric data: no name, person id or encoding.
        for _, payload, _ in discovery.messages:
            assert X_NAME.encode() not in payload and b"Chr" not in payload and X.encode() not in payload
            assert b"encoding" not in payload

        # Their templates, rendered as Home Assistant would, on what the door really sent.
        unlock = next(p for p in device_topics.payloads(events_topic) if json.loads(p)["event"] == "unlock")
        unknown = next(p for p in device_topics.payloads(events_topic) if json.loads(p)["event"] == "unknown_face")
        health_payload = next(p for p in reversed(device_topics.payloads(health)) if json.loads(p)["fps"] > 0)
        check_event_entity(by_key["recognition"], unlock, unknown)
        check_last_person(by_key["last_person"], unlock, unknown)
        check_health_entities(by_key, health_payload)
    finally:
        device_topics.close()


def retained_configs(broker, prefix: str):
    """Waits until the broker holds a config of every entity under ``prefix`` (None if it never does)."""
    probe = Probe(broker, f"{prefix}/#")
    try:
        return probe.messages if probe.wait_for(lambda p: len(p.messages) >= len(ha.ENTITIES)) else None
    finally:
        probe.close()


def check_event_entity(config: dict, unlock: bytes, unknown: bytes) -> None:
    """Home Assistant parses the rendered JSON, pops event_type (one of event_types), and keeps
    the rest as the event's attributes."""
    for payload, kind in ((unlock, "unlock"), (unknown, "unknown_face")):
        rendered = json.loads(render(config["value_template"], payload))
        assert rendered.pop("event_type") == kind and kind in config["event_types"]
        assert rendered == json.loads(payload), "every field of the event is an attribute"
    assert json.loads(render(config["value_template"], unlock))["name"] == X_NAME


def check_last_person(config: dict, unlock: bytes, unknown: bytes) -> None:
    assert config["json_attributes_topic"] == config["state_topic"]
    assert render(config["value_template"], unlock) == X_NAME
    attributes = json.loads(render(config["json_attributes_template"], unlock))
    assert attributes == {"person_id": X, "ts": json.loads(unlock)["ts"]}
    # An unknown face is not a person: the state and the attributes stay as they were.
    assert render(config["value_template"], unknown, state=X_NAME) == X_NAME
    assert json.loads(render(config["json_attributes_template"], unknown, attributes=attributes)) == attributes


def check_health_entities(by_key: dict, health: bytes) -> None:
    h = json.loads(health)
    camera = by_key["camera"]
    assert render(camera["value_template"], health) == camera["payload_on"]
    camera_down = json.dumps({**h, "source": {**h["source"], "healthy": False}}).encode()
    assert render(camera["value_template"], camera_down) == camera["payload_off"]
    assert float(render(by_key["frame_rate"]["value_template"], health)) == h["fps"] > 0
    assert render(by_key["gallery_size"]["value_template"], health) == "1"
    assert render(by_key["model_id"]["value_template"], health) == "pixel-test"
    liveness = by_key["liveness_rejections"]
    assert h["liveness"] == {"mode": "off"}
    assert render(liveness["value_template"], health) == "None", "Home Assistant's unknown: nothing is checked"
    assert json.loads(render(liveness["json_attributes_template"], health)) == {"mode": "off"}
    # With liveness on, the health record carries the gate's counters.
    gate = LivenessGate("blink", [SimpleNamespace(name="blink")], 5.0)
    gate.counters.rejected_presentations = 4
    with_liveness = json.dumps({**h, "liveness": gate.health()}).encode()
    assert render(liveness["value_template"], with_liveness) == "4"
    assert json.loads(render(liveness["json_attributes_template"], with_liveness)) == {"mode": "blink"}


def test_the_configs_come_back_after_the_broker_lost_them(tmp_path, volatile_broker, face_fixtures):
    """Published on every connection: a broker restarted without persistence has them again
    once the door has reconnected."""
    frames_of_x_then_y(face_fixtures, tmp_path / "frames")
    cfg = service_config(tmp_path, volatile_broker, source={"loop": True, "fps": 5.0}, mqtt={"sync_wait_s": 0.0})
    running = ServiceThread(Service(cfg, encoder=PixelEncoder()))
    mine = f"/door1/facegate_{cfg.device.site}_"

    def configs_held(probe):
        return [retain for topic, _, retain in probe.messages if mine in topic]

    try:
        first = Probe(volatile_broker, "homeassistant/#")
        assert first.wait_for(lambda p: len(configs_held(p)) == len(ha.ENTITIES))
        first.close()
        volatile_broker.restart()
        assert running.wait_until(lambda s: s.sync.link.connect_count >= 2 and s.sync.link.connected, timeout=20)
        again = Probe(volatile_broker, "homeassistant/#")
        assert again.wait_for(lambda p: len(configs_held(p)) == len(ha.ENTITIES)), again.messages
        again.close()
        third = Probe(volatile_broker, "homeassistant/#")
        assert third.wait_for(lambda p: len(configs_held(p)) == len(ha.ENTITIES))
        assert all(configs_held(third)), "retained"
        third.close()
    finally:
        running.stop()


def test_with_discovery_off_the_door_publishes_no_config(tmp_path, broker, face_fixtures):
    frames_of_x_then_y(face_fixtures, tmp_path / "frames")
    cfg = service_config(tmp_path, broker, source={"loop": True, "fps": 15.0}, mqtt={"sync_wait_s": 0.0},
                         homeassistant={"discovery": False})
    site = cfg.device.site
    probe = Probe(broker, "homeassistant/#", f"facegate/{site}/device/door1/#")
    running = ServiceThread(Service(cfg, encoder=PixelEncoder()))
    try:
        assert probe.wait_for(lambda p: len(p.payloads(health_topic(site, "door1"))) >= 3)
        time.sleep(0.5)
        assert not [t for t, _, _ in probe.messages if t.startswith("homeassistant/") and site in t]
        assert running.service.sync.link.retained == ()
    finally:
        running.stop()
        probe.close()
