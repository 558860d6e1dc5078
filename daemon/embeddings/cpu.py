"""CPU encoder backend: LiteRT with XNNPACK (tflite_runtime as a fallback import)."""

from __future__ import annotations

from pathlib import Path

from daemon.embeddings.base import load_model_info
from daemon.embeddings.litert import LiteRtEncoder, open_encoder


def load(model_path: str | Path, num_threads: int = 1) -> LiteRtEncoder:
    return open_encoder(model_path, load_model_info(model_path), num_threads=num_threads)
