"""Event payloads, the stdout JSON-lines sink and the persisted outbox."""

from __future__ import annotations

import io
import json
import uuid
from datetime import datetime, timezone

from daemon.events import StdoutSink, unknown_face_event, unlock_event
from daemon.events.outbox import FILENAME, Outbox


def make_unlock(**changes):
    fields = dict(device_id="door1", site="home", person_id="alice", name="Alice", distance=0.61234567,
                  frames_voted=3, model_id="m1", ts=1700000000.25)
    fields.update(changes)
    return unlock_event(**fields)


def test_unlock_event_has_the_documented_fields():
    e = make_unlock()
    assert set(e) == {"event", "event_id", "device_id", "site", "person_id", "name", "distance",
                      "frames_voted", "model_id", "ts"}
    assert e["event"] == "unlock" and e["person_id"] == "alice" and e["distance"] == 0.6123
    assert uuid.UUID(e["event_id"]).version == 4
    assert e["ts"] == "2023-11-14T22:13:20.250Z"
    assert datetime.fromisoformat(e["ts"]) == datetime.fromtimestamp(1700000000.25, timezone.utc)
    assert make_unlock()["event_id"] != e["event_id"]


def test_unknown_face_event_with_an_empty_gallery_has_null_distance():
    e = unknown_face_event(device_id="d", site="s", distance=float("inf"), frames_voted=3, model_id="m", ts=0)
    assert e["event"] == "unknown_face" and e["distance"] is None and "person_id" not in e
    json.dumps(e, allow_nan=False)  # strict JSON: no Infinity


def test_stdout_sink_writes_one_flushed_json_object_per_line():
    class Stream(io.StringIO):
        flushes = 0

        def flush(self):
            Stream.flushes += 1

    stream = Stream()
    sink = StdoutSink(stream)
    sink.emit(make_unlock(name="Zoë\nNewline"))
    sink.emit(make_unlock(person_id="bob"))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and Stream.flushes == 2
    assert [json.loads(line)["person_id"] for line in lines] == ["alice", "bob"]
    assert json.loads(lines[0])["name"] == "Zoë\nNewline"


def test_outbox_keeps_undelivered_events_across_restarts_in_order(tmp_path):
    box = Outbox.open(tmp_path)
    for i in range(3):
        box.add(f"e{i}", f"payload {i}".encode())
    box.add("e1", b"duplicate id is ignored")
    box.remove("e0")
    box.close()
    box = Outbox.open(tmp_path)
    assert box.pending() == [("e1", b"payload 1"), ("e2", b"payload 2")]
    assert len(box) == 2


def test_a_corrupt_outbox_is_kept_aside_and_a_new_one_takes_events(tmp_path):
    (tmp_path / FILENAME).write_bytes(b"not an outbox" * 100)
    box = Outbox.open(tmp_path)
    box.add("e1", b"payload")
    assert box.pending() == [("e1", b"payload")]
    kept = list(tmp_path.glob(FILENAME + ".corrupt-*"))
    assert len(kept) == 1 and kept[0].read_bytes().startswith(b"not an outbox"), "kept for recovery by hand"


def test_outbox_drops_the_oldest_when_full(tmp_path, caplog):
    box = Outbox(tmp_path / "o.sqlite3", max_events=3)
    for i in range(5):
        box.add(f"e{i}", b"x")
    assert [e for e, _ in box.pending()] == ["e2", "e3", "e4"]
    assert "dropping the 1 oldest" in caplog.text
