"""Liveness: is the face at the door a live person, or a print or a screen?

    matched face -> cues (blink: daemon.liveness.blink, passive PAD: daemon.liveness.passive)
                 -> per-person readings -> policy (daemon.liveness.policy) -> unlock or not

Cues are only run on faces that matched an enrolled person, so faces of passers-by cost
nothing. ``build_gate`` turns the ``[liveness]`` config section into a gate (``LivenessOff``
for ``mode = "off"``, which keeps the door exactly as it was without liveness).
"""

from __future__ import annotations

from daemon.liveness.cue import Cue, CueResult, FacePoints, Reading
from daemon.liveness.policy import MODES, LivenessGate, LivenessOff, Verdict

__all__ = ["MODES", "Cue", "CueResult", "FacePoints", "LivenessGate", "LivenessOff", "Reading", "Verdict",
           "build_gate"]


def build_gate(cfg, num_threads: int = 1) -> LivenessGate | LivenessOff:
    """The gate for a LivenessConfig (models load here, once, at start)."""
    if cfg.mode == "off":
        return LivenessOff()
    cues: list[Cue] = []
    if "blink" in MODES[cfg.mode]:
        from daemon.liveness.blink import BlinkCue, BlinkThresholds
        cues.append(BlinkCue(BlinkThresholds.from_config(cfg), num_threads=num_threads))
    if "passive" in MODES[cfg.mode]:
        from daemon.liveness.passive import PAD_PATH, PadModel, PassiveCue
        model = PadModel(cfg.passive_model or PAD_PATH, num_threads=num_threads)
        cues.append(PassiveCue(model, cfg.passive_threshold or None, min_frames=cfg.passive_min_frames))
    return LivenessGate(cfg.mode, cues, cfg.window_s, cfg.evidence_margin)
