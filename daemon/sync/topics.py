"""The MQTT topic tree (documented with every payload in docs/mqtt.md).

    facegate/<site>/enroll/<person_id>          retained, server -> devices: person record or tombstone
    facegate/<site>/device/<device_id>/event    QoS 1, not retained: unlock / unknown_face events
    facegate/<site>/device/<device_id>/status   retained "online" / "offline" (Last Will)
    facegate/<site>/device/<device_id>/health   retained, periodic health record
"""

from __future__ import annotations

import re

ROOT = "facegate"
# Site and device ids are topic levels: no '/', '+', '#', spaces.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")


def valid_name(value: object) -> bool:
    return isinstance(value, str) and NAME_PATTERN.fullmatch(value) is not None


def enroll_topic(site: str, person_id: str) -> str:
    return f"{ROOT}/{site}/enroll/{person_id}"


def enroll_filter(site: str) -> str:
    """What a device subscribes to: every person record of its site."""
    return f"{ROOT}/{site}/enroll/+"


def device_topic(site: str, device_id: str, leaf: str) -> str:
    return f"{ROOT}/{site}/device/{device_id}/{leaf}"


def event_topic(site: str, device_id: str) -> str:
    return device_topic(site, device_id, "event")


def status_topic(site: str, device_id: str) -> str:
    return device_topic(site, device_id, "status")


def health_topic(site: str, device_id: str) -> str:
    return device_topic(site, device_id, "health")
