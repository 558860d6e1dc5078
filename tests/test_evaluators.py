"""Tests for model_build.evaluators (pure numpy + matplotlib; no TensorFlow)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from model_build.evaluators import (
    Pair,
    PairsProtocol,
    all_pairs,
    all_pairs_distances,
    equal_error_rate,
    iter_all_pairs,
    lfw_protocol_accuracy,
    pair_distances,
    parse_pairs,
    people_in_folds,
    plot_roc_curves,
    read_pairs,
    roc_auc,
    roc_curve,
    split_distances,
    tar_at_far,
    threshold_at_far,
    verification_summary,
    write_report,
)

REAL_PAIRS = Path("/work/shared/data/lfw_pairs_dev.txt")
REAL_ROOT = Path("/work/shared/data/lfw")


def _ds(same_d, diff_d):
    d = np.concatenate([np.asarray(same_d, float), np.asarray(diff_d, float)])
    s = np.concatenate([np.ones(len(same_d), bool), np.zeros(len(diff_d), bool)])
    return d, s


def _mann_whitney(d, s):
    """P(same distance < different distance), ties 1/2, by brute force."""
    a, b = d[s][:, None], d[~s][None, :]
    with np.errstate(invalid="ignore"):
        return float(((a < b) + 0.5 * (a == b)).mean())


# --------------------------------------------------------------------------- metrics


def test_no_tensorflow_imported():
    """The benchmark harness reuses the evaluators on runtime-only installs. Checked in
    a fresh interpreter: other tests in this session import TensorFlow."""
    code = "import sys, model_build.evaluators; assert 'tensorflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_perfectly_separable():
    d, s = _ds([0.1, 0.2, 0.3], [0.8, 0.9, 1.2])
    far, tar, thr = roc_curve(d, s)
    assert roc_auc(far, tar) == 1.0
    eer, eer_thr = equal_error_rate(d, s)
    assert eer == 0.0 and eer_thr == pytest.approx(0.3)
    acc = lfw_protocol_accuracy(d, s, np.zeros(d.size, int))
    assert acc["accuracy_mean"] == 1.0 and acc["accuracy_std"] == 0.0
    assert acc["fold_thresholds"] == [pytest.approx(0.55)]  # midpoint of the gap 0.3 .. 0.8
    assert tar_at_far(d, s, 0.0) == (1.0, pytest.approx(0.3), 0.0)


def test_crafted_roc_points_and_tar_at_far():
    # same: 0.1 0.3 0.5 0.7   different: 0.2 0.4 0.6 0.8  (interleaved)
    d, s = _ds([0.1, 0.3, 0.5, 0.7], [0.2, 0.4, 0.6, 0.8])
    far, tar, thr = roc_curve(d, s)
    np.testing.assert_allclose(thr, [-np.inf, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    np.testing.assert_allclose(far, [0, 0, 0.25, 0.25, 0.5, 0.5, 0.75, 0.75, 1.0])
    np.testing.assert_allclose(tar, [0, 0.25, 0.25, 0.5, 0.5, 0.75, 0.75, 1.0, 1.0])
    assert roc_auc(far, tar) == pytest.approx(10 / 16)  # 4+3+2+1 ordered pairs of 16
    assert equal_error_rate(d, s) == (pytest.approx(0.5), pytest.approx(0.4))  # FAR = FRR = 0.5 at 0.4
    assert tar_at_far(d, s, 0.25) == (0.5, pytest.approx(0.3), 0.25)
    assert tar_at_far(d, s, 0.3) == (0.5, pytest.approx(0.3), 0.25)  # achieved FAR below target
    assert tar_at_far(d, s, 0.0) == (0.25, pytest.approx(0.1), 0.0)
    assert tar_at_far(d, s, 1.0) == (1.0, pytest.approx(0.8), 1.0)
    # largest threshold with FAR <= 0.5 is 0.5 (a same pair), not 0.4 where FAR first reaches 0.5
    assert threshold_at_far(d, s, 0.5) == pytest.approx(0.5)


def test_threshold_at_far_ties_and_accept_nothing():
    # a different pair ties with a same pair at 0.3: accepting 0.3 costs FAR 0.5
    d, s = _ds([0.1, 0.3], [0.3, 0.9])
    assert threshold_at_far(d, s, 0.0) == pytest.approx(0.1)
    assert tar_at_far(d, s, 0.49) == (0.5, pytest.approx(0.1), 0.0)
    assert tar_at_far(d, s, 0.5) == (1.0, pytest.approx(0.3), 0.5)
    # the closest pair is an impostor: FAR 0 is only reachable by accepting nothing
    d, s = _ds([0.5, 0.6], [0.1, 0.9])
    assert threshold_at_far(d, s, 0.0) == -np.inf
    assert tar_at_far(d, s, 0.0) == (0.0, -np.inf, 0.0)
    with pytest.raises(ValueError):
        threshold_at_far(d, s, 1.5)


def test_eer_interpolated_between_roc_points():
    # thresholds: 0.1 -> FAR 0, FRR 1/2 ; 0.2 -> FAR 1/3, FRR 1/2 ; 0.3 -> FAR 1/3, FRR 0
    # FAR == FRR is crossed on the segment 0.2 -> 0.3 at 1/3; 0.2 is the nearer attainable threshold
    d, s = _ds([0.1, 0.3], [0.2, 0.35, 0.4])
    eer, thr = equal_error_rate(d, s)
    assert eer == pytest.approx(1 / 3)
    assert thr == pytest.approx(0.2)


def test_roc_matches_brute_force_with_ties():
    rng = np.random.default_rng(0)
    d = np.round(rng.uniform(0, 2, 300), 1)  # many ties
    s = rng.random(300) < 0.4
    d[s] -= 0.3
    d = np.clip(d, 0, 2)
    far, tar, thr = roc_curve(d, s)
    assert np.all(np.diff(thr) > 0) and np.all(np.diff(far) >= 0) and np.all(np.diff(tar) >= 0)
    np.testing.assert_array_equal(thr[1:], np.unique(d))
    for t, f, a in zip(thr[1:], far[1:], tar[1:]):
        assert f == pytest.approx(np.mean(d[~s] <= t)) and a == pytest.approx(np.mean(d[s] <= t))
    assert roc_auc(far, tar) == pytest.approx(_mann_whitney(d, s))
    for target in (0.0, 0.01, 0.1, 0.5):
        t = threshold_at_far(d, s, target)
        ok = [u for u in np.unique(d) if np.mean(d[~s] <= u) <= target]
        assert t == (max(ok) if ok else -np.inf)


def test_roc_needs_both_classes():
    with pytest.raises(ValueError):
        roc_curve(np.array([0.1, 0.2]), np.array([True, True]))


# --------------------------------------------------------------------------- LFW protocol


def test_lfw_threshold_chosen_on_other_folds():
    # fold 0: same 0.2 0.6 | diff 0.8 1.0  -> own best interval [0.6, 0.8), midpoint 0.7
    # fold 1: same 0.2 0.3 | diff 0.5 1.0  -> own best interval [0.3, 0.5), midpoint 0.4
    d0, s0 = _ds([0.2, 0.6], [0.8, 1.0])
    d1, s1 = _ds([0.2, 0.3], [0.5, 1.0])
    d, s = np.concatenate([d0, d1]), np.concatenate([s0, s1])
    folds = np.array([0] * 4 + [1] * 4)
    res = lfw_protocol_accuracy(d, s, folds)
    assert res["threshold_selection"] == "other-folds" and res["n_folds"] == 2
    # fold 0 is evaluated with fold 1's threshold 0.4: rejects same 0.6 -> 3/4
    # fold 1 is evaluated with fold 0's threshold 0.7: accepts diff 0.5 -> 3/4
    assert res["fold_thresholds"] == [pytest.approx(0.4), pytest.approx(0.7)]
    assert res["fold_accuracies"] == [0.75, 0.75]
    assert res["fold_train_accuracies"] == [1.0, 1.0]
    assert res["accuracy_mean"] == 0.75 and res["accuracy_std"] == 0.0
    assert res["threshold_mean"] == pytest.approx(0.55)
    # "lowest" takes the left end of the best interval instead (0.3 / 0.6): same accuracies here
    low = lfw_protocol_accuracy(d, s, folds, threshold_choice="lowest")
    assert low["fold_thresholds"] == [pytest.approx(0.3), pytest.approx(0.6)]
    assert low["fold_accuracies"] == [0.75, 0.75]
    # choosing on the own fold would have given 1.0 -- the single-fold fallback does that, and says so
    own = lfw_protocol_accuracy(d0, s0, np.zeros(4, int))
    assert own["accuracy_mean"] == 1.0 and own["threshold_selection"] == "same-fold"
    assert "optimistic" in own["note"]


def test_lfw_three_folds_std():
    # folds 0 and 1 separable around 0.5, fold 2 has a same pair at 0.55
    d = np.array([0.1, 0.2, 0.8, 0.9, 0.3, 0.4, 0.7, 0.6, 0.1, 0.55, 0.9, 0.95])
    s = np.array([1, 1, 0, 0] * 3, bool)
    folds = np.repeat([0, 1, 2], 4)
    res = lfw_protocol_accuracy(d, s, folds)
    # training on {1,2}: best [0.55, 0.6) -> 0.575 ; {0,2}: [0.55, 0.8) -> 0.675 ; {0,1}: [0.4, 0.6) -> 0.5
    assert res["fold_thresholds"] == [pytest.approx(0.575), pytest.approx(0.675), pytest.approx(0.5)]
    assert res["fold_accuracies"] == [1.0, 0.75, 0.75]  # fold 1: diff 0.6 accepted; fold 2: same 0.55 rejected
    assert res["accuracy_mean"] == pytest.approx(2.5 / 3)
    assert res["accuracy_std"] == pytest.approx(np.std([1.0, 0.75, 0.75]))


# --------------------------------------------------------------------------- failures (NaN embeddings)


def _unit(v):
    v = np.asarray(v, float)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_nan_embeddings_policy():
    rng = np.random.default_rng(1)
    base = _unit(rng.normal(size=(8, 16)))
    a = base.copy()
    b = base.copy()
    b[:4] = _unit(base[:4] + 0.05 * rng.normal(size=(4, 16)))  # 4 same pairs: small distances
    b[4:] = _unit(rng.normal(size=(4, 16)))  # 4 different pairs: large distances
    same = np.array([1, 1, 1, 1, 0, 0, 0, 0], bool)
    a[0] = np.nan  # a failed same pair
    b[5] = np.nan  # a failed different pair
    d = pair_distances(a, b)
    assert np.isinf(d[0]) and np.isinf(d[5]) and np.isfinite(np.delete(d, [0, 5])).all()
    assert np.all(d[1:4] < 0.5) and np.all(d[[4, 6, 7]] > 0.5)

    summ = verification_summary(d, same, fars=(0.0, 0.25))
    f = summ["failures"]
    assert (f["n_failed_pairs"], f["n_failed_same"], f["n_failed_different"]) == (2, 1, 1)
    # failed same pair = false reject, failed different pair = correct reject
    assert summ["accuracy"]["accuracy_mean"] == pytest.approx(7 / 8)
    assert summ["tar_at_far"][0]["tar"] == 0.75 and summ["tar_at_far"][0]["achieved_far"] == 0.0
    # AUC: failures rank last (tied): (3*4 + 0*3 + 0.5) / 16
    assert summ["auc"] == pytest.approx(12.5 / 16)
    json.dumps(summ, allow_nan=False)  # JSON-serialisable, no NaN/inf

    # NaN distances are treated exactly like +inf
    d_nan = np.where(np.isinf(d), np.nan, d)
    assert verification_summary(d_nan, same, fars=(0.0, 0.25)) == summ
    far, tar, thr = roc_curve(d_nan, same)
    assert thr[-1] == np.inf and far[-1] == 1.0 and tar[-1] == 1.0
    assert far[-2] == 0.75 and tar[-2] == 0.75  # last finite threshold: failures never accepted
    sd, dd = split_distances(d_nan, same)
    assert np.isinf(sd).sum() == 1 and np.isinf(dd).sum() == 1


def test_pair_distances_values():
    a = np.array([[1.0, 0.0], [0.0, 1.0]])
    b = np.array([[0.0, 1.0], [0.0, -1.0]])
    np.testing.assert_allclose(pair_distances(a, b), [np.sqrt(2), 2.0])
    with pytest.raises(ValueError):
        pair_distances(a, b[:1])


# --------------------------------------------------------------------------- all pairs


def test_all_pairs_matches_triu_indices():
    labels = np.array(["a", "b", "a", "c", "b", "a", "d"])
    i, j, same = all_pairs(labels, chunk_pairs=4)  # several chunks
    ti, tj = np.triu_indices(len(labels), 1)
    np.testing.assert_array_equal(i, ti)
    np.testing.assert_array_equal(j, tj)
    np.testing.assert_array_equal(same, labels[ti] == labels[tj])
    assert i.dtype == np.int32
    chunks = list(iter_all_pairs(labels, chunk_pairs=5))
    assert len(chunks) > 1 and sum(c[0].size for c in chunks) == 21
    with pytest.raises(ValueError, match="max_pairs"):
        all_pairs(labels, max_pairs=20)
    assert all_pairs([7])[0].size == 0


def test_all_pairs_distances_matches_brute_force():
    rng = np.random.default_rng(2)
    emb = _unit(rng.normal(size=(23, 8)))
    emb[5] = np.nan
    labels = rng.integers(0, 5, 23)
    d, same = all_pairs_distances(emb, labels, chunk_elems=50)  # 2 rows per block
    i, j, s_ref = all_pairs(labels)
    np.testing.assert_array_equal(same, s_ref)
    ref = pair_distances(emb[i], emb[j])
    np.testing.assert_allclose(d, ref, atol=1e-6)
    assert np.isinf(d).sum() == 22
    with pytest.raises(ValueError, match="max_pairs"):
        all_pairs_distances(emb, labels, max_pairs=100)


def test_all_pairs_vectorised_scale():
    labels = np.repeat(np.arange(200), 10)  # 2000 images -> ~2M pairs, chunked
    i, j, same = all_pairs(labels, chunk_pairs=500_000)
    assert i.size == 2000 * 1999 // 2
    assert same.sum() == 200 * 45
    assert i[-1] == 1998 and j[-1] == 1999


# --------------------------------------------------------------------------- pairs files

SYNTH = (
    "2\t2\r\n"
    "Alice\t1\t2\r\n"
    "Bob 1 3\r\n"
    "Alice\t1\tCarol\t1\r\n"
    "Bob\t2\tDan\t1\r\n"
    "Erin\t1\t2\r\n"
    "Frank  2   4\r\n"
    "Erin\t2\tGina\t3\r\n"
    "Frank\t1\tHal\t12\r\n"
    "\r\n"
    "   \n"
)


def test_parse_synthetic_pairs(tmp_path):
    f = tmp_path / "pairs.txt"
    f.write_bytes(SYNTH.encode())
    proto = read_pairs(f)
    assert isinstance(proto, PairsProtocol)
    assert proto.n_folds == 2 and proto.pairs_per_fold == 2 and len(proto) == 8
    assert proto.pairs[0] == Pair("Alice/Alice_0001.jpg", "Alice/Alice_0002.jpg", True, 0, "Alice", "Alice")
    assert proto.pairs[2].path_b == "Carol/Carol_0001.jpg" and not proto.pairs[2].same
    assert proto.pairs[7].path_b == "Hal/Hal_0012.jpg"
    np.testing.assert_array_equal(proto.same, [1, 1, 0, 0, 1, 1, 0, 0])
    np.testing.assert_array_equal(proto.folds, [0, 0, 0, 0, 1, 1, 1, 1])
    assert people_in_folds(proto, [0]) == {"Alice", "Bob", "Carol", "Dan"}
    assert people_in_folds(proto, 1) == {"Erin", "Frank", "Gina", "Hal"}
    with pytest.raises(ValueError):
        people_in_folds(proto, [2])

    rooted = read_pairs(f, root=tmp_path / "lfw")
    assert rooted.pairs[0].path_a == str(tmp_path / "lfw" / "Alice" / "Alice_0001.jpg")
    paths, ia, ib = rooted.pair_indices()
    assert [paths[k] for k in ia] == [p.path_a for p in rooted.pairs]
    assert [paths[k] for k in ib] == [p.path_b for p in rooted.pairs]


@pytest.mark.parametrize(
    "text, lineno",
    [
        ("1\t1\nAlice\t1\t2\nAlice\t1\tBob\n", 3),  # mismatched line with 3 fields
        ("1\t1\nAlice\t1\tBob\t2\nAlice\t1\tBob\t2\n", 2),  # mismatched where matched expected
        ("1\t1\nAlice\tx\t2\nAlice\t1\tBob\t2\n", 2),  # non-integer index
        ("1\t1\nAlice\t0\t2\nAlice\t1\tBob\t2\n", 2),  # index 0
        ("1\t1\nAlice\t1\t2\nAlice\t1\tAlice\t2\n", 3),  # mismatched pair, same person
        ("1\t1\nAlice\t1\t2\nAlice\t1\tBob\t2\nCarl\t1\t2\n", 4),  # extra line
        ("2\t1\nAlice\t1\t2\nAlice\t1\tBob\t2\n", 3),  # file too short
        ("1\tx\nAlice\t1\t2\n", 1),  # bad header
        ("1\t1\n../etc\t1\t2\nAlice\t1\tBob\t2\n", 2),  # path escape
    ],
)
def test_parse_malformed(text, lineno):
    with pytest.raises(ValueError, match=rf"<pairs>:{lineno}: "):
        parse_pairs(text)


def test_parse_headerless_and_single_number_header():
    proto = parse_pairs("Alice 1 2\nAlice 1 Bob 3\nBob 1 2\n\n")
    assert proto.n_folds == 1 and not proto.has_header and proto.pairs_per_fold is None
    assert [p.same for p in proto.pairs] == [True, False, True]
    assert {p.fold for p in proto.pairs} == {0}
    proto = parse_pairs("2\nA 1 2\nB 1 2\nA 1 B 1\nB 2 C 1\n")  # pairsDevTrain.txt style
    assert proto.n_folds == 1 and proto.pairs_per_fold == 2
    assert [p.same for p in proto.pairs] == [True, True, False, False]
    with pytest.raises(ValueError, match=r"<pairs>:2: "):
        parse_pairs("A 1 2\nA 1 B\n")
    with pytest.raises(ValueError, match="empty"):
        parse_pairs("\n\n")


@pytest.mark.skipif(not REAL_PAIRS.exists(), reason="LFW dev pairs file not available")
def test_real_lfw_pairs_file():
    proto = read_pairs(REAL_PAIRS, root=REAL_ROOT)
    assert len(proto.pairs) == 4800 and proto.n_folds == 8 and proto.pairs_per_fold == 300
    assert int(proto.same.sum()) == 2400
    assert np.bincount(proto.folds).tolist() == [600] * 8
    assert people_in_folds(proto, range(8))
    if REAL_ROOT.exists():
        assert Path(proto.pairs[0].path_a).exists()


# --------------------------------------------------------------------------- report


def test_write_report(tmp_path):
    rng = np.random.default_rng(3)
    same_d = np.clip(rng.normal(0.7, 0.15, 300), 0, 2)
    diff_d = np.clip(rng.normal(1.3, 0.15, 600), 0, 2)
    same_d[0] = np.inf  # one failure
    d, s = _ds(same_d, diff_d)
    folds = np.concatenate([np.arange(300) % 3, np.arange(600) % 3])
    summ = verification_summary(d, s, folds, fars=(1e-3, 1e-2, 1e-1), n_images=1000, n_failed_images=1)
    summ["calibration"] = {"target_far": 1e-3, "threshold": float("-inf"), "tar": 0.0}  # caller extras
    far, tar, _ = roc_curve(d, s)
    paths = write_report(summ, tmp_path / "rep", *split_distances(d, s), roc=(far, tar), title="unit test")
    for name in ("report.md", "report.json", "roc.png", "distances.png"):
        p = tmp_path / "rep" / name
        assert p.exists() and p.stat().st_size > 0
    for name in ("roc.png", "distances.png"):
        assert (tmp_path / "rep" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (tmp_path / "rep" / name).stat().st_size > 5000
    md = (tmp_path / "rep" / "report.md").read_text()
    assert f"{summ['accuracy']['accuracy_mean']:.4f}" in md
    assert "TAR at fixed FAR" in md and "| 1e-03 |" in md and "failed pairs" in md
    assert "### calibration" in md and "| target_far | 0.0010 |" in md
    on_disk = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert on_disk["calibration"]["threshold"] is None  # -inf written as null
    assert on_disk["accuracy"] == summ["accuracy"] and on_disk["tar_at_far"] == summ["tar_at_far"]
    assert set(paths) == {"md", "json", "roc", "distances"}


def test_plot_several_roc_curves(tmp_path):
    rng = np.random.default_rng(4)
    curves = {}
    for name, shift in (("model A", 0.6), ("model B", 0.3)):
        d, s = _ds(rng.normal(1.0 - shift, 0.2, 200), rng.normal(1.0, 0.2, 20_000))
        d = np.clip(d, 0.0, 2.0)
        far, tar, _ = roc_curve(d, s)
        curves[name] = (far, tar)
    out = plot_roc_curves(curves, tmp_path / "cmp" / "roc.png", title="comparison", max_points=1000)
    assert out.exists() and out.read_bytes()[:4] == b"\x89PNG"


def test_roc_labels_that_would_print_over_each_other_become_one():
    """FAR<=1e-3 and FAR<=1e-4 met at the same point (docs/model-report/int8/roc.png) used
    to print on top of each other."""
    from model_build.evaluators.report import merge_close_labels
    points = [(0.0, 0.76, "FAR<=1e-03"), (0.0, 0.76, "FAR<=1e-04"), (0.5, 0.87, "FAR<=0.01"),
              (0.53, 0.9, "EER"), (0.9, 0.9, "")]
    assert merge_close_labels(points, lambda x, y: (x, y)) == [
        (0.0, 0.76, "FAR<=1e-03, FAR<=1e-04"), (0.5, 0.87, "FAR<=0.01, EER"), (0.9, 0.9, "")]


def test_roc_auc_and_far_thresholds_agree_with_scikit_learn():
    """The hand-written ROC is kept (it ranks failed pairs, +inf, last, which scikit-learn
    refuses, and the bench must not need the build extra); scikit-learn is its oracle on a
    vector with ties."""
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    same = rng.random(400) < 0.3
    d = np.round(np.where(same, rng.normal(0.8, 0.2, 400), rng.normal(1.3, 0.2, 400)), 2)  # rounding: ties
    far, tar, thr = roc_curve(d, same)
    sk_far, sk_tar, sk_thr = metrics.roc_curve(same, -d, drop_intermediate=False)
    np.testing.assert_allclose(far, sk_far)
    np.testing.assert_allclose(tar, sk_tar)
    np.testing.assert_allclose(thr[1:], -sk_thr[1:])
    assert roc_auc(far, tar) == pytest.approx(metrics.roc_auc_score(same, -d))
    for target in (0.01, 0.05, 0.2):
        ok = sk_far <= target  # the largest threshold whose FAR stays within the target
        tar_k, threshold, achieved = tar_at_far(d, same, target)
        assert (tar_k, threshold, achieved) == pytest.approx((sk_tar[ok][-1], -sk_thr[ok][-1], sk_far[ok][-1]))
