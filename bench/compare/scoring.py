"""Accuracy figures, computed with the same code for every system.

Embeddings are ``(N, D)`` arrays with a NaN row for an image where the system found no
face. Verification reuses ``model_build.evaluators`` (its failure policy: a pair with a
failed image has distance +inf and is never accepted). Open-set identification follows
the same policy: a probe without embedding is never accepted, and an enrolled person
whose gallery photo failed can never be identified.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from model_build.evaluators import (
    all_pairs_distances,
    lfw_protocol_accuracy,
    pair_distances,
    roc_curve,
    threshold_at_far,
    verification_summary,
)

FARS: tuple[float, ...] = (1e-2, 1e-3)
# all-vs-all pairs grow as N^2 (~50 bytes per pair while scoring): above this many
# images the all-pairs figures use a seeded subsample (10k images = 50M pairs, ~2.5 GB).
MAX_ALL_PAIRS_IMAGES = 10_000


# ----------------------------------------------------------------- verification


def lfw_accuracy(embeddings: np.ndarray, idx_a: np.ndarray, idx_b: np.ndarray,
                 same: np.ndarray, folds: np.ndarray) -> dict | None:
    """LFW-protocol accuracy of the given pairs (threshold chosen on the other folds)."""
    if len(same) == 0:
        return None
    distances = pair_distances(embeddings[idx_a], embeddings[idx_b])
    result = lfw_protocol_accuracy(distances, same, folds)
    result["n_pairs"] = int(len(same))
    result["n_failed_pairs"] = int(np.sum(~np.isfinite(distances)))
    return result


def pairs_all_embedded(embeddings: Sequence[np.ndarray], idx_a: np.ndarray,
                       idx_b: np.ndarray) -> np.ndarray:
    """Mask of the pairs whose two images every system embedded.

    Scored on these pairs alone, the systems differ only in their embeddings: a
    detector that misses faces no longer costs its system the pairs it missed.
    """
    ok = np.logical_and.reduce([np.isfinite(e).all(axis=1) for e in embeddings])
    return ok[idx_a] & ok[idx_b]


@dataclass
class AllPairs:
    """Figures over all-vs-all pairs, plus the ROC curve for the chart."""

    summary: dict | None          # None when there are no same or no different pairs
    far: np.ndarray | None
    tar: np.ndarray | None


def all_pairs_verification(embeddings: np.ndarray, labels: np.ndarray,
                           fars: Sequence[float] = FARS) -> AllPairs:
    """TAR at fixed FARs, AUC and EER over every pair of images."""
    distances, same = all_pairs_distances(embeddings, labels, max_pairs=None)
    if same.all() or not same.any():
        return AllPairs(None, None, None)
    failed_images = int(np.sum(~np.isfinite(embeddings).all(axis=1)))
    summary = verification_summary(distances, same, fars=fars, n_images=len(labels),
                                   n_failed_images=failed_images)
    # The summary's "accuracy" is chosen on the scored pairs themselves (optimistic);
    # the LFW-protocol accuracy comes from the pairs file instead.
    summary.pop("accuracy", None)
    far, tar, _ = roc_curve(distances, same)
    return AllPairs(summary, far, tar)


def subsample_for_all_pairs(n_images: int, rng: np.random.Generator,
                            max_images: int = MAX_ALL_PAIRS_IMAGES) -> np.ndarray:
    """Indices of the images whose all-vs-all pairs are scored (all of them when few)."""
    if n_images <= max_images:
        return np.arange(n_images)
    return np.sort(rng.choice(n_images, max_images, replace=False))


# ----------------------------------------------------------------- open-set identification


@dataclass(frozen=True)
class OpenSetSplit:
    """Who is enrolled and with which photo; every other image is a probe."""

    gallery: np.ndarray      # image indices, one photo per enrolled person
    probes: np.ndarray       # image indices of all other images
    probe_known: np.ndarray  # bool per probe: the probe's person is enrolled


def split_open_set(labels: Sequence, rng: np.random.Generator) -> OpenSetSplit:
    """Enrol half (rounded up) of the people with >= 2 images, one random photo each.

    Probes are the enrolled people's other photos (known) plus every photo of the
    others, including people with a single image (unknown). The split depends only on
    the labels and the RNG, so every system is scored on the same split.
    """
    _, codes, counts = np.unique(np.asarray(labels), return_inverse=True, return_counts=True)
    codes = codes.reshape(-1)
    several = np.flatnonzero(counts >= 2)
    enrolled = np.sort(rng.permutation(several)[: (len(several) + 1) // 2])
    gallery = np.array([rng.choice(np.flatnonzero(codes == person)) for person in enrolled],
                       dtype=np.int64)
    is_gallery = np.zeros(len(codes), bool)
    is_gallery[gallery] = True
    probes = np.flatnonzero(~is_gallery)
    return OpenSetSplit(gallery, probes, np.isin(codes[probes], enrolled))


def nearest_gallery(probes: np.ndarray, gallery: np.ndarray,
                    chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """``(index, distance)`` of each probe's nearest gallery embedding (Euclidean).

    NaN rows (no face) on either side give distance +inf.
    """
    probes = np.asarray(probes, np.float64)
    gallery = np.asarray(gallery, np.float64)
    g_ok = np.isfinite(gallery).all(axis=1)
    g = np.where(g_ok[:, None], gallery, 0.0)
    g_sq = np.einsum("ij,ij->i", g, g)
    index = np.zeros(len(probes), np.int64)
    distance = np.full(len(probes), np.inf)
    if len(g) == 0:
        return index, distance
    for start in range(0, len(probes), chunk):
        p = probes[start:start + chunk]
        p_ok = np.isfinite(p).all(axis=1)
        p = np.where(p_ok[:, None], p, 0.0)
        sq = np.einsum("ij,ij->i", p, p)[:, None] + g_sq[None, :] - 2.0 * (p @ g.T)
        sq[:, ~g_ok] = np.inf
        best = np.argmin(sq, axis=1)
        d = np.sqrt(np.maximum(sq[np.arange(len(p)), best], 0.0))
        d[~p_ok] = np.inf
        index[start:start + chunk], distance[start:start + chunk] = best, d
    return index, distance


def detect_and_identify_rate(distance: np.ndarray, correct: np.ndarray, known: np.ndarray,
                             threshold: float) -> float:
    """Fraction of known probes whose nearest entry is the right person within threshold."""
    n_known = int(np.sum(known))
    if n_known == 0:
        return float("nan")
    return float(np.sum(known & correct & (distance <= threshold)) / n_known)


def false_accept_rate(distance: np.ndarray, known: np.ndarray, threshold: float) -> float:
    """Fraction of unknown probes (not enrolled) whose nearest entry is within threshold."""
    unknown = ~known
    if not unknown.any():
        return float("nan")
    return float(np.mean(distance[unknown] <= threshold))


def score_open_set(distance: np.ndarray, correct: np.ndarray, known: np.ndarray,
                   fars: Sequence[float] = FARS) -> list[dict]:
    """DIR at each target FAR; the threshold is the largest one whose FAR on the
    unknown probes is <= the target (ties never push the FAR above it)."""
    distance = np.asarray(distance, np.float64)
    correct = np.asarray(correct, bool) & np.isfinite(distance)
    known = np.asarray(known, bool)
    rows = []
    for far in fars:
        if known.all() or not known.any():
            rows.append({"far": far, "dir": None, "threshold": None, "achieved_far": None})
            continue
        # threshold_at_far counts false accepts over the "different" entries: the unknown probes.
        t = threshold_at_far(distance, known, far)
        rows.append({"far": far, "dir": detect_and_identify_rate(distance, correct, known, t),
                     "threshold": t if np.isfinite(t) else None,
                     "achieved_far": false_accept_rate(distance, known, t)})
    return rows


def open_set_identification(embeddings: np.ndarray, labels: Sequence, split: OpenSetSplit,
                            fars: Sequence[float] = FARS) -> dict:
    """Open-set figures of one system on a split: DIR at FARs and closed-set rank-1."""
    labels = np.asarray(labels)
    index, distance = nearest_gallery(embeddings[split.probes], embeddings[split.gallery])
    correct = (labels[split.gallery][index] == labels[split.probes]) & np.isfinite(distance)
    known = split.probe_known
    return {
        "n_enrolled": int(len(split.gallery)),
        "n_enrolled_failed": int(np.sum(~np.isfinite(embeddings[split.gallery]).all(axis=1))),
        "n_known_probes": int(np.sum(known)),
        "n_unknown_probes": int(np.sum(~known)),
        "rank1": float(np.mean(correct[known])) if known.any() else None,
        "dir_at_far": score_open_set(distance, correct, known, fars),
    }
