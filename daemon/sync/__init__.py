"""Enrollment sync and the MQTT link: records in, events/status/health out.

``records`` (strict validation), ``signing`` (Ed25519) and ``publish`` (building
messages) are pure; ``broker`` holds the connection settings (TLS, credentials) and
``link`` the device's paho client.
"""

from daemon.sync.publish import person_record, tombstone, version_now
from daemon.sync.records import RecordError, parse_enrollment
from daemon.sync.signing import Trust

__all__ = ["RecordError", "Trust", "parse_enrollment", "person_record", "tombstone", "version_now"]
