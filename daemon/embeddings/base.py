"""The encoder interface and the model metadata (``model.json``) it is read with."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from daemon.faces.align import PREPROCESSING_VERSION
from daemon.runtime import ModelError

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
DEFAULT_MODEL = MODELS_DIR / "encoder.tflite"


@dataclass(frozen=True)
class ModelInfo:
    """What the runtime needs to know about an encoder, from its model.json."""

    model_id: str
    input_size: int
    embedding_size: int
    threshold: float                  # Euclidean distance at the calibrated FAR
    thresholds: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)
    path: Path | None = None
    # Embed the crop and its mirror image and average them: +1.6 points of LFW accuracy
    # for a second 0.3 ms inference (docs/model.md).
    flip_average: bool = False


def metadata_path(model_path: Path) -> Path:
    """model.json sits next to the .tflite (one folder per model)."""
    return model_path.with_name("model.json")


def load_model_info(model_path: str | Path) -> ModelInfo:
    """Read and check the metadata of an encoder .tflite file."""
    model_path = Path(model_path)
    if not model_path.is_file():
        raise ModelError(f"encoder model not found: {model_path}")
    meta_file = metadata_path(model_path)
    try:
        meta = json.loads(meta_file.read_text())
    except FileNotFoundError as exc:
        raise ModelError(f"model metadata not found: {meta_file} (export writes it next to the model)") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"model metadata {meta_file} is unreadable: {exc}") from exc
    try:
        preprocessing = meta["input"]["preprocessing"]
        if preprocessing != PREPROCESSING_VERSION:
            raise ModelError(
                f"model {model_path} was trained with preprocessing '{preprocessing}' but this "
                f"runtime produces '{PREPROCESSING_VERSION}': re-export the model or upgrade facegate")
        thresholds = meta["thresholds"]
        return ModelInfo(model_id=str(meta["model_id"]), input_size=int(meta["input"]["size"]),
                         embedding_size=int(meta["embedding"]["size"]),
                         threshold=float(thresholds["match"]), thresholds=thresholds,
                         metadata=meta, path=model_path,
                         flip_average=bool(meta["embedding"].get("flip_average", False)))
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, ModelError):
            raise
        raise ModelError(f"model metadata {meta_file} lacks or mistypes a field: {exc!r}") from exc


class Encoder(Protocol):
    """Turns aligned uint8 crops (N, S, S) into unit embeddings (N, D) float32."""

    info: ModelInfo

    def embed(self, crops: np.ndarray) -> np.ndarray: ...
