"""Face-verification metrics on embedding distances (pure numpy, no TensorFlow).

Conventions
-----------
* A *distance* is the Euclidean distance between two embeddings (for the
  128-d L2-normalised face embeddings it lies in [0, 2]); smaller = more
  similar.  A pair is predicted "same" when ``distance <= threshold``
  (pairs exactly at the threshold are accepted).
* ``same`` is a boolean array: True for genuine (same person) pairs.
* FAR (false-accept rate) = accepted different pairs / all different pairs;
  TAR (true-accept rate) = accepted same pairs / all same pairs; FRR = 1 - TAR.

Failed embeddings (the NaN-row policy)
--------------------------------------
An image whose embedding could not be computed (no face found) is a row of
NaN.  :func:`pair_distances` / :func:`all_pairs_distances` give every pair
involving such a row the distance ``+inf``; every metric here also accepts
NaN distances and treats them as ``+inf``.  Such a *failed pair* stays in the
denominators (it is never dropped) and is **predicted "different" at every
operating threshold** -- a missed genuine pair counts as a false reject, a
failed impostor pair counts as a correct reject.  Operating thresholds (EER
threshold, threshold at a FAR, LFW accuracy thresholds) are always finite, so
this holds everywhere.  Only the ROC curve has one extra final point at
threshold ``+inf`` ("accept everything", i.e. failures ranked as the least
similar pairs, tied among themselves) so that it always ends at (1, 1);
consequently the AUC equals the Mann-Whitney probability that a random same
pair is closer than a random different pair (ties count 1/2, failures rank
last).  :func:`verification_summary` reports how many pairs failed.

Memory
------
All functions are vectorised (Python loops only over chunks or folds, never
over pairs).  Measured peaks (numpy allocations, float32 distances in):
:func:`roc_curve` ~45 bytes per pair -- its three output arrays alone are 24
bytes per unique distance; :func:`tar_at_far` / :func:`equal_error_rate`
about the same; :func:`verification_summary` ~60-70 (it also sorts each
fold's training complement).  For the ~50 M pairs of a 10k-image all-pairs
evaluation that is 2-3.5 GB: feasible on the build host, too much for small
machines -- subsample the different pairs there.
:func:`all_pairs` returns two int32 index arrays and a bool array (9
bytes/pair); :func:`all_pairs_distances` returns only float32 distances and a
bool array (5 bytes/pair) and is the one to use for large galleries; both
add a constant ~25-40 MB of chunk temporaries (``chunk_pairs`` /
``chunk_elems``, default 1 M).  Both refuse to build more than ``max_pairs``
pairs (default :data:`DEFAULT_MAX_PAIRS` = 60 M, i.e. ~11k images: ~540 MB for
``all_pairs``, ~300 MB for ``all_pairs_distances``); pass a larger
``max_pairs`` (or None) if the machine has the memory, iterate with
:func:`iter_all_pairs`, or subsample the images.
"""

from __future__ import annotations

import math
from typing import Any, Iterator, Sequence

import numpy as np

__all__ = [
    "DEFAULT_MAX_PAIRS",
    "DEFAULT_FARS",
    "FAILURE_POLICY",
    "pair_distances",
    "all_pairs",
    "iter_all_pairs",
    "all_pairs_distances",
    "roc_curve",
    "roc_auc",
    "equal_error_rate",
    "threshold_at_far",
    "tar_at_far",
    "lfw_protocol_accuracy",
    "verification_summary",
    "split_distances",
]

DEFAULT_MAX_PAIRS = 60_000_000
DEFAULT_FARS: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1)
_CHUNK_ELEMS = 1_000_000  # pairs (or distance-matrix cells) per vectorised chunk

FAILURE_POLICY = (
    "pairs involving an image without embedding (NaN row) get distance +inf: they stay in "
    "the denominators and are always predicted 'different' (a failed same pair is a false "
    "reject, a failed different pair a correct reject); in the ROC/AUC they rank last"
)


# --------------------------------------------------------------------------- distances


