"""Coral Edge TPU encoder backend.

Needs ``libedgetpu.so.1`` (Coral's ``libedgetpu1-std`` package) and a model compiled
with ``edgetpu_compiler`` (``encoder_edgetpu.tflite`` next to ``encoder.tflite``);
an uncompiled int8 model also runs, but on the CPU part of the delegate.
"""

from __future__ import annotations

from pathlib import Path

from daemon.embeddings.base import load_model_info
from daemon.embeddings.litert import LiteRtEncoder, open_encoder
from daemon.runtime import load_edgetpu_delegate


def load(model_path: str | Path, num_threads: int = 1) -> LiteRtEncoder:
    model_path = Path(model_path)
    info = load_model_info(model_path)
    compiled = model_path.with_name(model_path.stem + "_edgetpu.tflite")
    delegate = load_edgetpu_delegate()
    path = compiled if compiled.is_file() else model_path
    return open_encoder(path, info, num_threads=num_threads, delegates=[delegate])
