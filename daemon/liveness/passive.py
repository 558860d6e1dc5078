"""Passive presentation-attack detection: one frame of the face *with its surroundings*
-> the probability that it is a live face.

The network (trained by ``model-build train-liveness``, see docs/liveness.md) sees the
face and about as much context again on every side: paper and screen edges, fingers
holding a print, moiré and reflections are outside or across the face, not in it.

The region is placed from the two eye points only, not from the detector's box, so the
same crop comes out whatever detector found the face (boxes differ between detectors,
eye centres much less). Training and runtime both cut it with :func:`pad_crop`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from daemon.faces.detect import as_bgr
from daemon.liveness.crops import Region, crop, eye_angle
from daemon.liveness.cue import CueResult, FacePoints, Reading
from daemon.runtime import ModelError, dequantize, load_interpreter, quantize

PAD_PATH = Path(__file__).resolve().parent.parent / "models" / "liveness_pad.tflite"
# Side of the region in eye distances: a detector's face box is ~2.35 eye distances
# wide, so 4.5 shows the face and nearly a face width of context on each side.
CONTEXT_EYE_DISTANCES = 4.5
# The region's centre sits this many eye distances below the eyes' midpoint (about
# the middle of the face box).
CENTER_DROP = 0.5
PREPROCESSING = "eyes-4.5d-rgb-v1"


def pad_region(right_eye, left_eye, scale: float = CONTEXT_EYE_DISTANCES) -> Region:
    """The face-with-context region, turned so the eyes are level."""
    a, b = np.asarray(right_eye, np.float64), np.asarray(left_eye, np.float64)
    d = float(np.linalg.norm(b - a))
    angle = eye_angle(a, b)
    down = np.array([-np.sin(angle), np.cos(angle)])  # the face's "down" in image axes
    center = (a + b) / 2 + CENTER_DROP * d * down
    return Region((float(center[0]), float(center[1])), max(d, 1.0) * scale, angle)


def pad_crop(image: np.ndarray, right_eye, left_eye, size: int) -> np.ndarray:
    """size x size x 3 uint8 RGB crop of the face with context (grayscale frames become
    three equal channels, which the network saw in training too)."""
    rgb = cv2.cvtColor(as_bgr(image), cv2.COLOR_BGR2RGB)
    return crop(rgb, pad_region(right_eye, left_eye), size)


@dataclass(frozen=True)
class PadInfo:
    """What liveness_pad.json says about the model."""

    model_id: str
    input_size: int
    threshold: float   # live probability at or above which a frame counts as live

    @classmethod
    def load(cls, model_path: Path) -> "PadInfo":
        meta_path = model_path.with_suffix(".json")
        try:
            meta = json.loads(meta_path.read_text())
            info = cls(str(meta["model_id"]), int(meta["input"]["size"]), float(meta["threshold"]))
            preprocessing = meta["input"]["preprocessing"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"liveness model metadata {meta_path} is missing or invalid: {exc}") from exc
        if preprocessing != PREPROCESSING:
            raise ModelError(f"{model_path} expects preprocessing {preprocessing!r}; this facegate "
                             f"cuts {PREPROCESSING!r}")
        return info


class PadModel:
    """The int8 (or float) PAD network. Thread-unsafe: one instance per thread."""

    def __init__(self, path: str | Path = PAD_PATH, num_threads: int = 1, info: PadInfo | None = None):
        path = Path(path)
        self.info = info or PadInfo.load(path)
        self._it = load_interpreter(path, num_threads=num_threads)
        self._it.allocate_tensors()
        inp, out = self._it.get_input_details()[0], self._it.get_output_details()[0]
        size = self.info.input_size
        if tuple(inp["shape"]) != (1, size, size, 3):
            raise ModelError(f"liveness model input {tuple(inp['shape'])} is not (1, {size}, {size}, 3)")
        self._in, self._out = inp["index"], out["index"]
        self._in_dtype, self._in_q = inp["dtype"], inp["quantization"]
        self._out_dtype, self._out_q = out["dtype"], out["quantization"]

    def live_probability(self, image: np.ndarray, right_eye, left_eye) -> float:
        """P(live) for the face whose eyes are given."""
        x = pad_crop(image, right_eye, left_eye, self.info.input_size)
        return self.score_crops(x[None])[0]

    def score_crops(self, crops: np.ndarray) -> np.ndarray:
        """P(live) for uint8 RGB crops (N, S, S, 3) cut by :func:`pad_crop`."""
        out = np.empty(len(crops), np.float32)
        for i, c in enumerate(normalize_pad_crops(crops)):
            self._it.set_tensor(self._in, quantize(c[None], self._in_dtype, self._in_q))
            self._it.invoke()
            out[i] = dequantize(self._it.get_tensor(self._out), self._out_dtype, self._out_q).ravel()[0]
        return out


def normalize_pad_crops(crops: np.ndarray) -> np.ndarray:
    """uint8 RGB (..., S, S, 3) -> the network's float input in [-1, 1]."""
    return (np.asarray(crops, np.float32) - 127.5) / 127.5


def judge_live_probabilities(readings: list[Reading], threshold: float, min_frames: int) -> CueResult:
    """Live when the mean live probability of the person's frames in the window reaches
    the threshold, over at least ``min_frames`` frames (one frame is too easy to get
    lucky with; the mean of several is steadier than any one of them)."""
    if len(readings) < min_frames:
        return CueResult(False, f"{len(readings)} of {min_frames} frame(s) scored so far",
                         {"frames": len(readings)})
    mean = float(np.mean([r.value for r in readings]))
    passed = mean >= threshold
    return CueResult(passed, f"mean live probability {mean:.3f} {'>=' if passed else '<'} {threshold:.3f} "
                             f"over {len(readings)} frame(s)", {"score": round(mean, 4), "frames": len(readings)})


class PassiveCue:
    """The PAD network on each frame; the window's mean decides."""

    name = "passive"

    def __init__(self, model: PadModel | None = None, threshold: float | None = None, *, min_frames: int,
                 num_threads: int = 1):
        self.model = model or PadModel(num_threads=num_threads)
        self.threshold = self.model.info.threshold if threshold is None else threshold
        self.min_frames = min_frames

    def measure(self, image: np.ndarray, face: FacePoints) -> float | None:
        return self.model.live_probability(image, face.right_eye, face.left_eye)

    def judge(self, readings: list[Reading]) -> CueResult:
        return judge_live_probabilities(readings, self.threshold, self.min_frames)
