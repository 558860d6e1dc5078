"""ISO/IEC 30107-3 figures (model_build.evaluators.pad) on hand-checked cases."""

from __future__ import annotations

import numpy as np
import pytest

from model_build.evaluators.pad import bpcer_at_apcer, pad_errors, pad_summary, threshold_at_apcer

# live score per presentation: 3 bona fide, 2 prints, 2 replays
SCORES = np.array([0.9, 0.8, 0.4, 0.3, 0.6, 0.7, 0.1])
LIVE = np.array([True, True, True, False, False, False, False])
SPECIES = np.array(["", "", "", "print", "print", "replay", "replay"], object)


def test_apcer_is_the_worst_species_and_bpcer_the_rejected_bona_fide():
    e = pad_errors(SCORES, LIVE, 0.5, SPECIES)
    assert e.apcer_by_species == {"print": 0.5, "replay": 0.5}
    assert e.apcer == 0.5 and e.bpcer == pytest.approx(1 / 3) and e.acer == pytest.approx((0.5 + 1 / 3) / 2)
    e = pad_errors(SCORES, LIVE, 0.65, SPECIES)
    assert e.apcer_by_species == {"print": 0.0, "replay": 0.5} and e.apcer == 0.5, "the worst, not the mean"


def test_a_score_at_the_threshold_is_accepted_as_bona_fide():
    e = pad_errors(np.array([0.5, 0.5]), np.array([True, False]), 0.5)
    assert e.bpcer == 0.0 and e.apcer == 1.0


def test_bpcer_at_apcer_uses_the_most_lenient_threshold_that_keeps_apcer_down():
    assert threshold_at_apcer(SCORES, LIVE, 0.0, SPECIES) == pytest.approx(0.8)  # just above 0.7 is not a score
    r = bpcer_at_apcer(SCORES, LIVE, 0.0, SPECIES)
    assert r["apcer"] == 0.0 and r["bpcer"] == pytest.approx(1 / 3, abs=1e-4)
    assert threshold_at_apcer(SCORES, LIVE, 0.5, SPECIES) == pytest.approx(0.4), "lenient as allowed"


def test_summary_has_every_figure_docs_report():
    s = pad_summary(SCORES, LIVE, 0.5, SPECIES)
    assert set(s) == {"at_threshold", "at_equal_error", "bpcer_at_apcer", "auc"}
    assert s["auc"] == pytest.approx(10 / 12, abs=1e-4)  # a bona fide score above an attack in 10 of 12 pairs
    with pytest.raises(ValueError, match="differ in shape"):
        pad_errors(SCORES, LIVE[:3], 0.5)
