"""The gallery: versioned records, tombstones, persistence, crash safety, photo seeding."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

from daemon.gallery import Gallery, PhotoRejected, seed_from_photos
from daemon.gallery.store import FILENAME
from daemon.protocol.person import PersonRecord
from daemon_helpers import unit_vectors

REPO = Path(__file__).resolve().parent.parent


def person(pid: str, version: int, k: int = 2, model: str = "m1", seed: int = 0) -> PersonRecord:
    return PersonRecord(person_id=pid, version=version, model_id=model, name=pid.title(),
                        encodings=unit_vectors(k, seed=seed), updated_at=1000.0 + version)


def test_apply_accepts_only_strictly_newer_versions(tmp_path):
    g = Gallery.open(tmp_path)
    assert g.apply(person("alice", 2, seed=1))
    assert not g.apply(person("alice", 2, seed=2)), "an equal version is a replay"
    assert not g.apply(person("alice", 1, seed=3)), "an older version arrived late"
    np.testing.assert_array_equal(g.get("alice").encodings, unit_vectors(2, seed=1))
    assert g.apply(person("alice", 3, seed=4))
    np.testing.assert_array_equal(g.get("alice").encodings, unit_vectors(2, seed=4))


def test_records_survive_reopen_bit_for_bit(tmp_path):
    g = Gallery.open(tmp_path)
    g.apply(person("alice", 5, k=3, seed=1))
    g.apply(person("bob", 1, k=1, model="other-model", seed=2))
    g.close()
    g = Gallery.open(tmp_path)
    assert [r.person_id for r in g.people()] == ["alice", "bob"]
    alice = g.get("alice")
    assert (alice.version, alice.name, alice.model_id, alice.updated_at) == (5, "Alice", "m1", 1005.0)
    assert alice.encodings.dtype == np.float32
    np.testing.assert_array_equal(alice.encodings, unit_vectors(3, seed=1))
    assert g.get("bob").model_id == "other-model"


def test_tombstone_revokes_and_blocks_a_replayed_older_upsert_after_restart(tmp_path):
    g = Gallery.open(tmp_path)
    g.apply(person("alice", 1))
    assert g.apply(PersonRecord.tombstone("alice", 2))
    assert len(g) == 0 and g.people() == []
    g.close()
    g = Gallery.open(tmp_path)
    assert g.get("alice").deleted
    assert not g.apply(person("alice", 1)), "the stale upsert must not resurrect a revoked person"
    assert len(g) == 0
    assert g.apply(person("alice", 3)), "re-enrolling with a newer version works"
    assert [r.person_id for r in g.people()] == ["alice"]


def test_a_tombstone_for_an_unknown_person_is_kept(tmp_path):
    g = Gallery.open(tmp_path)
    assert g.apply(PersonRecord.tombstone("mallory", 7))
    assert not g.apply(person("mallory", 6))
    assert len(g) == 0


def test_generation_changes_only_when_something_was_applied(tmp_path):
    g = Gallery.open(tmp_path)
    before = g.generation
    g.apply(person("alice", 1))
    after = g.generation
    g.apply(person("alice", 1))
    assert before != after == g.generation


def test_committed_record_survives_a_crash(tmp_path):
    """A process that dies right after apply() (no close, no flush) loses nothing."""
    script = textwrap.dedent(f"""
        import os, sys, numpy as np
        sys.path.insert(0, {str(REPO)!r})
        from daemon.gallery import Gallery
        from daemon.protocol.person import PersonRecord
        g = Gallery.open({str(tmp_path)!r})
        g.apply(PersonRecord("alice", 4, "m1", "Alice", np.eye(2, 128, dtype=np.float32), 1.0))
        os._exit(1)
    """)
    assert subprocess.run([sys.executable, "-c", script]).returncode == 1
    g = Gallery.open(tmp_path)
    assert g.get("alice").version == 4
    np.testing.assert_array_equal(g.get("alice").encodings, np.eye(2, 128, dtype=np.float32))


def test_journal_is_wal(tmp_path):
    g = Gallery.open(tmp_path)
    assert g._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_corrupt_file_is_moved_aside_and_the_gallery_starts_empty(tmp_path):
    (tmp_path / FILENAME).write_bytes(b"this is not an sqlite database" * 100)
    g = Gallery.open(tmp_path)
    assert len(g) == 0
    assert g.apply(person("alice", 1))
    kept = list(tmp_path.glob(FILENAME + ".corrupt-*"))
    assert len(kept) == 1 and kept[0].read_bytes().startswith(b"this is not")


# ---- seeding from photos (a stand-in embedder: the photo's pixels hashed to a vector) ----

class CountingEmbedder:
    def __init__(self):
        self.calls = 0

    def __call__(self, image: np.ndarray) -> np.ndarray:
        self.calls += 1
        if image.std() < 1:  # a blank picture has no face
            raise PhotoRejected("no face found")
        return unit_vectors(1, seed=int(image.sum()) % 2**32)[0]


@pytest.fixture
def photos(tmp_path, face_fixtures):
    root = tmp_path / "people"
    for pid in ("Jean_Chretien", "Serena_Williams"):
        (root / pid).mkdir(parents=True)
        for src in sorted((face_fixtures / pid).glob("*.jpg"))[:3]:
            (root / pid / src.name).write_bytes(src.read_bytes())
    return root


def test_seeding_enrolls_one_person_per_folder_and_skips_bad_photos(tmp_path, photos, caplog):
    (photos / "Jean_Chretien" / "broken.jpg").write_bytes(b"\xff\xd8not really a jpeg")
    cv2.imwrite(str(photos / "Serena_Williams" / "blank.png"), np.zeros((64, 64), np.uint8))
    (photos / "not a valid id!").mkdir()
    (photos / "Empty_Person").mkdir()
    g = Gallery.open(tmp_path / "state")
    report = seed_from_photos(g, photos, CountingEmbedder(), "m1")
    assert sorted(report.added) == ["Jean_Chretien", "Serena_Williams"]
    assert len(g.get("Jean_Chretien").encodings) == 3 and len(g.get("Serena_Williams").encodings) == 3
    assert g.get("Jean_Chretien").name == "Jean Chretien"
    assert g.get("Jean_Chretien").model_id == "m1"
    reasons = {p.rsplit("/", 1)[-1]: r for p, r in report.skipped_photos.items()}
    assert "not a readable image" in reasons["broken.jpg"]
    assert reasons["blank.png"] == "no face found"
    assert set(report.skipped_people) == {"not a valid id!", "Empty_Person"}
    assert "broken.jpg" in caplog.text and "no face found" in caplog.text


def test_seeding_again_is_free_until_the_photos_or_the_model_change(tmp_path, photos):
    g = Gallery.open(tmp_path / "state")
    seed_from_photos(g, photos, CountingEmbedder(), "m1")
    embed = CountingEmbedder()
    report = seed_from_photos(g, photos, embed, "m1")
    assert embed.calls == 0 and sorted(report.unchanged) == ["Jean_Chretien", "Serena_Williams"]

    old_version = g.get("Jean_Chretien").version
    extra = photos / "Jean_Chretien" / "zz_new.jpg"
    extra.write_bytes(next((photos / "Serena_Williams").glob("*.jpg")).read_bytes())
    os.utime(extra, ns=(extra.stat().st_mtime_ns + 5_000_000_000,) * 2)
    report = seed_from_photos(g, photos, embed, "m1")
    assert report.added == ["Jean_Chretien"]
    assert len(g.get("Jean_Chretien").encodings) == 4 and g.get("Jean_Chretien").version > old_version

    report = seed_from_photos(g, photos, CountingEmbedder(), "m2")
    assert sorted(report.added) == ["Jean_Chretien", "Serena_Williams"]
    assert g.get("Serena_Williams").model_id == "m2"


def test_seeding_does_not_undo_a_revocation(tmp_path, photos):
    g = Gallery.open(tmp_path / "state")
    g.apply(PersonRecord.tombstone("Serena_Williams", 2))  # far below the photos' mtime version
    report = seed_from_photos(g, photos, CountingEmbedder(), "m1")
    assert report.added == ["Jean_Chretien"]
    assert "revoked" in report.skipped_people["Serena_Williams"]
    assert g.get("Serena_Williams").deleted


def test_seeding_a_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="gallery photos folder not found"):
        seed_from_photos(Gallery.open(tmp_path), tmp_path / "nope", CountingEmbedder(), "m1")
