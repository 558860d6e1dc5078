"""The encoder interface; the model card it is read with is daemon/embeddings/card.py."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from daemon.embeddings.card import ModelInfo, read_card as load_model_info  # noqa: F401 (re-exported)

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
DEFAULT_MODEL = MODELS_DIR / "encoder.tflite"


class Encoder(Protocol):
    """Turns aligned uint8 crops (N, S, S) into unit embeddings (N, D) float32."""

    info: ModelInfo

    def embed(self, crops: np.ndarray) -> np.ndarray: ...
