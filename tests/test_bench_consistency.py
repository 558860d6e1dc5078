"""bench consistency: the distances behind the enrollment consistency threshold."""

from __future__ import annotations

import numpy as np

from bench.consistency_bench import distances


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_genuine_photos_sit_near_their_median_and_the_next_persons_photo_does_not():
    rng = np.random.default_rng(0)
    centres = _unit(rng.standard_normal((5, 128)))
    people = [_unit(c + 0.05 * rng.standard_normal((4, 128))) for c in centres]
    genuine, impostor = distances(people)
    assert genuine.shape == (20,) and impostor.shape == (5,)
    # Photos of one person lie ~0.5 apart here, different people ~1.4 (random directions).
    assert genuine.max() < 0.8 < 1.2 < impostor.min()
