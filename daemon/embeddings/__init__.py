"""Embedding backends behind one interface: ``load_encoder(path, backend)``."""

from __future__ import annotations

from pathlib import Path

from daemon.config import BACKENDS
from daemon.embeddings.base import DEFAULT_MODEL, Encoder, ModelInfo, load_model_info


def load_encoder(model_path: str | Path | None = None, backend: str = "cpu",
                 num_threads: int = 1) -> Encoder:
    """Load an encoder .tflite (default: the model shipped with facegate)."""
    path = Path(model_path) if model_path else DEFAULT_MODEL
    if backend == "cpu":
        from daemon.embeddings import cpu as plugin
    elif backend == "edgetpu":
        from daemon.embeddings import edgetpu as plugin
    else:
        raise ValueError(f"unknown embedder backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    return plugin.load(path, num_threads=num_threads)


__all__ = ["BACKENDS", "DEFAULT_MODEL", "Encoder", "ModelInfo", "load_encoder", "load_model_info"]
