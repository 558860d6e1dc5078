"""The distillation set: every aligned face, its augmented views, and the teacher's
vector for each view, cached on disk per dataset folder.

Rendering the views and labelling them with the teacher is the slow part of a run
(tens of ms per view for a teacher on one core), so both are done once, in chunks
that survive an interrupted run, and shared by every run with the same data, view
config, seed and teacher.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from model_build.data.datasets import FaceDataset
from model_build.data.views import ViewConfig, render_views

log = logging.getLogger(__name__)
CHUNK = 256


@dataclass
class DistillSet:
    """Views (N, V, S, S) uint8 and teacher vectors (N, V, D) for a dataset's crops."""

    data: FaceDataset
    views: np.ndarray
    targets: np.ndarray
    teacher: str

    def take(self, mask: np.ndarray) -> "DistillSet":
        return DistillSet(self.data.take(mask), self.views[mask], self.targets[mask], self.teacher)


def _dataset_key(data: FaceDataset) -> str:
    h = hashlib.sha256()
    h.update(data.crops.tobytes())
    h.update("\n".join(data.paths).encode())
    return h.hexdigest()[:12]


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit="chunk", mininterval=5.0)


def _render_chunk(args) -> tuple[int, np.ndarray]:
    start, files, keys, landmarks, plain, cfg, seed = args
    # A blended view mixes in a face of its own chunk: a fixed set, so a view stays a
    # function of (seed, image, view) and the data, and no process needs every crop. Now and
    # then the face drawn is the image's own, which only softens that view's augmentation.
    return start, np.stack([render_views(f, k, lm, p, cfg, seed, partners=plain)
                            for f, k, lm, p in zip(files, keys, landmarks, plain)])


def _chunked_cache(path: Path, shape: tuple, dtype, fill, items: int, desc: str,
                   workers: int, progress: bool) -> np.ndarray:
    """A .npy memmap filled chunk by chunk by fill(chunk_starts) -> iterator of (start, rows),
    with a sidecar .done file listing finished chunks so an interrupted run resumes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    done_file = path.with_suffix(".done.json")
    done = set(json.loads(done_file.read_text())) if done_file.is_file() and path.is_file() else set()
    out = (np.lib.format.open_memmap(path, mode="r+") if path.is_file() and done
           else np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape))
    todo = [s for s in range(0, items, CHUNK) if s not in done]
    if todo:
        bar = _progress(len(range(0, items, CHUNK)), desc, progress)
        if bar:
            bar.update(len(done))
        for start, rows in fill(todo):
            out[start:start + len(rows)] = rows
            done.add(start)
            if len(done) % 8 == 0 or len(done) * CHUNK >= items:
                out.flush()
                done_file.write_text(json.dumps(sorted(done)))
            if bar:
                bar.update(1)
        out.flush()
        done_file.write_text(json.dumps(sorted(done)))
        if bar:
            bar.close()
    return np.load(path, mmap_mode="r")


def build_views(data: FaceDataset, cfg: ViewConfig, seed: int, cache_dir: Path, workers: int = 1,
                progress: bool = True) -> tuple[np.ndarray, str]:
    """(N, V, S, S) uint8 views of every crop of a dataset, and their cache key."""
    if data.landmarks is None:
        raise ValueError("the dataset has no landmarks; re-align it with this version")
    key = f"{_dataset_key(data)}-{cfg.key()}-s{seed}"
    name = Path(data.source).name
    path = Path(cache_dir) / f"views-{name}-{key}.npy"
    files, size = data.files, data.crops.shape[1]
    keys = [f"{name}/{p}" for p in data.paths]

    def fill(starts):
        jobs = [(s, files[s:s + CHUNK], keys[s:s + CHUNK], data.landmarks[s:s + CHUNK],
                 data.crops[s:s + CHUNK], cfg, seed) for s in starts]
        if workers <= 1:
            yield from map(_render_chunk, jobs)
            return
        with ProcessPoolExecutor(workers) as pool:
            yield from pool.map(_render_chunk, jobs)

    views = _chunked_cache(path, (len(data), cfg.views, size, size), np.uint8, fill, len(data),
                           f"views {name}", workers, progress)
    return views, key


_TEACHER = None


def _teacher_init(name: str) -> None:
    global _TEACHER
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from model_build.teachers import get_teacher
    _TEACHER = get_teacher(name, threads=1)


def _teacher_chunk(args) -> tuple[int, np.ndarray]:
    start, views = args
    n, v = views.shape[:2]
    return start, _TEACHER.embed(views.reshape(n * v, *views.shape[2:])).reshape(n, v, -1)


def teacher_targets(views: np.ndarray, views_key: str, teacher: str, dim: int, cache_dir: Path,
                    name: str, workers: int = 1, progress: bool = True) -> np.ndarray:
    """(N, V, D) unit teacher vectors for every view; cached, resumable."""
    path = Path(cache_dir) / f"teacher-{teacher}-{name}-{views_key}.npy"

    def fill(starts):
        jobs = ((s, np.asarray(views[s:s + CHUNK])) for s in starts)
        with ProcessPoolExecutor(workers, initializer=_teacher_init, initargs=(teacher,)) as pool:
            yield from pool.map(_teacher_chunk, jobs)

    return _chunked_cache(path, (len(views), views.shape[1], dim), np.float32, fill, len(views),
                          f"{teacher} labels {name}", workers, progress)


def distill_set(data: FaceDataset, teacher: str, cfg: ViewConfig, seed: int, cache_dir: Path,
                workers: int = 1, progress: bool = True) -> DistillSet:
    """Views and teacher vectors of one aligned dataset folder."""
    from model_build.teachers import TEACHER_DIMS
    views, key = build_views(data, cfg, seed, cache_dir, workers, progress)
    targets = teacher_targets(views, key, teacher, TEACHER_DIMS[teacher], cache_dir,
                              Path(data.source).name, workers, progress)
    return DistillSet(data, views, targets, teacher)


def config_dict(cfg: ViewConfig) -> dict:
    return asdict(cfg)
