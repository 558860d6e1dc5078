"""Enrollment sync and the MQTT link: records in, events/status/health out.

``records`` (strict validation) and ``publish`` (building payloads) are pure; ``link``
holds the paho client.
"""

from daemon.sync.records import RecordError, parse_enrollment
from daemon.sync.publish import person_record_payload, tombstone_payload

__all__ = ["RecordError", "parse_enrollment", "person_record_payload", "tombstone_payload"]
