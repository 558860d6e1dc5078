"""The liveness development data (``../shared/data/liveness``) as labelled samples and
face-with-context crops.

Layout (see the data README):

- ``nuaa/real/<subject>/<subject>_<glasses>_<position>_<session>_<picture>.jpg`` and
  ``nuaa/print_attack/<subject>/...``: NUAA Photograph Imposter Database (Tan et al.,
  ECCV 2010); frames of one session in picture order form a sequence.
- ``msu/real/real_client<id>_...jpg`` and ``msu/attack/attack_client<id>_..._<species>_...jpg``:
  MSU-MFSD (Wen, Han and Jain, IEEE TIFS 2015), one frame per video.

Crops are cut with the runtime's own :func:`daemon.liveness.passive.pad_crop` around the
largest face the runtime's detector finds, and cached as one ``.npz`` per sample list.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from daemon.faces.detect import DETECTOR_PATH, FaceDetector
from daemon.images import ImageError, load_image
from daemon.liveness.passive import PREPROCESSING, pad_crop

log = logging.getLogger(__name__)
DATASETS = ("nuaa", "msu")
# MSU-MFSD's Android frames are stored 720x480 but were filmed 4:3: faces look stretched
# sideways. Squeezing the width to 640 restores round faces, as a door camera sees them.
MSU_WIDTH = 640
_NUAA_NAME = re.compile(r"^(\d{4})_(\d{2})_(\d{2})_(\d{2})_(\d+)$")
_MSU_NAME = re.compile(r"^(real|attack)_client(\d+)_.*?(printed_photo|ipad_video|iphone_video)?_scene\d+$")
_MSU_SPECIES = {"printed_photo": "print", "ipad_video": "ipad_video", "iphone_video": "iphone_video"}


class LivenessDataError(ValueError):
    """The liveness data folder is missing or not laid out as expected."""


@dataclass(frozen=True)
class Sample:
    path: str       # relative to the data root
    live: bool
    dataset: str    # nuaa | msu
    subject: str    # NUAA subject id, MSU client id
    species: str    # "" for bona fide, else the attack (PAI species): print, ipad_video, iphone_video
    sequence: str   # NUAA: subject_glasses_position_session; MSU: the video
    frame: int      # NUAA picture number within the session (20 fps); 0 for MSU


def list_samples(root: str | Path, datasets=DATASETS) -> list[Sample]:
    """Every usable image of the named datasets, in a stable order."""
    root = Path(root)
    samples = []
    if "nuaa" in datasets:
        for kind, live in (("real", True), ("print_attack", False)):
            for path in sorted((root / "nuaa" / kind).glob("*/*.jpg")):
                m = _NUAA_NAME.match(path.stem)
                if m is None:
                    raise LivenessDataError(f"unexpected NUAA file name {path}")
                subject, glasses, position, session, picture = m.groups()
                samples.append(Sample(str(path.relative_to(root)), live, "nuaa", subject, "" if live else "print",
                                      f"{subject}_{glasses}_{position}_{session}", int(picture)))
    if "msu" in datasets:
        for kind in ("real", "attack"):
            for path in sorted((root / "msu" / kind).glob("*.jpg")):
                m = _MSU_NAME.match(path.stem)
                if m is None:
                    raise LivenessDataError(f"unexpected MSU-MFSD file name {path}")
                live = m.group(1) == "real"
                if not live and m.group(3) is None:
                    raise LivenessDataError(f"MSU-MFSD attack without a known type: {path}")
                samples.append(Sample(str(path.relative_to(root)), live, "msu", m.group(2),
                                      "" if live else _MSU_SPECIES[m.group(3)], path.stem, 0))
    if not samples:
        raise LivenessDataError(f"no liveness images of {', '.join(datasets)} under {root}")
    return samples


def load_frame(root: str | Path, sample: Sample) -> np.ndarray:
    """The frame as a door camera would give it (BGR; MSU un-stretched)."""
    image = load_image(Path(root) / sample.path)
    if sample.dataset == "msu" and image.shape[1] != MSU_WIDTH:
        image = cv2.resize(image, (MSU_WIDTH, image.shape[0]), interpolation=cv2.INTER_AREA)
    return image


@dataclass
class CropSet:
    crops: np.ndarray        # (N, S, S, 3) uint8 RGB
    samples: list[Sample]    # the samples with a face, in the same order
    no_face: list[str]       # paths where the detector found nothing

    @property
    def live(self) -> np.ndarray:
        return np.array([s.live for s in self.samples], bool)

    @property
    def species(self) -> np.ndarray:
        return np.array([s.species for s in self.samples], object)

    def subset(self, keep) -> "CropSet":
        keep = np.asarray(keep, bool)
        return CropSet(self.crops[keep], [s for s, k in zip(self.samples, keep) if k], self.no_face)


def _cache_key(samples: list[Sample], size: int) -> str:
    h = hashlib.sha256(f"{PREPROCESSING}|{size}|{MSU_WIDTH}".encode())
    h.update(Path(DETECTOR_PATH).read_bytes())
    for s in samples:
        h.update(s.path.encode() + b"\0")
    return h.hexdigest()[:16]


def load_crops(root: str | Path, samples: list[Sample], size: int, cache_dir: str | Path | None = None,
               detector: FaceDetector | None = None) -> CropSet:
    """Face-with-context crops of the largest face in each sample (cached)."""
    cache = Path(cache_dir) / f"liveness-{_cache_key(samples, size)}.npz" if cache_dir else None
    if cache is not None and cache.is_file():
        data = np.load(cache, allow_pickle=False)
        keep = set(data["paths"].tolist())
        return CropSet(data["crops"], [s for s in samples if s.path in keep], data["no_face"].tolist())
    detector = detector or FaceDetector()
    crops, kept, no_face = [], [], []
    for s in samples:
        try:
            image = load_frame(root, s)
        except ImageError as exc:
            log.warning("skipping %s: %s", s.path, exc)
            no_face.append(s.path)
            continue
        faces = detector.detect(image)
        if not faces:
            no_face.append(s.path)
            continue
        face = max(faces, key=lambda f: f.width * f.height)
        crops.append(pad_crop(image, face.landmarks[0], face.landmarks[1], size))
        kept.append(s)
    if no_face:
        log.info("no face found in %d of %d images (e.g. %s)", len(no_face), len(samples), no_face[:3])
    result = CropSet(np.stack(crops) if crops else np.zeros((0, size, size, 3), np.uint8), kept, no_face)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, crops=result.crops, paths=np.array([s.path for s in kept]), no_face=np.array(no_face))
    return result
