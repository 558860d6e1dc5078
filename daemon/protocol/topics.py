"""The MQTT topic tree (documented with every payload in docs/mqtt.md).

    facegate/<site>/enroll/<model_id>/<person_id>  retained, server -> devices: signed person record
    facegate/<site>/revoke/<person_id>             retained, server -> devices: signed tombstone
    facegate/<site>/manifest/<model_id>            retained, server -> devices: signed site manifest
    facegate/<site>/manifest/<model_id>/<page>     retained, server -> devices: a manifest page
    facegate/<site>/device/<device_id>/event       QoS 1, not retained: unlock / unknown_face events
    facegate/<site>/device/<device_id>/status      retained "online" / "offline" (Last Will)
    facegate/<site>/device/<device_id>/health      retained, periodic health record

Person records are keyed by model: during a model upgrade the old-model and the
new-model record of a person coexist, and each device subscribes only to the model it
runs. A tombstone is keyed by person only, so one message revokes every model. The
manifest (daemon/protocol/manifest.py) lists, per model, the version of every record and
tombstone a device may apply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ROOT = "facegate"
ENROLL = "enroll"
REVOKE = "revoke"
MANIFEST = "manifest"
MAX_PAGES = 256  # manifest pages per model: 256 x 2 000 entries is far more than any site needs
# Site, device and person ids are topic levels: no '/', '+', '#', spaces.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
# Model ids are a topic level too (export writes "fg-<16 hex>").
MODEL_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")


def valid_name(value: object) -> bool:
    return isinstance(value, str) and NAME_PATTERN.fullmatch(value) is not None


def valid_model_id(value: object) -> bool:
    return isinstance(value, str) and MODEL_ID_PATTERN.fullmatch(value) is not None


def enroll_topic(site: str, model_id: str, person_id: str) -> str:
    return f"{ROOT}/{site}/{ENROLL}/{model_id}/{person_id}"


def enroll_filter(site: str, model_id: str = "+") -> str:
    """What a device subscribes to: every person record of its site for its model."""
    return f"{ROOT}/{site}/{ENROLL}/{model_id}/+"


def revoke_topic(site: str, person_id: str) -> str:
    return f"{ROOT}/{site}/{REVOKE}/{person_id}"


def revoke_filter(site: str) -> str:
    return f"{ROOT}/{site}/{REVOKE}/+"


def manifest_topic(site: str, model_id: str) -> str:
    return f"{ROOT}/{site}/{MANIFEST}/{model_id}"


def manifest_page_topic(site: str, model_id: str, page: int) -> str:
    return f"{ROOT}/{site}/{MANIFEST}/{model_id}/{page}"


def manifest_filters(site: str, model_id: str = "+") -> tuple[str, str]:
    """The manifest of ``model_id`` and its pages."""
    return f"{ROOT}/{site}/{MANIFEST}/{model_id}", f"{ROOT}/{site}/{MANIFEST}/{model_id}/+"


def device_topic(site: str, device_id: str, leaf: str) -> str:
    return f"{ROOT}/{site}/device/{device_id}/{leaf}"


def event_topic(site: str, device_id: str) -> str:
    return device_topic(site, device_id, "event")


def status_topic(site: str, device_id: str) -> str:
    return device_topic(site, device_id, "status")


def health_topic(site: str, device_id: str) -> str:
    return device_topic(site, device_id, "health")


@dataclass(frozen=True)
class SyncTopic:
    """An enrollment-sync topic taken apart. ``model_id`` is empty for a revoke topic;
    ``person_id`` is empty for a manifest topic, whose ``page`` is -1 for the signed top."""

    site: str
    kind: str          # ENROLL, REVOKE or MANIFEST
    person_id: str
    model_id: str = ""
    page: int = -1


def _page_number(level: str) -> int:
    # Canonical decimal only ("7", not "07" or "+7"), so a page has exactly one topic.
    if level.isdigit() and level.isascii() and str(int(level)) == level and int(level) < MAX_PAGES:
        return int(level)
    return -1


def parse_sync_topic(topic: str) -> SyncTopic | None:
    """The parts of a well-formed enroll, revoke or manifest topic, or None for anything else."""
    parts = topic.split("/")
    if len(parts) < 4 or parts[0] != ROOT or not valid_name(parts[1]):
        return None
    if parts[2] == ENROLL and len(parts) == 5 and valid_model_id(parts[3]) and valid_name(parts[4]):
        return SyncTopic(parts[1], ENROLL, parts[4], parts[3])
    if parts[2] == REVOKE and len(parts) == 4 and valid_name(parts[3]):
        return SyncTopic(parts[1], REVOKE, parts[3])
    if parts[2] == MANIFEST and len(parts) in (4, 5) and valid_model_id(parts[3]):
        if len(parts) == 4:
            return SyncTopic(parts[1], MANIFEST, "", parts[3])
        page = _page_number(parts[4])
        return SyncTopic(parts[1], MANIFEST, "", parts[3], page) if page >= 0 else None
    return None
