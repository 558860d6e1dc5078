"""LiteRT interpreter loading: ai-edge-litert first, tflite_runtime as a fallback.

TensorFlow is never imported here: the runtime must fit a Raspberry Pi.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import tempfile
from pathlib import Path

import numpy as np


class ModelError(RuntimeError):
    """A model file is missing, unreadable, or not what the runtime expects."""


def _interpreter_module():
    try:
        from ai_edge_litert import interpreter as mod
    except ImportError:
        try:
            from tflite_runtime import interpreter as mod  # old Pi images
        except ImportError as exc:
            raise ModelError(
                "no TFLite interpreter: install 'ai-edge-litert' (pip install ai-edge-litert)"
            ) from exc
    return mod


# Printed once per process by LiteRT's C++ logger, which has no switch; it says nothing a user can act on.
NATIVE_NOISE = (b"Created TensorFlow Lite XNNPACK delegate",)


@contextlib.contextmanager
def native_stderr_filtered(noise: tuple[bytes, ...] = NATIVE_NOISE):
    """Catch what C++ code writes to file descriptor 2 while the block runs, then pass
    on every line except the ``noise`` ones (nothing else is lost)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            for line in caught.read().splitlines(keepends=True):
                if not any(n in line for n in noise):
                    os.write(2, line)


def load_interpreter(model_path: str | Path, num_threads: int = 1, delegates=None,
                     input_shape: tuple[int, ...] | None = None):
    """Create an interpreter for a .tflite file, with its tensors allocated (a caller
    that resizes an input allocates again), and a clear error if it is missing.

    ``input_shape`` sizes a model whose input is dynamic before that first allocation: its
    placeholder shape (1x1 for YuNet) shrinks to nothing in the strided convolutions, which
    XNNPACK tolerates but the builtin kernels refuse (as on aarch64 when XNNPACK is off)."""
    path = Path(model_path)
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    mod = _interpreter_module()
    try:
        interpreter = mod.Interpreter(model_path=str(path), num_threads=num_threads,
                                      experimental_delegates=delegates)
        if input_shape is not None:
            interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], input_shape)
        with native_stderr_filtered():  # the first allocation applies XNNPACK and announces it
            interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"cannot load model {path}: {exc}") from exc
    return interpreter


def load_edgetpu_delegate(library: str = "libedgetpu.so.1"):
    """The Coral Edge TPU delegate, or a ModelError that says what to install."""
    mod = _interpreter_module()
    try:
        # Loaded here first: when load_delegate() itself finds no library, its half-built
        # Delegate prints an AttributeError traceback from __del__ at exit.
        ctypes.CDLL(library)
        return mod.load_delegate(library)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelError(
            f"Edge TPU delegate '{library}' could not be loaded ({exc}). Install the Coral "
            "runtime (apt install libedgetpu1-std from the Coral apt repository), plug in the "
            "Edge TPU, and use an encoder compiled with edgetpu_compiler; or set "
            "backend = \"cpu\" in [model] (--backend cpu)."
        ) from exc


def quantize(x: np.ndarray, dtype, quantization) -> np.ndarray:
    """Float input -> the model's input tensor type (int8/uint8 with its (scale, zero point));
    float models take it as it is."""
    if dtype == np.float32:
        return x
    scale, zero = quantization
    limits = np.iinfo(dtype)
    return np.clip(np.round(x / scale) + zero, limits.min, limits.max).astype(dtype)


def dequantize(y: np.ndarray, dtype, quantization) -> np.ndarray:
    """A model's output tensor -> float32."""
    if dtype == np.float32:
        return y.astype(np.float32)
    scale, zero = quantization
    return (y.astype(np.float32) - zero) * scale