def pair_distances(embeddings_a: np.ndarray, embeddings_b: np.ndarray) -> np.ndarray:
    """Row-wise Euclidean distances between two ``(n, d)`` embedding arrays.

    Returns float64 ``(n,)``.  A pair where either row contains a non-finite
    value (failed embedding) gets ``+inf`` (see the module docstring).
    """
    a = np.asarray(embeddings_a, dtype=np.float64)
    b = np.asarray(embeddings_b, dtype=np.float64)
    if a.ndim == 1:
        a = a[None, :]
    if b.ndim == 1:
        b = b[None, :]
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"embedding arrays must both be (n, d) with equal shapes, got {a.shape} and {b.shape}")
    bad = ~(np.isfinite(a).all(axis=1) & np.isfinite(b).all(axis=1))
    with np.errstate(invalid="ignore"):
        d = np.sqrt(np.sum((a - b) ** 2, axis=1))
    d[bad] = np.inf
    return d


def _label_codes(labels: Sequence[Any] | np.ndarray) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {arr.shape}")
    _, codes = np.unique(arr, return_inverse=True)
    return codes.reshape(-1)


def _n_pairs(n: int) -> int:
    return n * (n - 1) // 2


def _check_cap(n: int, max_pairs: int | None) -> int:
    total = _n_pairs(n)
    if max_pairs is not None and total > max_pairs:
        raise ValueError(
            f"{n} items give {total:,} pairs, above max_pairs={max_pairs:,}; "
            "subsample, iterate with iter_all_pairs(), or raise max_pairs explicitly"
        )
    return total


def _row_blocks(n: int, pairs_per_block: int) -> Iterator[tuple[int, int]]:
    """Split rows 0..n-2 into [r0, r1) blocks with about ``pairs_per_block``
    upper-triangle pairs each (at least one row per block)."""
    if n < 2:
        return
    counts = np.arange(n - 1, 0, -1, dtype=np.int64)  # pairs in row i: n-1-i
    ends = np.cumsum(counts)
    r0 = 0
    while r0 < n - 1:
        start = ends[r0 - 1] if r0 else 0
        r1 = int(np.searchsorted(ends, start + pairs_per_block, side="right"))
        r1 = max(r1, r0 + 1)
        r1 = min(r1, n - 1)
        yield r0, r1
        r0 = r1


def _block_indices(n: int, r0: int, r1: int, dtype) -> tuple[np.ndarray, np.ndarray]:
    """(i, j) of all pairs i<j with r0 <= i < r1, row-major, vectorised."""
    rows = np.arange(r0, r1, dtype=np.int64)
    counts = n - 1 - rows
    total = int(counts.sum())
    i = np.repeat(rows, counts)
    offsets = np.cumsum(counts) - counts  # start of each row inside the block
    j = np.arange(total, dtype=np.int64) - np.repeat(offsets, counts) + i + 1
    return i.astype(dtype, copy=False), j.astype(dtype, copy=False)


