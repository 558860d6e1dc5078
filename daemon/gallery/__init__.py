"""The gallery: enrolled people and their precomputed encodings, persisted on the device.

What it stores is daemon.protocol.person.PersonRecord, as the enrollment server sent it.
"""

from daemon.gallery.photos import PhotoRejected, SeedReport, seed_from_photos
from daemon.gallery.store import FILENAME, Gallery, GalleryError

__all__ = ["FILENAME", "Gallery", "GalleryError", "PhotoRejected", "SeedReport", "seed_from_photos"]
