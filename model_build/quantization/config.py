"""Settings of quantisation-aware fine-tuning (light: the CLI reads the defaults)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FinetuneConfig:
    """Saved with the run as ``quantization_aware`` in run.json."""

    steps: int = 600
    batch: int = 64
    learning_rate: float = 1e-5      # Adam; the float model is the start and the target
    calibration_crops: int = 500     # as many as model-build export calibrates on
    recalibrate_every: int = 100     # steps
    seed: int = 0
