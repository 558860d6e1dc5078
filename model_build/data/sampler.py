"""P identities x K images batches, the sampling that online triplet mining needs.

FaceNet (Schroff et al., 2015) draws about 40 faces per identity per batch from a
huge set; our identities mostly have 2-30 images, so K is small (default 4) and
an identity with fewer than K images contributes all of them plus repeats, which
augmentation turns into different views.
"""

from __future__ import annotations

import numpy as np


def pk_batches(labels: np.ndarray, p: int, k: int, seed: int, start_batch: int = 0):
    """Yield index arrays of P*K images forever, deterministic in (seed, batch number).

    start_batch lets a resumed run continue the exact same sequence.
    """
    labels = np.asarray(labels)
    by_identity = [np.flatnonzero(labels == c) for c in range(labels.max() + 1)]
    by_identity = [ix for ix in by_identity if len(ix) >= 2]
    if len(by_identity) < p:
        raise ValueError(f"need at least P={p} identities with 2+ images, have {len(by_identity)}")
    batch = start_batch
    while True:
        rng = np.random.default_rng([seed, batch])
        chosen = rng.choice(len(by_identity), size=p, replace=False)
        out = []
        for c in chosen:
            ix = by_identity[c]
            out.append(rng.choice(ix, size=k, replace=len(ix) < k))
        yield np.concatenate(out)
        batch += 1
