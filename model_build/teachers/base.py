"""The teacher interface, and the ONNX plumbing the ONNX teachers share."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np


class TeacherError(RuntimeError):
    """A teacher that cannot be loaded or run; the message says what to install."""


@dataclass(frozen=True)
class TeacherInfo:
    """What a trained student records about its teacher (model.json, docs/model.md)."""

    name: str
    model: str
    dim: int
    licence: str
    source: str


class Teacher(Protocol):
    """Embeds aligned grayscale crops (N, 112, 112) uint8 on the ArcFace template into
    unit vectors (N, dim) float32. Rows the teacher cannot embed are NaN."""

    info: TeacherInfo

    def embed(self, crops: np.ndarray) -> np.ndarray: ...


def packaged_file(package: str, relative: str, install: str) -> Path:
    """A data file inside an installed package's folder, found without importing the
    package (some run heavy code at import)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise TeacherError(f"package {package!r} is not installed: {install}")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / relative
        if path.is_file():
            return path
    raise TeacherError(f"{package} is installed but has no {relative}: {install}")


def onnx_session(model, threads: int):
    """An onnxruntime CPU session for an onnx.ModelProto or a path."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise TeacherError("the ONNX teachers need onnxruntime: pip install -e '.[build]'") from exc
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # the graph fixes below leave harmless warnings
    data = model if isinstance(model, (str, Path)) else model.SerializeToString()
    return ort.InferenceSession(str(data) if isinstance(data, Path) else data, options,
                                providers=["CPUExecutionProvider"])


def gray_to_rgb_planes(crops: np.ndarray) -> np.ndarray:
    """(N, H, W) uint8 -> (N, 3, H, W) float32 0..255: a grayscale crop as three equal channels."""
    crops = np.asarray(crops)
    if crops.ndim == 2:
        crops = crops[None]
    return np.repeat(crops[:, None].astype(np.float32), 3, axis=1)


def unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
