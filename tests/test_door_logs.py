"""What the door daemon logs for a person who wants to know why it did (not) open."""

from __future__ import annotations

import io
import logging

from daemon.door.service import Service
from daemon_helpers import PixelEncoder, copy_photos, person_photos, service_config

X, Y = "Jean_Chretien", "Serena_Williams"


def test_verbose_logs_one_line_per_face_with_its_match_distance_and_margin(tmp_path, face_fixtures, caplog):
    people = tmp_path / "people"
    for pid in (X, "Vladimir_Putin"):
        copy_photos(person_photos(face_fixtures, pid)[:3], people / pid)
    # An enrolled photo seen again (PixelEncoder: distance ~0), then a stranger.
    copy_photos(person_photos(face_fixtures, X)[:1] + person_photos(face_fixtures, Y)[:1], tmp_path / "frames")
    service = Service(service_config(tmp_path, gallery={"photos": str(people)}), encoder=PixelEncoder(),
                      stdout=io.StringIO())
    service.start()
    try:
        with caplog.at_level(logging.DEBUG, logger="daemon.door.service"):
            service.run(exit_at_end=True)
    finally:
        service.close()
    faces = [r.getMessage() for r in caplog.records if r.getMessage().startswith("face ")]
    assert len(faces) == 2 == service.counters.faces
    assert faces[0].startswith(f"face 1/1: match {X}: distance 0.0") and "next Vladimir_Putin at" in faces[0]
    assert "margin" in faces[0] and "<= threshold 0.500" in faces[0]
    assert faces[1].startswith("face 1/1: unknown ") and "> threshold 0.500" in faces[1] and "margin" in faces[1]


def test_without_verbose_no_per_face_lines(tmp_path, face_fixtures, caplog):
    copy_photos(person_photos(face_fixtures, X)[:1], tmp_path / "people" / X)
    copy_photos(person_photos(face_fixtures, X)[:1], tmp_path / "frames")
    service = Service(service_config(tmp_path, gallery={"photos": str(tmp_path / "people")}),
                      encoder=PixelEncoder(), stdout=io.StringIO())
    service.start()
    try:
        with caplog.at_level(logging.INFO):
            service.run(exit_at_end=True)
    finally:
        service.close()
    assert service.counters.faces == 1
    assert not [r for r in caplog.records if r.getMessage().startswith("face ")]
