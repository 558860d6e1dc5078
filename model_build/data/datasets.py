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
    singleton_identities: int = 0
    excluded_identities: int = 0
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


def _cache_path(cache_dir: Path, root: Path, size: int) -> Path:
    detector = hashlib.sha256(DETECTOR_PATH.read_bytes()).hexdigest()[:8]
    key = hashlib.sha256(f"{root.resolve()}|{size}|{PREPROCESSING_VERSION}|{detector}".encode())
    return cache_dir / f"{root.name}-{size}-{key.hexdigest()[:12]}.npz"


def align_folder(root: str | Path, size: int, cache_dir: str | Path | None = None,
                 progress: bool = True) -> FaceDataset:
    """Detect and align every image under root (all identities, singletons included).

    Unreadable images and images without a face are skipped and counted.
    """
    root = Path(root)
    people = scan_identities(root)
    cache = _cache_path(Path(cache_dir), root, size) if cache_dir else None
    if cache and cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            skipped = SkipCounts(unreadable=int(z["unreadable"]), no_face=int(z["no_face"]))
            log.info("loaded %d cached crops from %s", len(z["labels"]), cache)
            return FaceDataset(z["crops"], z["labels"], list(z["names"]), list(z["paths"]),
                               str(root), skipped)
    detector = FaceDetector()
    crops, labels, paths, skipped = [], [], [], SkipCounts()
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
    names = list(people)
    data = FaceDataset(np.stack(crops) if crops else np.zeros((0, size, size), np.uint8),
                       np.asarray(labels, np.int32), names, paths, str(root), skipped)
    if cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, crops=data.crops, labels=data.labels, names=np.asarray(names),
                 paths=np.asarray(paths), unreadable=skipped.unreadable, no_face=skipped.no_face)
        tmp.replace(cache)
    log.info("%s: %d crops of %d images; skipped %d unreadable, %d without a face",
             root, len(data), len(items), skipped.unreadable, skipped.no_face)
    for example in skipped.examples:
        log.debug("skipped %s", example)
    return data


def select_identities(data: FaceDataset, min_images: int = 2,
                      exclude: set[str] | None = None) -> FaceDataset:
    """Keep identities with at least min_images crops that are not excluded; relabel 0..n-1."""
    exclude = exclude or set()
    counts = np.bincount(data.labels, minlength=data.num_identities)
    skipped = SkipCounts(**{k: v for k, v in vars(data.skipped).items() if k != "examples"})
    keep_ids = []
    for i, name in enumerate(data.names):
        if name in exclude:
            skipped.excluded_identities += 1
        elif counts[i] < min_images:
            skipped.singleton_identities += counts[i] > 0
        else:
            keep_ids.append(i)
    remap = np.full(data.num_identities, -1, np.int32)
    remap[keep_ids] = np.arange(len(keep_ids), dtype=np.int32)
    mask = remap[data.labels] >= 0
    return FaceDataset(data.crops[mask], remap[data.labels[mask]], [data.names[i] for i in keep_ids],
                       [p for p, m in zip(data.paths, mask) if m], data.source, skipped)


def merge(datasets: list[FaceDataset]) -> FaceDataset:
    """Concatenate datasets; identity names are prefixed by their source folder."""
    crops, labels, names, paths, offset = [], [], [], [], 0
    skipped = SkipCounts()
    for d in datasets:
        crops.append(d.crops)
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
                       "+".join(d.source for d in datasets), skipped)


def load_training_set(roots: list[str | Path], size: int, cache_dir: str | Path | None,
                      min_images: int = 2, exclude: set[str] | None = None,
                      progress: bool = True) -> FaceDataset:
    """Align, filter and merge several folder-per-identity datasets for training."""
    parts = []
    for root in roots:
        data = select_identities(align_folder(root, size, cache_dir, progress), min_images, exclude)
        log.info("%s: using %d images of %d identities (skipped %d singleton, %d excluded identities)",
                 root, len(data), data.num_identities, data.skipped.singleton_identities,
                 data.skipped.excluded_identities)
        parts.append(data)
    data = merge(parts)
    if len(data) == 0 or data.num_identities < 2:
        raise DatasetError(
            f"no usable training data in {', '.join(map(str, roots))}: need at least two "
            f"identities with {min_images}+ images that contain a detectable face "
            f"(skipped: {data.summary()['skipped']})")
    return data


def _progress(items, desc, enabled):
    if not enabled:
        return items
    try:
        from tqdm import tqdm
    except ImportError:
        return items
    return tqdm(items, desc=desc, unit="img", mininterval=2.0)
