"""The model card, ``model.json``: the one module that writes and reads it.

``model-build export`` builds it with :func:`new_card` and :func:`calibrate` and writes
it with :func:`write_card`; the runtime reads it with :func:`read_card`. A card sits
next to its ``.tflite`` (one folder per model). It says how crops must be made and
scaled (the preprocessing version, checked at load), the embedding size, the match
threshold calibrated at export, the teacher and data the model was trained from, and
how it scored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from daemon.faces.align import PREPROCESSING_VERSION
from daemon.runtime import ModelError

FORMAT = "facegate-encoder/2"
CARD_NAME = "model.json"
NORMALIZATION = "(gray_pixel - 127.5) / 127.5 (daemon.faces.align.normalize_crop), then int8 quantised " \
                "with the input scale/zero_point"


@dataclass(frozen=True)
class ModelInfo:
    """What the runtime needs to know about an encoder, from its card."""

    model_id: str
    input_size: int
    embedding_size: int
    threshold: float                  # Euclidean distance at the calibrated FAR
    metadata: dict = field(default_factory=dict)
    path: Path | None = None
    # Embed the crop and its mirror image and average them (docs/model.md has its value).
    flip_average: bool = False


def card_path(model_path: str | Path) -> Path:
    return Path(model_path).with_name(CARD_NAME)


def new_card(model_id: str, input_size: int, embedding_size: int, quantization: dict, files: dict,
             parameters: int, ops: list[str], flip_average: bool) -> dict:
    """A card for a freshly exported encoder; thresholds come later (calibrate)."""
    return {
        "format": FORMAT,
        "model_id": model_id,
        "input": {"size": input_size, "channels": 1, "layout": "NHWC", "batch": 1,
                  "preprocessing": PREPROCESSING_VERSION, "normalization": NORMALIZATION,
                  "color": "grayscale (BT.601 luma)"},
        "embedding": {"size": embedding_size, "normalized": "L2", "distance": "euclidean",
                      "flip_average": flip_average},
        "quantization": quantization,
        "files": files,
        "parameters": parameters,
        "ops": sorted(ops),
    }


def calibrate(card: dict, thresholds: dict, evaluation: dict | None = None) -> dict:
    """Record the match threshold (``thresholds["match"]``) and how the model scored."""
    if "match" not in thresholds:
        raise ValueError("thresholds need a 'match' entry")
    card["thresholds"] = thresholds
    if evaluation is not None:
        card["evaluation"] = evaluation
    return card


def write_card(out_dir: str | Path, card: dict) -> Path:
    path = Path(out_dir) / CARD_NAME
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(card, indent=2) + "\n")
    tmp.replace(path)
    return path


def read_card(model_path: str | Path) -> ModelInfo:
    """Read and check the card of an encoder .tflite (a ModelError says what is wrong)."""
    model_path = Path(model_path)
    if not model_path.is_file():
        raise ModelError(f"encoder model not found: {model_path}")
    path = card_path(model_path)
    try:
        card = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ModelError(f"model card not found: {path} (model-build export writes it next to the model)") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"model card {path} is unreadable: {exc}") from exc
    try:
        preprocessing = card["input"]["preprocessing"]
        if preprocessing != PREPROCESSING_VERSION:
            raise ModelError(
                f"model {model_path} was trained on '{preprocessing}' crops but this runtime makes "
                f"'{PREPROCESSING_VERSION}' crops: use a model exported for this version, or upgrade facegate")
        return ModelInfo(model_id=str(card["model_id"]), input_size=int(card["input"]["size"]),
                         embedding_size=int(card["embedding"]["size"]),
                         threshold=float(card["thresholds"]["match"]), metadata=card, path=model_path,
                         flip_average=bool(card["embedding"].get("flip_average", False)))
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, ModelError):
            raise
        raise ModelError(f"model card {path} lacks or mistypes a field: {exc!r}") from exc


def flip_average_of(model_path: str | Path) -> bool:
    """A .tflite's flip_average setting from its card (off for a model without one)."""
    path = card_path(model_path)
    if Path(model_path).suffix != ".tflite" or not path.is_file():
        return False
    return bool(json.loads(path.read_text()).get("embedding", {}).get("flip_average", False))
