"""Shared LiteRT encoder: quantises crops, runs the model one face at a time."""

from __future__ import annotations

import numpy as np

from pathlib import Path

from daemon.embeddings.base import ModelInfo
from daemon.faces.align import normalize_crop
from daemon.runtime import ModelError, dequantize, load_interpreter, quantize


class LiteRtEncoder:
    """Runs an int8 or float encoder .tflite with a given interpreter."""

    def __init__(self, interpreter, info: ModelInfo):
        self.info = info
        self._it = interpreter
        self._it.allocate_tensors()
        inp, out = self._it.get_input_details()[0], self._it.get_output_details()[0]
        expected = (1, info.input_size, info.input_size, 1)
        if tuple(inp["shape"]) != expected:
            raise ModelError(f"encoder input shape {tuple(inp['shape'])} does not match "
                             f"model.json {expected}")
        self._in, self._out = inp["index"], out["index"]
        self._in_dtype, self._out_dtype = inp["dtype"], out["dtype"]
        self._in_q, self._out_q = inp["quantization"], out["quantization"]

    def _quantize(self, x: np.ndarray) -> np.ndarray:
        return quantize(x, self._in_dtype, self._in_q)

    def _dequantize(self, y: np.ndarray) -> np.ndarray:
        return dequantize(y, self._out_dtype, self._out_q)

    def _run(self, crops: np.ndarray) -> np.ndarray:
        out = np.empty((len(crops), self.info.embedding_size), np.float32)
        for i, x in enumerate(self._quantize(normalize_crop(crops))):
            self._it.set_tensor(self._in, x[None])
            self._it.invoke()
            out[i] = self._dequantize(self._it.get_tensor(self._out)[0])
        return out

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """Unit embeddings (N, D) for uint8 crops (N, S, S) or one crop (S, S)."""
        crops = np.asarray(crops)
        if crops.ndim == 2:
            crops = crops[None]
        out = self._run(crops)
        if self.info.flip_average:
            out += self._run(crops[:, :, ::-1])
        # int8 output rounding leaves norms near 1; renormalise so distances are exact.
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out


def open_encoder(path: str | Path, info: ModelInfo | None = None, num_threads: int = 1,
                 delegates=None, flip_average: bool = False) -> LiteRtEncoder:
    """A LiteRtEncoder for a .tflite file.

    Without ``info`` the sizes come from the model's own tensors, so a model that has no
    model.json (yet) can be scored, e.g. while it is being exported.
    """
    interpreter = load_interpreter(path, num_threads=num_threads, delegates=delegates)
    if info is None:
        size = int(interpreter.get_input_details()[0]["shape"][1])
        dim = int(interpreter.get_output_details()[0]["shape"][-1])
        info = ModelInfo(model_id=f"unregistered:{Path(path).name}", input_size=size,
                         embedding_size=dim, threshold=float("nan"), path=Path(path),
                         flip_average=flip_average)
    return LiteRtEncoder(interpreter, info)
