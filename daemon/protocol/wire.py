"""How every facegate message is written: compact UTF-8 JSON, times as ISO 8601 UTC."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone


def compact_json(body) -> bytes:
    """The bytes of a message body: no spaces, UTF-8 as it is (names are not escaped)."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def iso_utc(epoch: float | None = None) -> str:
    """ISO 8601 UTC with milliseconds and a 'Z', e.g. '2025-01-31T12:00:00.123Z'."""
    when = datetime.fromtimestamp(time.time() if epoch is None else epoch, timezone.utc)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")

