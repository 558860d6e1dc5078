"""Presentation-attack detection figures in ISO/IEC 30107-3 terms. Pure numpy.

- **APCER** (attack presentation classification error rate): the share of attack
  presentations accepted as bona fide. The standard computes it per PAI species
  (print, video replay, ...) and reports the worst species.
- **BPCER** (bona fide presentation classification error rate): the share of bona fide
  presentations rejected as attacks.
- **ACER** = (APCER + BPCER) / 2 (ISO/IEC 30107-3:2017 uses it informally; kept for
  comparison with the literature).
- **BPCER @ APCER = x**: the BPCER at the most lenient threshold whose APCER is at most x.

Scores are "live" scores: higher means more likely bona fide; a presentation is
accepted as bona fide when its score is >= the threshold.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .verification import roc_auc, roc_curve


@dataclass(frozen=True)
class PadErrors:
    threshold: float
    apcer: float           # worst species (all attacks when no species are given)
    bpcer: float
    acer: float
    apcer_by_species: dict  # species -> APCER
    n_bona_fide: int
    n_attack: int

    def to_dict(self) -> dict:
        return _rounded(asdict(self))


def _rounded(value):
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


def _split(scores, live, species):
    scores = np.asarray(scores, np.float64)
    live = np.asarray(live, bool)
    if scores.shape != live.shape:
        raise ValueError(f"scores {scores.shape} and labels {live.shape} differ in shape")
    if species is None:
        species = np.where(live, "", "attack")
    species = np.asarray(species, object)
    return scores, live, species


def pad_errors(scores, live, threshold: float, species=None) -> PadErrors:
    """APCER (worst species), BPCER and ACER at one threshold."""
    scores, live, species = _split(scores, live, species)
    attacks = ~live
    by_species = {str(s): float(np.mean(scores[attacks & (species == s)] >= threshold))
                  for s in sorted(set(species[attacks]))}
    apcer = max(by_species.values()) if by_species else float("nan")
    bpcer = float(np.mean(scores[live] < threshold)) if live.any() else float("nan")
    return PadErrors(float(threshold), apcer, bpcer, (apcer + bpcer) / 2, by_species,
                     int(live.sum()), int(attacks.sum()))


def threshold_at_apcer(scores, live, target: float, species=None) -> float:
    """The lowest threshold (fewest bona fide rejected) whose worst-species APCER <= target."""
    scores, live, species = _split(scores, live, species)
    candidates = np.unique(np.concatenate([scores, [np.inf]]))
    for t in candidates:  # ascending: APCER only falls as the threshold rises
        if pad_errors(scores, live, t, species).apcer <= target:
            return float(t)
    return float("inf")


def bpcer_at_apcer(scores, live, target: float = 0.01, species=None) -> dict:
    """BPCER at the threshold that keeps APCER <= target."""
    t = threshold_at_apcer(scores, live, target, species)
    e = pad_errors(scores, live, t, species)
    return {"target_apcer": target, "threshold": round(t, 4) if np.isfinite(t) else None,
            "apcer": round(e.apcer, 4), "bpcer": round(e.bpcer, 4)}


def equal_error_threshold(scores, live, species=None) -> float:
    """The threshold where worst-species APCER and BPCER are closest."""
    scores, live, species = _split(scores, live, species)
    best, best_gap = 0.5, np.inf
    for t in np.unique(scores):
        e = pad_errors(scores, live, t, species)
        if abs(e.apcer - e.bpcer) < best_gap:
            best, best_gap = float(t), abs(e.apcer - e.bpcer)
    return best


def pad_summary(scores, live, threshold: float, species=None, target_apcer: float = 0.01) -> dict:
    """The figures docs report: errors at the given threshold, at the equal-error
    threshold (a threshold chosen on the test data itself: optimistic, for comparison
    only), BPCER @ APCER = target, and the ROC AUC."""
    scores_a, live_a, _ = _split(scores, live, species)
    auc = roc_auc(*roc_curve(-scores_a, live_a)[:2]) if live_a.any() and (~live_a).any() else float("nan")
    return {
        "at_threshold": pad_errors(scores, live, threshold, species).to_dict(),
        "at_equal_error": pad_errors(scores, live, equal_error_threshold(scores, live, species),
                                     species).to_dict(),
        "bpcer_at_apcer": bpcer_at_apcer(scores, live, target_apcer, species),
        "auc": round(auc, 4),
    }

