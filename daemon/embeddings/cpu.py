"""CPU encoder backend: LiteRT with XNNPACK (tflite_runtime as a fallback import)."""

from __future__ import annotations

from pathlib import Path

from daemon.embeddings.base import load_model_info
from daemon.embeddings.litert import LiteRtEncoder
from daemon.runtime import load_interpreter


def load(model_path: str | Path, num_threads: int = 1) -> LiteRtEncoder:
    info = load_model_info(model_path)
    return LiteRtEncoder(load_interpreter(model_path, num_threads=num_threads), info)
