"""The gallery: enrolled people and their precomputed encodings, persisted on the device."""

from daemon.gallery.photos import PhotoRejected, SeedReport, seed_from_photos
from daemon.protocol.person import MAX_ENCODINGS, PersonRecord, valid_person_id
from daemon.gallery.store import FILENAME, Gallery, GalleryError

__all__ = ["FILENAME", "MAX_ENCODINGS", "Gallery", "GalleryError", "PersonRecord", "PhotoRejected",
           "SeedReport", "seed_from_photos", "valid_person_id"]
