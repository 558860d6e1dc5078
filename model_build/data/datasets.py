"""Folder-per-identity face datasets, aligned once and cached on disk.

``root/<identity>/<image>`` is read with the runtime's own preprocessing
(:func:`daemon.faces.align.prepare_face`), so the encoder trains on exactly the
crops the door device will produce. The aligned crops are cached as one ``.npz``
per dataset so a second run skips detection.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from daemon.faces.align import PREPROCESSING_VERSION, prepare_face
from daemon.faces.detect import DETECTOR_PATH, FaceDetector
from daemon.images import ImageError, load_image

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".ppm", ".webp", ".tif", ".tiff"}


class DatasetError(ValueError):
    """A dataset that cannot be used for training or evaluation."""


@dataclass
class SkipCounts:
    unreadable: int = 0
    no_face: int = 0
    examples: list[str] = field(default_factory=list)

    def note(self, kind: str, path: str, reason: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        if len(self.examples) < 20:
            self.examples.append(f"{path}: {reason}")


@dataclass
class FaceDataset:
    """Aligned uint8 crops (N, S, S) with integer labels and their identity names."""

    crops: np.ndarray
    labels: np.ndarray
    names: list[str]          # identity name per label index
    paths: list[str]          # source image per crop, relative to its root
    source: str = ""
    skipped: SkipCounts = field(default_factory=SkipCounts)
    landmarks: np.ndarray | None = None  # (N, 5, 2) in the source image, to re-warp augmented views

    @property
    def files(self) -> list[Path]:
        """The source image of each crop (absolute), for rendering augmented views."""
        roots = self.source.split("+")
        if len(roots) == 1:
            return [Path(roots[0]) / p for p in self.paths]
        by_name = {Path(r).name: Path(r) for r in roots}  # merged: paths carry their root's name
        return [by_name[p.split("/", 1)[0]] / p.split("/", 1)[1] for p in self.paths]

    def take(self, mask: np.ndarray) -> "FaceDataset":
        """The crops where mask is true (labels and names unchanged)."""
        return FaceDataset(self.crops[mask], self.labels[mask], self.names,
                           [p for p, m in zip(self.paths, mask) if m], self.source, self.skipped,
                           None if self.landmarks is None else self.landmarks[mask])

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_identities(self) -> int:
        return len(self.names)

    def summary(self) -> dict:
        return {"source": self.source, "images": len(self), "identities": self.num_identities,
                "skipped": {k: v for k, v in vars(self.skipped).items() if k != "examples"}}


def scan_identities(root: str | Path) -> dict[str, list[Path]]:
    """identity -> sorted image paths, for every sub-folder of root that holds images."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder not found: {root}")
    found = {}
    for person in sorted(p for p in root.iterdir() if p.is_dir()):
        images = sorted(p for p in person.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if images:
            found[person.name] = images
    if not found:
        raise DatasetError(f"no identity folders with images under {root} "
                           "(expected root/<identity>/<image>.jpg)")
    return found


def _cache_path(cache_dir: Path, root: Path, size: int, people: dict[str, list[Path]]) -> Path:
    """Keyed by the preprocessing, the detector and the folder's contents (names, sizes,
    mtimes), so adding, removing or replacing an image re-aligns the set."""
    key = hashlib.sha256(f"{root.resolve()}|{size}|{PREPROCESSING_VERSION}".encode())
    key.update(hashlib.sha256(DETECTOR_PATH.read_bytes()).digest())
    for path in (p for paths in people.values() for p in paths):
        st = path.stat()
        key.update(f"{path.relative_to(root)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return cache_dir / f"{root.name}-{size}-{key.hexdigest()[:12]}.npz"


def align_folder(root: str | Path, size: int, cache_dir: str | Path | None = None,
                 progress: bool = True) -> FaceDataset:
    """Detect and align every image under root (all identities, singletons included).

    Unreadable images and images without a face are skipped and counted.
    """
    root = Path(root)
    people = scan_identities(root)
    cache = _cache_path(Path(cache_dir), root, size, people) if cache_dir else None
    if cache and cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            skipped = SkipCounts(unreadable=int(z["unreadable"]), no_face=int(z["no_face"]))
            log.info("loaded %d cached crops from %s", len(z["labels"]), cache)
            return FaceDataset(z["crops"], z["labels"], list(z["names"]), list(z["paths"]),
                               str(root), skipped, z["landmarks"])
    detector = FaceDetector()
    crops, labels, paths, points, skipped = [], [], [], [], SkipCounts()
    items = [(i, name, p) for i, (name, ps) in enumerate(people.items()) for p in ps]
    bar = _progress(items, f"aligning {root.name}", progress)
    for label, name, path in bar:
        rel = f"{name}/{path.name}"
        try:
            image = load_image(path)
        except ImageError as exc:
            skipped.note("unreadable", rel, str(exc))
            continue
        aligned = prepare_face(image, detector, size)
        if aligned is None:
            skipped.note("no_face", rel, "no face found")
            continue
        crops.append(aligned.crop)
        labels.append(label)
        paths.append(rel)
        points.append(aligned.face.landmarks)
    names = list(people)
    data = FaceDataset(np.stack(crops) if crops else np.zeros((0, size, size), np.uint8),
                       np.asarray(labels, np.int32), names, paths, str(root), skipped,
                       np.asarray(points, np.float32).reshape(-1, 5, 2))
    if cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, crops=data.crops, labels=data.labels, names=np.asarray(names),
                 paths=np.asarray(paths), landmarks=data.landmarks, unreadable=skipped.unreadable,
                 no_face=skipped.no_face)
        tmp.replace(cache)
    log.info("%s: %d crops of %d images; skipped %d unreadable, %d without a face",
             root, len(data), len(items), skipped.unreadable, skipped.no_face)
    for example in skipped.examples:
        log.debug("skipped %s", example)
    return data


def merge(datasets: list[FaceDataset]) -> FaceDataset:
    """Concatenate datasets; identity names are prefixed by their source folder."""
    crops, labels, names, paths, points, offset = [], [], [], [], [], 0
    skipped = SkipCounts()
    for d in datasets:
        crops.append(d.crops)
        points.append(d.landmarks if d.landmarks is not None else np.full((len(d), 5, 2), np.nan, np.float32))
        labels.append(d.labels + offset)
        prefix = Path(d.source).name
        names += [f"{prefix}/{n}" for n in d.names]
        paths += [f"{prefix}/{p}" for p in d.paths]
        offset += d.num_identities
        for k, v in vars(d.skipped).items():
            if k != "examples":
                setattr(skipped, k, getattr(skipped, k) + v)
    if not crops:
        raise DatasetError("no datasets given")
    return FaceDataset(np.concatenate(crops), np.concatenate(labels), names, paths,
                       "+".join(d.source for d in datasets), skipped, np.concatenate(points))


def _progress(items, desc, enabled):
    if not enabled:
        return items
    try:
        from tqdm import tqdm
    except ImportError:
        return items
    return tqdm(items, desc=desc, unit="img", mininterval=2.0)
