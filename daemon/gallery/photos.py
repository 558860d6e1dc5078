"""Seeding the gallery from a folder of enrollment photos (the standalone mode).

Layout: ``DIR/<person_id>/*.jpg`` -- one sub-folder per person, the folder name is the
person id (and display name). Each usable photo gives one encoding. Bad photos are
skipped with a logged reason; they never stop the daemon.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from daemon.gallery.store import Gallery
from daemon.images import IMAGE_SUFFIXES, ImageError, load_image
from daemon.protocol.person import MAX_ENCODINGS, PersonRecord, valid_person_id

log = logging.getLogger(__name__)


class PhotoRejected(ValueError):
    """A photo that has no usable face; the message says why."""


# Turns a decoded image into one unit embedding (D,), or raises PhotoRejected.
PhotoEmbedder = Callable[[np.ndarray], np.ndarray]


@dataclass
class SeedReport:
    added: list[str] = field(default_factory=list)       # person ids (re)written
    unchanged: list[str] = field(default_factory=list)   # already stored with these photos and model
    skipped_people: dict[str, str] = field(default_factory=dict)  # id/folder -> reason
    skipped_photos: dict[str, str] = field(default_factory=dict)  # path -> reason


def _photos(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def photos_version(folder: Path, photos: list[Path]) -> int:
    """A version that grows whenever the folder's photos change: the newest mtime in ms
    (the folder's own mtime moves when a photo is removed)."""
    newest = max([folder.stat().st_mtime_ns] + [p.stat().st_mtime_ns for p in photos])
    return max(1, newest // 1_000_000)


def seed_from_photos(gallery: Gallery, photos_dir: str | Path, embed: PhotoEmbedder,
                     model_id: str, now: Callable[[], float] = time.time) -> SeedReport:
    """Add or refresh one record per person sub-folder. Idempotent: unchanged folders
    are not re-embedded, so a restart costs a directory listing, not a model run."""
    root = Path(photos_dir)
    if not root.is_dir():
        raise ValueError(f"gallery photos folder not found: {root}")
    report = SeedReport()
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        person_id = folder.name
        if not valid_person_id(person_id):
            report.skipped_people[person_id] = ("folder name is not a valid person id "
                                                "(letters, digits, '_', '.', '-'; at most 64)")
            log.warning("gallery photos: skipping %s: %s", folder, report.skipped_people[person_id])
            continue
        photos = _photos(folder)
        version = photos_version(folder, photos)
        stored = gallery.get(person_id)
        if stored is not None and stored.deleted:
            # A revocation wins over a photo folder left behind on the device.
            report.skipped_people[person_id] = f"revoked (tombstone v{stored.version})"
            log.warning("gallery photos: %s was revoked (tombstone v%d); not re-enrolling from %s",
                        person_id, stored.version, folder)
            continue
        if stored is not None and stored.model_id == model_id and stored.version >= version:
            report.unchanged.append(person_id)
            continue
        encodings = []
        for photo in photos[:MAX_ENCODINGS]:
            try:
                encodings.append(np.asarray(embed(load_image(photo)), np.float32))
            except (ImageError, PhotoRejected) as exc:
                reason = str(exc).removeprefix(f"{photo}: ")
                report.skipped_photos[str(photo)] = reason
                log.warning("gallery photos: skipping %s: %s", photo, reason)
        if len(photos) > MAX_ENCODINGS:
            log.warning("gallery photos: %s has %d photos; using the first %d", folder, len(photos),
                        MAX_ENCODINGS)
        if not encodings:
            report.skipped_people[person_id] = "no usable photo"
            log.warning("gallery photos: %s has no usable photo; %s not enrolled", folder, person_id)
            continue
        if stored is not None and stored.version >= version:  # same photos, new model
            version = stored.version + 1
        record = PersonRecord(person_id=person_id, version=version, model_id=model_id,
                              name=person_id.replace("_", " "), encodings=np.stack(encodings),
                              updated_at=now())
        if gallery.apply(record):
            report.added.append(person_id)
            log.info("gallery photos: enrolled %s from %d photo(s)", person_id, len(encodings))
        else:
            report.unchanged.append(person_id)
    return report