def iter_all_pairs(
    labels: Sequence[Any] | np.ndarray, *, chunk_pairs: int = _CHUNK_ELEMS
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yield ``(i, j, same)`` chunks covering all pairs ``i < j`` in
    ``np.triu_indices(n, 1)`` order, each chunk about ``chunk_pairs`` pairs.
    No cap: memory is bounded by the chunk size."""
    codes = _label_codes(labels)
    n = codes.size
    dtype = np.int32 if n < 2**31 else np.int64
    for r0, r1 in _row_blocks(n, max(1, int(chunk_pairs))):
        i, j = _block_indices(n, r0, r1, dtype)
        yield i, j, codes[i] == codes[j]


def all_pairs(
    labels: Sequence[Any] | np.ndarray,
    *,
    max_pairs: int | None = DEFAULT_MAX_PAIRS,
    chunk_pairs: int = _CHUNK_ELEMS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All unordered pairs of items: ``(i, j, same)`` for every ``i < j``.

    ``labels`` are identity labels (any comparable values); ``same[k]`` is
    ``labels[i[k]] == labels[j[k]]``.  Order equals ``np.triu_indices(n, 1)``;
    indices are int32 (int64 beyond 2**31 items).  Built chunk-wise without
    per-pair Python loops; 9 bytes per pair.  Raises ValueError above
    ``max_pairs`` pairs (None = no cap) -- see the module docstring.
    """
    codes = _label_codes(labels)
    n = codes.size
    total = _check_cap(n, max_pairs)
    dtype = np.int32 if n < 2**31 else np.int64
    i_out = np.empty(total, dtype=dtype)
    j_out = np.empty(total, dtype=dtype)
    s_out = np.empty(total, dtype=bool)
    pos = 0
    for i, j, s in iter_all_pairs(codes, chunk_pairs=chunk_pairs):
        k = i.size
        i_out[pos : pos + k], j_out[pos : pos + k], s_out[pos : pos + k] = i, j, s
        pos += k
    assert pos == total
    return i_out, j_out, s_out


def all_pairs_distances(
    embeddings: np.ndarray,
    labels: Sequence[Any] | np.ndarray,
    *,
    max_pairs: int | None = DEFAULT_MAX_PAIRS,
    chunk_elems: int = _CHUNK_ELEMS,
    dtype: Any = np.float32,
) -> tuple[np.ndarray, np.ndarray]:
    """Distances and same-flags of all pairs ``i < j`` (``np.triu_indices``
    order) without materialising the index arrays.

    Computed one block of rows of the distance matrix at a time (about
    ``chunk_elems`` float64 cells per block) with the Gram identity
    ``|a-b|^2 = |a|^2 + |b|^2 - 2 a.b`` (clipped at 0), keeping the upper
    triangle.  Pairs involving a non-finite embedding row get ``+inf``.
    Returns ``(distances[dtype], same[bool])``; 5 bytes/pair with float32.
    """
    emb = np.asarray(embeddings, dtype=np.float64)
    codes = _label_codes(labels)
    if emb.ndim != 2 or emb.shape[0] != codes.size:
        raise ValueError(f"embeddings must be (n, d) with n == len(labels); got {emb.shape} and {codes.size} labels")
    n = codes.size
    total = _check_cap(n, max_pairs)
    ok = np.isfinite(emb).all(axis=1)
    emb = np.where(ok[:, None], emb, 0.0)
    sq = np.einsum("ij,ij->i", emb, emb)
    d_out = np.empty(total, dtype=dtype)
    s_out = np.empty(total, dtype=bool)
    rows_per_block = max(1, int(chunk_elems) // max(n, 1))
    pos = 0
    cols = np.arange(n)
    for r0 in range(0, max(n - 1, 0), rows_per_block):
        r1 = min(r0 + rows_per_block, n - 1)
        block = sq[r0:r1, None] + sq[None, :] - 2.0 * (emb[r0:r1] @ emb.T)
        np.maximum(block, 0.0, out=block)
        np.sqrt(block, out=block)
        bad = ~(ok[r0:r1, None] & ok[None, :])
        block[bad] = np.inf
        upper = cols[None, :] > np.arange(r0, r1)[:, None]
        vals = block[upper]  # row-major: same order as triu_indices
        same = (codes[r0:r1, None] == codes[None, :])[upper]
        k = vals.size
        d_out[pos : pos + k] = vals
        s_out[pos : pos + k] = same
        pos += k
    assert pos == total
    return d_out, s_out


def split_distances(distances: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(same_pair_distances, different_pair_distances)`` (failures included as +inf)."""
    d, s = _prepare(distances, same)
    return d[s], d[~s]


# --------------------------------------------------------------------------- ROC core


def _prepare(distances: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = np.asarray(distances)
    if not np.issubdtype(d.dtype, np.floating):
        d = d.astype(np.float64)
    s = np.asarray(same)
    if s.dtype != bool:
        if not np.isin(s, (0, 1)).all():
            raise ValueError("same must be boolean (or 0/1)")
        s = s.astype(bool)
    d = d.reshape(-1)
    s = s.reshape(-1)
    if d.shape != s.shape:
        raise ValueError(f"distances and same differ in length: {d.size} vs {s.size}")
    nan = np.isnan(d)
    if nan.any():
        d = np.where(nan, np.inf, d)
    if np.isneginf(d).any():
        raise ValueError("distances must not be -inf")
    return d, s


def _roc_counts(d: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """Cumulative counts at every unique distance value (ascending, +inf
    included if present): ``(thresholds, tp, fp, n_same, n_diff)`` where
    ``tp[k]`` / ``fp[k]`` count same / different pairs with ``d <= thresholds[k]``."""
    n = d.size
    order = np.argsort(d)
    d_sorted = d[order]
    s_sorted = s[order]
    del order
    if n == 0:
        empty = np.empty(0, dtype=np.int64)
        return d_sorted.astype(np.float64), empty, empty, 0, 0
    last = np.flatnonzero(d_sorted[1:] != d_sorted[:-1])
    last = np.append(last, n - 1)
    cdtype = np.int32 if n < 2**31 else np.int64
    tp = np.cumsum(s_sorted, dtype=cdtype)[last].astype(np.int64)
    fp = (last + 1) - tp
    n_same = int(tp[-1])
    n_diff = int(fp[-1])
    return d_sorted[last].astype(np.float64), tp, fp, n_same, n_diff


def _need_both(n_same: int, n_diff: int, what: str) -> None:
    if n_same == 0 or n_diff == 0:
        raise ValueError(f"{what} needs both same and different pairs (got {n_same} same, {n_diff} different)")


def roc_curve(distances: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact ROC: ``(far, tar, thresholds)``, one point per unique distance.

    Sorted by ascending threshold, hence non-decreasing FAR and TAR.  The
    first point is ``(0, 0)`` at threshold ``-inf`` (accept nothing); then one
    point for every unique distance value ``t`` with the rates of the rule
    ``distance <= t``.  If there are failed pairs (+inf/NaN distance) the last
    point is at threshold ``+inf`` and is ``(1, 1)`` (see module docstring);
    otherwise the last finite threshold already gives ``(1, 1)``.
    """
    d, s = _prepare(distances, same)
    thr, tp, fp, n_same, n_diff = _roc_counts(d, s)
    _need_both(n_same, n_diff, "roc_curve")
    far = np.concatenate(([0.0], fp / n_diff))
    tar = np.concatenate(([0.0], tp / n_same))
    thresholds = np.concatenate(([-np.inf], thr))
    return far, tar, thresholds


def roc_auc(far: np.ndarray, tar: np.ndarray) -> float:
    """Area under the ROC curve by the trapezoidal rule.

    Points are sorted by (far, tar) first; the curve is extended with (0, 0)
    and (1, 1) if it does not contain them.  On the exact curve of
    :func:`roc_curve` this is the Mann-Whitney statistic (ties count 1/2).
    """
    far = np.asarray(far, dtype=np.float64).reshape(-1)
    tar = np.asarray(tar, dtype=np.float64).reshape(-1)
    if far.shape != tar.shape or far.size == 0:
        raise ValueError("far and tar must be non-empty and of equal length")
    order = np.lexsort((tar, far))
    far, tar = far[order], tar[order]
    if far[0] > 0 or tar[0] > 0:
        far, tar = np.concatenate(([0.0], far)), np.concatenate(([0.0], tar))
    if far[-1] < 1 or tar[-1] < 1:
        far, tar = np.concatenate((far, [1.0])), np.concatenate((tar, [1.0]))
    return float(np.sum(np.diff(far) * (tar[1:] + tar[:-1]) * 0.5))


def equal_error_rate(distances: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """``(eer, threshold)``.

    ``eer`` is the conventional interpolated crossing of FAR and FRR along the
    exact ROC curve (piecewise linear between consecutive points, including the
    (0,0) start and, with failures, the (1,1) end), so it is exact when some
    threshold gives FAR == FRR.  ``threshold`` is the *attainable* finite
    threshold (a distance value) at the end of the crossing segment where
    ``|FAR - FRR|`` is smaller; on a tie the smaller threshold.  If FAR == FRR
    holds at several consecutive thresholds, the smallest one is returned.
    """
    far, tar, thr = roc_curve(distances, same)
    return _eer_from_curve(far, tar, thr)


def _eer_from_curve(far: np.ndarray, tar: np.ndarray, thr: np.ndarray) -> tuple[float, float]:
    g = far - (1.0 - tar)  # FAR - FRR: non-decreasing in the threshold, -1 at the start, +1 at the end
    k = int(np.argmax(g >= 0))  # first point at or past the crossing (k >= 1 since g[0] = -1)
    if g[k] == 0 or k == 0:
        eer = float(far[k])
        cand = [k]
    else:
        # linear interpolation on segment k-1 -> k of FAR and FRR
        g0, g1 = g[k - 1], g[k]
        alpha = g0 / (g0 - g1)  # in (0, 1]
        eer = float(far[k - 1] + alpha * (far[k] - far[k - 1]))
        cand = [k - 1, k] if abs(g0) <= abs(g1) else [k, k - 1]
    for c in cand:
        if np.isfinite(thr[c]):
            return eer, float(thr[c])
    # both ends non-finite: only possible when no finite distance exists
    finite = thr[np.isfinite(thr)]
    return eer, float(finite[-1]) if finite.size else float("nan")


def _target_fp(far: float, n_diff: int) -> float:
    if not (0.0 <= far <= 1.0) or math.isnan(far):
        raise ValueError(f"far must be in [0, 1], got {far}")
    return far * n_diff * (1 + 1e-12) + 1e-9  # tolerate float error in far * n_diff


def _threshold_at_far_counts(thr, tp, fp, n_same, n_diff, far) -> tuple[float, int, int]:
    """Largest finite threshold with fp <= far*n_diff; -inf if none.  Returns (thr, tp, fp)."""
    limit = _target_fp(far, n_diff)
    ok = (fp <= limit) & np.isfinite(thr)
    if not ok.any():
        return float("-inf"), 0, 0
    k = int(np.flatnonzero(ok)[-1])  # fp non-decreasing, so this is the largest such threshold
    return float(thr[k]), int(tp[k]), int(fp[k])


def threshold_at_far(distances: np.ndarray, same: np.ndarray, far: float) -> float:
    """The largest threshold whose false-accept rate on the different pairs is <= ``far``.

    Candidates are the observed finite distance values (the rule
    ``distance <= t`` only changes there), so the returned threshold is itself
    a distance from the data.  Ties: all pairs at exactly the threshold
    distance are accepted together, so if accepting a group of tied different
    pairs would push the FAR above ``far`` the threshold stops at the previous
    distance value -- the achieved FAR can be below the target but never above
    it.  If even the smallest distance belongs to too many different pairs
    (e.g. ``far=0`` and the closest pair is an impostor) returns ``-inf``
    (accept nothing).  Failed pairs (+inf) are never accepted.
    """
    d, s = _prepare(distances, same)
    thr, tp, fp, n_same, n_diff = _roc_counts(d, s)
    _need_both(n_same, n_diff, "threshold_at_far")
    return _threshold_at_far_counts(thr, tp, fp, n_same, n_diff, far)[0]


def tar_at_far(distances: np.ndarray, same: np.ndarray, far: float) -> tuple[float, float, float]:
    """``(tar, threshold, achieved_far)`` at :func:`threshold_at_far`.

    ``tar`` is over all same pairs (failed ones count as rejects);
    ``achieved_far <= far`` always.  Note the resolution limit: with N
    different pairs, FAR targets below 1/N can only be met with zero false
    accepts.
    """
    d, s = _prepare(distances, same)
    thr, tp, fp, n_same, n_diff = _roc_counts(d, s)
    _need_both(n_same, n_diff, "tar_at_far")
    t, tp_k, fp_k = _threshold_at_far_counts(thr, tp, fp, n_same, n_diff, far)
    return tp_k / n_same, t, fp_k / n_diff


# --------------------------------------------------------------------------- LFW protocol


def _best_accuracy_threshold(d: np.ndarray, s: np.ndarray, choice: str) -> tuple[float, float]:
    """Threshold maximising accuracy of ``d <= t`` on (d, s); returns (threshold, accuracy)."""
    n = d.size
    if n == 0:
        raise ValueError("cannot choose a threshold on an empty set of pairs")
    thr, tp, fp, n_same, n_diff = _roc_counts(d, s)
    finite = np.isfinite(thr)
    thr, tp, fp = thr[finite], tp[finite], fp[finite]
    # candidate 0 = accept nothing; candidate k+1 = accept d <= thr[k]
    correct = np.concatenate(([n_diff], tp + (n_diff - fp)))
    best = int(np.argmax(correct))  # first maximum = smallest threshold
    acc = float(correct[best] / n)
    if best == 0:
        return float("-inf"), acc
    k = best - 1
    if choice == "midpoint" and k + 1 < thr.size:
        return float((thr[k] + thr[k + 1]) / 2.0), acc
    return float(thr[k]), acc


def lfw_protocol_accuracy(
    distances: np.ndarray,
    same: np.ndarray,
    folds: np.ndarray,
    *,
    threshold_choice: str = "midpoint",
) -> dict[str, Any]:
    """Standard LFW k-fold verification accuracy.

    For every fold, the threshold is the one maximising accuracy on the pairs
    of all the OTHER folds and is then applied to the fold itself; returns the
    mean and (population, ``ddof=0``, as in the usual LFW evaluation code)
    standard deviation over folds of those held-out accuracies.

    Threshold choice on the training folds: the accuracy of ``d <= t`` is
    maximal on an interval ``[d_k, d_{k+1})`` between two consecutive observed
    distances; ``threshold_choice="midpoint"`` (default) returns its midpoint
    ``(d_k + d_{k+1}) / 2`` (max-margin, does not favour either side),
    ``"lowest"`` returns ``d_k`` (what grid-search-with-argmax code converges
    to).  Among several equally good intervals the one with the smallest
    thresholds is taken.  If accepting nothing is best the threshold is
    ``-inf``.  Failed pairs are never accepted.

    With a single fold there are no other folds: the threshold is chosen on
    the fold itself (optimistic!) and the result says so
    (``threshold_selection == "same-fold"`` plus a ``note``).

    Returns a dict with ``accuracy_mean``, ``accuracy_std``, ``threshold_mean``,
    ``n_folds``, ``folds`` (fold ids), ``fold_accuracies``,
    ``fold_thresholds``, ``fold_train_accuracies``, ``fold_sizes``,
    ``threshold_selection``, ``threshold_choice`` and ``note``.
    """
    if threshold_choice not in ("midpoint", "lowest"):
        raise ValueError(f"threshold_choice must be 'midpoint' or 'lowest', got {threshold_choice!r}")
    d, s = _prepare(distances, same)
    f = np.asarray(folds).reshape(-1)
    if f.shape != d.shape:
        raise ValueError(f"folds must have one entry per pair ({d.size}), got {f.size}")
    fold_ids = np.unique(f)
    if fold_ids.size == 0:
        raise ValueError("no pairs")
    single = fold_ids.size == 1
    accs, thrs, train_accs, sizes = [], [], [], []
    for fid in fold_ids:
        test = f == fid
        train = test if single else ~test
        t, train_acc = _best_accuracy_threshold(d[train], s[train], threshold_choice)
        pred = d[test] <= t
        accs.append(float(np.mean(pred == s[test])))
        thrs.append(t)
        train_accs.append(train_acc)
        sizes.append(int(test.sum()))
    accs_a = np.asarray(accs)
    finite_thr = [t for t in thrs if np.isfinite(t)]
    if single:
        selection = "same-fold"
        note = (
            "only one fold: the threshold was chosen on the evaluated pairs themselves, "
            "so the accuracy is optimistic (not the LFW protocol)"
        )
    else:
        selection = "other-folds"
        note = (
            f"{fold_ids.size}-fold LFW protocol: each fold's threshold maximises accuracy "
            "on the other folds"
        )
    return {
        "accuracy_mean": float(accs_a.mean()),
        "accuracy_std": float(accs_a.std()),
        "threshold_mean": float(np.mean(finite_thr)) if finite_thr else float("nan"),
        "n_folds": int(fold_ids.size),
        "folds": [int(x) if np.issubdtype(fold_ids.dtype, np.integer) else str(x) for x in fold_ids],
        "fold_accuracies": accs,
        "fold_thresholds": thrs,
        "fold_train_accuracies": train_accs,
        "fold_sizes": sizes,
        "threshold_selection": selection,
        "threshold_choice": threshold_choice,
        "note": note,
    }


# --------------------------------------------------------------------------- summary


def _json_safe(obj: Any) -> Any:
    """Recursively convert numpy scalars/arrays to Python and non-finite floats to None."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _json_safe(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        x = float(obj)
        return x if math.isfinite(x) else None
    return obj


def verification_summary(
    distances: np.ndarray,
    same: np.ndarray,
    folds: np.ndarray | None = None,
    *,
    fars: Sequence[float] = DEFAULT_FARS,
    threshold_choice: str = "midpoint",
    n_images: int | None = None,
    n_failed_images: int | None = None,
) -> dict[str, Any]:
    """All verification figures in one JSON-serialisable dict.

    ``distances`` may contain +inf/NaN for failed pairs (counted under
    ``failures``, handled per :data:`FAILURE_POLICY`).  ``folds`` (one id per
    pair) enables the LFW k-fold protocol; without it the whole set is one fold
    (same-fold threshold, flagged).  ``n_images`` / ``n_failed_images`` are
    optional image-level counts copied into ``failures``.

    Non-finite numbers (e.g. a ``-inf`` "accept nothing" threshold) are
    written as ``None`` so that ``json.dumps(..., allow_nan=False)`` works.

    Keys: ``n_pairs``, ``n_same``, ``n_different``, ``failures`` {``n_failed_pairs``,
    ``n_failed_same``, ``n_failed_different``, ``n_images``, ``n_failed_images``,
    ``policy``}, ``accuracy`` (the :func:`lfw_protocol_accuracy` dict),
    ``auc``, ``eer``, ``eer_threshold``, ``tar_at_far`` (list of {``far``,
    ``tar``, ``threshold``, ``achieved_far``}), ``distance_stats`` (mean/std/median
    of finite same and different distances).
    """
    d, s = _prepare(distances, same)
    failed = ~np.isfinite(d)
    thr, tp, fp, n_same, n_diff = _roc_counts(d, s)
    _need_both(n_same, n_diff, "verification_summary")
    tar_rows = []
    for target in fars:
        t, tp_k, fp_k = _threshold_at_far_counts(thr, tp, fp, n_same, n_diff, float(target))
        tar_rows.append(
            {"far": float(target), "tar": tp_k / n_same, "threshold": t, "achieved_far": fp_k / n_diff}
        )
    far_curve = np.concatenate(([0.0], fp / n_diff))
    del fp
    tar_curve = np.concatenate(([0.0], tp / n_same))
    del tp
    thr = np.concatenate(([-np.inf], thr))
    auc = roc_auc(far_curve, tar_curve)
    eer, eer_thr = _eer_from_curve(far_curve, tar_curve, thr)
    del far_curve, tar_curve, thr  # free the curve before the per-fold sorts
    f = np.zeros(d.size, dtype=np.int64) if folds is None else folds
    acc = lfw_protocol_accuracy(d, s, f, threshold_choice=threshold_choice)

    def stats(x: np.ndarray) -> dict[str, Any]:
        x = x[np.isfinite(x)]
        if x.size == 0:
            return {"n": 0, "mean": None, "std": None, "median": None}
        return {"n": int(x.size), "mean": float(x.mean()), "std": float(x.std()), "median": float(np.median(x))}

    summary = {
        "n_pairs": int(d.size),
        "n_same": n_same,
        "n_different": n_diff,
        "failures": {
            "n_failed_pairs": int(failed.sum()),
            "n_failed_same": int((failed & s).sum()),
            "n_failed_different": int((failed & ~s).sum()),
            "n_images": n_images,
            "n_failed_images": n_failed_images,
            "policy": FAILURE_POLICY,
        },
        "accuracy": acc,
        "auc": auc,
        "eer": eer,
        "eer_threshold": eer_thr,
        "tar_at_far": tar_rows,
        "distance_stats": {"same": stats(d[s]), "different": stats(d[~s])},
    }
    return _json_safe(summary)
