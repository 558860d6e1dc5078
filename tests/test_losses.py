"""Tests for model_build.losses against hand-computed and brute-force values."""

from __future__ import annotations

import math

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from model_build.losses import (  # noqa: E402
    LOSS_NAMES,
    MINING_MODES,
    BinaryPairLoss,
    ContrastiveLoss,
    MarginLoss,
    PairClassifierHead,
    TripletLoss,
    contrastive_loss,
    distance_weighted_log_weights,
    get_loss,
    margin_loss,
    pairwise_binary_loss,
    pairwise_distances,
    pairwise_squared_distances,
    sample_distance_weighted_negatives,
    triplet_hinge,
    triplet_loss,
)

ATOL = 1e-5


def _f(x) -> float:
    return float(np.asarray(x))


def _bisector_batch(negative_sq_dists):
    """Anchor (0,0) and positive (1,0), labels 0, so d²(a,p) = 1 both ways.

    Each negative sits on the perpendicular bisector x = 0.5 with its own
    label, at the requested squared distance from BOTH anchors; the only
    anchor-positive pairs are (0,1) and (1,0), which see identical triplets.
    """
    points = [[0.0, 0.0], [1.0, 0.0]]
    for d2 in negative_sq_dists:
        points.append([0.5, math.sqrt(d2 - 0.25)])
    labels = [0, 0] + list(range(1, len(negative_sq_dists) + 1))
    return np.array(labels), np.array(points, np.float32)


# ----------------------------------------------------------------------------
# Brute-force NumPy references (explicit loops over pairs / triplets)
# ----------------------------------------------------------------------------


def _ref_d2(e):
    e = np.asarray(e, np.float64)
    return ((e[:, None, :] - e[None, :, :]) ** 2).sum(-1)


def _ref_pairs(labels):
    n = len(labels)
    for a in range(n):
        negs = [k for k in range(n) if labels[k] != labels[a]]
        for p in range(n):
            if p != a and labels[p] == labels[a] and negs:
                yield a, p, negs


def _ref_semi_hard(labels, e, m):
    d = _ref_d2(e)
    losses = []
    for a, p, negs in _ref_pairs(labels):
        farther = [d[a, n] for n in negs if d[a, n] > d[a, p]]
        chosen = min(farther) if farther else max(d[a, n] for n in negs)
        losses.append(max(d[a, p] - chosen + m, 0.0))
    return float(np.mean(losses)) if losses else 0.0


def _ref_batch_hard(labels, e, m):
    d = _ref_d2(e)
    n = len(labels)
    losses = []
    for a in range(n):
        pos = [d[a, p] for p in range(n) if p != a and labels[p] == labels[a]]
        neg = [d[a, k] for k in range(n) if labels[k] != labels[a]]
        if pos and neg:
            losses.append(max(max(pos) - min(neg) + m, 0.0))
    return float(np.mean(losses)) if losses else 0.0


def _ref_batch_all(labels, e, m):
    d = _ref_d2(e)
    losses = [
        d[a, p] - d[a, n] + m for a, p, negs in _ref_pairs(labels) for n in negs
    ]
    active = [x for x in losses if x > 1e-16]
    return float(np.mean(active)) if active else 0.0


def _ref_contrastive(labels, e, m):
    d = np.sqrt(_ref_d2(e))
    n = len(labels)
    terms = []
    for i in range(n):
        for j in range(i + 1, n):
            if labels[i] == labels[j]:
                terms.append(d[i, j] ** 2)
            else:
                terms.append(max(m - d[i, j], 0.0) ** 2)
    return float(np.mean(terms)) if terms else 0.0


def _random_batch(seed, n_ids=4, per_id=3, dim=5):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_ids), per_id)
    emb = rng.normal(size=(n_ids * per_id, dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    return labels, emb


# ----------------------------------------------------------------------------
# Distances
# ----------------------------------------------------------------------------


def test_pairwise_distances_hand_values():
    e = np.array([[0, 0], [3, 4], [1, 0]], np.float32)
    d2 = pairwise_squared_distances(e).numpy()
    np.testing.assert_allclose(d2, [[0, 25, 1], [25, 0, 20], [1, 20, 0]], atol=1e-4)
    np.testing.assert_allclose(
        pairwise_distances(e).numpy(), np.sqrt([[0, 25, 1], [25, 0, 20], [1, 20, 0]]), atol=1e-4
    )


def test_pairwise_squared_distances_nonnegative_with_exact_zero_diagonal():
    rng = np.random.default_rng(0)
    e = (rng.normal(size=(16, 8)) * 1e3).astype(np.float32)
    e[3] = e[5]  # duplicate: Gram expansion would give ±noise
    d2 = pairwise_squared_distances(e).numpy()
    assert (d2 >= 0).all()
    assert (np.diag(d2) == 0).all()
    assert (np.diag(pairwise_distances(e).numpy()) == 0).all()


def test_pairwise_distance_gradient_finite_for_coincident_points():
    e = tf.constant([[1.0, 2.0], [1.0, 2.0], [0.0, 1.0]])
    with tf.GradientTape() as tape:
        tape.watch(e)
        total = tf.reduce_sum(pairwise_distances(e))
    grad = tape.gradient(total, e).numpy()
    assert np.isfinite(grad).all()


# ----------------------------------------------------------------------------
# Triplet loss: hand-computed cases
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("d_an, expected", [(0.85, 0.05), (0.95, 0.0)])
def test_facenet_hinge_example(d_an, expected):
    assert _f(triplet_hinge(0.8, d_an, 0.1)) == pytest.approx(expected, abs=ATOL)


@pytest.mark.parametrize("mining", MINING_MODES)
@pytest.mark.parametrize("d_an, expected", [(0.85, 0.05), (0.95, 0.0)])
def test_facenet_example_in_a_batch(mining, d_an, expected):
    # A, P at (∓√0.2, 0): d²(A,P) = 0.8; N at (0, h) with d²(A,N) = d²(P,N) = d_an,
    # so both anchor-positive pairs form the single triplet of the example.
    a = math.sqrt(0.2)
    e = np.array([[-a, 0], [a, 0], [0, math.sqrt(d_an - 0.2)]], np.float32)
    loss = triplet_loss([0, 0, 1], e, margin=0.1, mining=mining, seed=0)
    assert _f(loss) == pytest.approx(expected, abs=ATOL)


# d²(a,p) = 1, margin 0.2; negatives: hard 0.9, semi-hard 1.1, easy 1.5.
@pytest.mark.parametrize(
    "mining, expected",
    [
        ("semi-hard", 0.1),  # 1 − 1.1 + 0.2: the semi-hard one, not the hard one
        ("batch-hard", 0.3),  # 1 − 0.9 + 0.2: the hardest negative
        ("batch-all", 0.2),  # mean of the active triplets {0.3, 0.1}; 1.5 is inactive
    ],
)
def test_mining_picks_the_expected_negative(mining, expected):
    labels, e = _bisector_batch([0.9, 1.1, 1.5])
    assert _f(triplet_loss(labels, e, margin=0.2, mining=mining)) == pytest.approx(
        expected, abs=ATOL
    )


def test_semi_hard_falls_back_to_largest_negative_when_none_is_farther():
    # TF-Addons semantics: both negatives are closer than the positive (0.9, 0.95
    # < 1), so the farthest of them is used: 1 − 0.95 + 0.2 = 0.25.
    labels, e = _bisector_batch([0.9, 0.95])
    assert _f(triplet_loss(labels, e, 0.2, "semi-hard")) == pytest.approx(0.25, abs=ATOL)
    assert _f(triplet_loss(labels, e, 0.2, "batch-hard")) == pytest.approx(0.3, abs=ATOL)


def test_semi_hard_negative_beyond_margin_gives_zero():
    labels, e = _bisector_batch([1.5])
    assert _f(triplet_loss(labels, e, 0.2, "semi-hard")) == pytest.approx(0.0, abs=ATOL)


def test_batch_hard_uses_hardest_positive_per_anchor():
    # a=(0,0), p1=(0.5,0), p2=(−1,0) share label 0; n=(0,1).
    # anchor a:  max(0.25, 1) − 1 + 0.2 = 0.2
    # anchor p1: max(0.25, 2.25) − 1.25 + 0.2 = 1.2
    # anchor p2: max(1, 2.25) − 2 + 0.2 = 0.45;  n has no positive.
    e = np.array([[0, 0], [0.5, 0], [-1, 0], [0, 1]], np.float32)
    loss = triplet_loss([0, 0, 0, 1], e, margin=0.2, mining="batch-hard")
    assert _f(loss) == pytest.approx((0.2 + 1.2 + 0.45) / 3, abs=ATOL)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    "mining, reference",
    [
        ("semi-hard", _ref_semi_hard),
        ("batch-hard", _ref_batch_hard),
        ("batch-all", _ref_batch_all),
    ],
)
def test_triplet_matches_brute_force(seed, mining, reference):
    labels, e = _random_batch(seed)
    labels[-1] = 99  # an anchor without positives must be ignored
    got = _f(triplet_loss(labels, e, margin=0.5, mining=mining))
    assert got == pytest.approx(reference(labels, e, 0.5), abs=1e-4)


@pytest.mark.parametrize("mining", MINING_MODES)
def test_all_distinct_labels_give_zero(mining):
    _, e = _random_batch(0)
    loss = triplet_loss(np.arange(len(e)), e, mining=mining, seed=1)
    assert np.isfinite(_f(loss)) and _f(loss) == 0.0


@pytest.mark.parametrize("mining", MINING_MODES)
def test_single_identity_batch_gives_zero(mining):
    # Positives but no negatives: no triplet exists.
    _, e = _random_batch(0)
    loss = triplet_loss(np.zeros(len(e), np.int64), e, mining=mining, seed=1)
    assert np.isfinite(_f(loss)) and _f(loss) == 0.0


def test_unknown_mining_raises_with_valid_choices():
    with pytest.raises(ValueError, match="semi-hard.*batch-hard.*batch-all.*distance-weighted"):
        triplet_loss([0, 0, 1], np.eye(3, dtype=np.float32), mining="hardest")
    with pytest.raises(ValueError, match="valid choices"):
        TripletLoss(mining="hardest")


def test_labels_shape_b1_equals_b():
    labels, e = _random_batch(3)
    for mining in ("semi-hard", "batch-hard", "batch-all"):
        flat = _f(triplet_loss(labels, e, mining=mining))
        column = _f(triplet_loss(labels[:, None], e, mining=mining))
        assert flat == pytest.approx(column, abs=1e-6)


# ----------------------------------------------------------------------------
# Distance-weighted sampling and margin loss (Wu et al. 2017)
# ----------------------------------------------------------------------------


def test_distance_weighted_log_weights_formula():
    # n = 3: q(d) = d / B(1/2, 1) = d / 2, so log q⁻¹ = log(2/d), d clipped at 0.5.
    d = tf.constant([0.25, 0.5, 1.0, 1.5])
    got = distance_weighted_log_weights(d, dim=3, cutoff=0.5).numpy()
    np.testing.assert_allclose(got, np.log(2.0 / np.array([0.5, 0.5, 1.0, 1.5])), atol=1e-5)
    capped = distance_weighted_log_weights(d, dim=3, cutoff=0.5, weight_cap=3.0).numpy()
    np.testing.assert_allclose(capped, np.minimum(got, np.log(3.0)), atol=1e-5)


def test_distance_weighted_log_weights_finite_in_high_dim():
    d = tf.constant([0.0, 0.5, 1.0, 1.41, 1.99, 2.0, 2.5])
    w = distance_weighted_log_weights(d, dim=128).numpy()
    assert np.isfinite(w).all()
    # Near neighbours (after the cutoff) are far more likely than typical ones.
    assert w[1] > w[3]


def test_distance_weighted_never_samples_positives_or_self():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(6), 5)
    e = rng.normal(size=(30, 16)).astype(np.float32)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    labels[-1] = 42  # anchor without positives: its row is not valid
    for seed in range(5):
        negatives, valid = sample_distance_weighted_negatives(labels, e, seed=seed)
        negatives, valid = negatives.numpy(), valid.numpy()
        a, p = np.nonzero(valid)
        assert len(a) == 5 * 5 * 4 + 4 * 3  # five 5-image ids and one 4-image id
        assert (labels[negatives[a, p]] != labels[a]).all()
        assert (negatives[a, p] != a).all()
        assert not valid[-1].any()


def test_distance_weighted_sampling_is_reproducible_with_seed():
    labels, e = _random_batch(5, n_ids=5, per_id=4, dim=8)
    first, _ = sample_distance_weighted_negatives(labels, e, seed=7)
    again, _ = sample_distance_weighted_negatives(labels, e, seed=7)
    other, _ = sample_distance_weighted_negatives(labels, e, seed=8)
    np.testing.assert_array_equal(first.numpy(), again.numpy())
    assert (first.numpy() != other.numpy()).any()
    explicit = tf.constant([7, 3], tf.int64)
    a, _ = sample_distance_weighted_negatives(labels, e, seed=explicit)
    b, _ = sample_distance_weighted_negatives(labels, e, seed=explicit)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    l1 = _f(triplet_loss(labels, e, mining="distance-weighted", seed=3))
    l2 = _f(triplet_loss(labels, e, mining="distance-weighted", seed=3))
    assert l1 == l2


def test_distance_weighted_sampling_frequencies():
    # In R³ with cutoff 0.5, weights ∝ 1/d: negatives at d = 0.5 and d = 1.0
    # from the anchor are drawn 2:1. Many duplicated positives give many draws.
    n_pos = 200
    pts = [[0, 0, 0]] * (1 + n_pos) + [[0.5, 0, 0], [0, 1.0, 0]]
    labels = np.array([0] * (1 + n_pos) + [1, 2])
    e = np.array(pts, np.float32)
    draws = []
    for seed in range(10):
        negatives, valid = sample_distance_weighted_negatives(labels, e, seed=seed)
        draws.append(negatives.numpy()[0][valid.numpy()[0]])
    draws = np.concatenate(draws)
    assert set(np.unique(draws)) <= {1 + n_pos, 2 + n_pos}
    assert np.mean(draws == 1 + n_pos) == pytest.approx(2 / 3, abs=0.05)


def test_margin_loss_hand_value():
    # a=(0,0), p=(1.1,0): d_ap = 1.1; single negative n with d_an = 1.3 to both.
    # Per pair: relu(0.2 + 1.1 − 1.2) + relu(0.2 + 1.2 − 1.3) = 0.1 + 0.1, and
    # both terms are active, so the mean over active terms is 0.1.
    n = [0.55, math.sqrt(1.3**2 - 0.55**2)]
    e = np.array([[0, 0], [1.1, 0], n], np.float32)
    loss = margin_loss([0, 0, 1], e, beta=1.2, margin=0.2, seed=0)
    assert _f(loss) == pytest.approx(0.1, abs=ATOL)


def test_margin_loss_learnable_beta_gets_gradient():
    labels, e = _random_batch(1)
    beta = tf.Variable(1.2)
    with tf.GradientTape() as tape:
        loss = margin_loss(labels, e, beta=beta, seed=0)
    grad = tape.gradient(loss, beta)
    assert grad is not None and np.isfinite(grad.numpy())


# ----------------------------------------------------------------------------
# Contrastive loss
# ----------------------------------------------------------------------------


def test_contrastive_hand_value():
    # (0,1) same, d = 0.6 → 0.36; (0,2) diff, d = 0.8 → 0.2² = 0.04;
    # (1,2) diff, d = 1.0 ≥ m → 0. Mean over 3 pairs.
    e = np.array([[0, 0], [0.6, 0], [0, 0.8]], np.float32)
    loss = contrastive_loss([0, 0, 1], e, margin=1.0)
    assert _f(loss) == pytest.approx(0.4 / 3, abs=ATOL)


@pytest.mark.parametrize("seed", [0, 1])
def test_contrastive_matches_brute_force(seed):
    labels, e = _random_batch(seed)
    assert _f(contrastive_loss(labels, e, margin=1.2)) == pytest.approx(
        _ref_contrastive(labels, e, 1.2), abs=1e-4
    )


def test_contrastive_single_sample_is_zero():
    assert _f(contrastive_loss([3], np.ones((1, 4), np.float32))) == 0.0


# ----------------------------------------------------------------------------
# Binary head (DeepFace)
# ----------------------------------------------------------------------------


def _head(chi_squared, w, b):
    head = PairClassifierHead(chi_squared=chi_squared, embedding_dim=len(w))
    head.set_weights([np.array(w, np.float32), np.array(b, np.float32)])
    return head


def _sigmoid(z):
    return 1.0 / (1.0 + math.exp(-z))


def test_binary_head_l1_formula():
    head = _head(False, [1.0, -2.0], 0.5)
    p = head((tf.constant([[1.0, 2.0]]), tf.constant([[0.0, 4.0]])))
    # |diff| = (1, 2): z = 1 − 4 + 0.5 = −2.5
    assert _f(p[0]) == pytest.approx(_sigmoid(-2.5), abs=ATOL)


def test_binary_head_chi_squared_features():
    head = _head(True, [1.0, -2.0], 0.5)
    f_i = tf.constant([[1.0, 2.0], [-1.0, 2.0], [0.5, -0.3]])
    f_j = tf.constant([[0.0, 4.0], [1.0, 4.0], [-0.5, 0.3]])
    feats = head.pair_features(f_i, f_j).numpy()
    # (f_i − f_j)² / (|f_i| + |f_j|): sign-safe denominator.
    expected = [[1.0 / 1.0, 4.0 / 6.0], [4.0 / 2.0, 4.0 / 6.0], [1.0 / 1.0, 0.36 / 0.6]]
    np.testing.assert_allclose(feats, expected, atol=1e-5)
    p = head((f_i, f_j)).numpy()
    assert p[0] == pytest.approx(_sigmoid(1.0 - 2.0 * 4.0 / 6.0 + 0.5), abs=ATOL)
    # f_i = −f_j would zero the DeepFace denominator f_i + f_j.
    assert np.isfinite(p).all()


def test_pairwise_binary_loss_hand_value():
    head = _head(False, [-1.0, -1.0], 1.0)
    e = np.array([[0, 0], [0.5, 0], [1, 1]], np.float32)
    # L1 distances: (0,1) 0.5 same; (0,2) 2 diff; (1,2) 1.5 diff.
    z = {(0, 1): 1 - 0.5, (0, 2): 1 - 2.0, (1, 2): 1 - 1.5}
    same = {(0, 1): 1, (0, 2): 0, (1, 2): 0}
    bce = [
        -(same[k] * math.log(_sigmoid(v)) + (1 - same[k]) * math.log(1 - _sigmoid(v)))
        for k, v in z.items()
    ]
    loss = pairwise_binary_loss([[7], [7], [8]], e, head)
    assert _f(loss) == pytest.approx(np.mean(bce), abs=ATOL)
    assert _f(BinaryPairLoss(head)(np.array([7, 7, 8]), e)) == pytest.approx(np.mean(bce), abs=ATOL)


def test_pairwise_binary_loss_trains_head_in_gradient_tape():
    labels, e = _random_batch(0)
    head = PairClassifierHead(chi_squared=True, embedding_dim=e.shape[1])
    e = tf.Variable(e)
    with tf.GradientTape() as tape:
        loss = pairwise_binary_loss(labels, e, head)
    grads = tape.gradient(loss, [e, *head.trainable_variables])
    assert len(head.trainable_variables) == 2
    assert all(g is not None and np.isfinite(g.numpy()).all() for g in grads)


# ----------------------------------------------------------------------------
# Robustness: gradients, tf.function, tf.distribute
# ----------------------------------------------------------------------------

_ALL_LOSSES = {
    **{
        f"triplet-{m}": (lambda m: lambda y, e: triplet_loss(y, e, mining=m, seed=0))(m)
        for m in MINING_MODES
    },
    "margin": lambda y, e: margin_loss(y, e, seed=0),
    "contrastive": lambda y, e: contrastive_loss(y, e),
    "binary-head": lambda y, e: pairwise_binary_loss(
        y, e, PairClassifierHead(embedding_dim=3)
    ),
    "binary-head-chi2": lambda y, e: pairwise_binary_loss(
        y, e, PairClassifierHead(chi_squared=True, embedding_dim=3)
    ),
}


@pytest.mark.parametrize("name", sorted(_ALL_LOSSES))
@pytest.mark.parametrize("coincide", ["pairs", "all"])
def test_gradients_finite_when_embeddings_coincide(name, coincide):
    labels = np.array([0, 0, 1, 1, 2])
    if coincide == "all":
        e = np.tile([[0.6, 0.8, 0.0]], (5, 1)).astype(np.float32)
    else:  # duplicates within a class and across classes
        e = np.array([[1, 0, 0], [1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0]], np.float32)
    e = tf.Variable(e)
    with tf.GradientTape() as tape:
        loss = _ALL_LOSSES[name](labels, e)
    grad = tape.gradient(loss, e)
    assert np.isfinite(_f(loss))
    assert grad is not None and np.isfinite(grad.numpy()).all()


def test_losses_trace_in_tf_function_with_dynamic_batch():
    labels, e = _random_batch(4)

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, 1], tf.int32),
            tf.TensorSpec([None, None], tf.float32),
        ]
    )
    def all_losses(y, x):
        out = [triplet_loss(y, x, mining=m, seed=0) for m in MINING_MODES]
        return tf.stack(out + [contrastive_loss(y, x), margin_loss(y, x, seed=0)])

    got = all_losses(labels[:, None].astype(np.int32), e).numpy()
    eager = [_f(triplet_loss(labels, e, mining=m, seed=0)) for m in MINING_MODES[:3]]
    np.testing.assert_allclose(got[:3], eager, atol=1e-5)
    assert got[4] == pytest.approx(_f(contrastive_loss(labels, e)), abs=1e-5)
    assert np.isfinite(got).all()


def test_losses_compile_with_xla():
    # Keras jit-compiles train steps by default on GPU: every op must have an
    # XLA kernel (e.g. StatelessMultinomial only with int32 seeds).
    labels, e = _random_batch(6)
    head = PairClassifierHead(embedding_dim=e.shape[1])

    @tf.function(jit_compile=True)
    def all_losses(y, x):
        out = [triplet_loss(y, x, mining=m, seed=0) for m in MINING_MODES]
        out += [margin_loss(y, x, seed=0), contrastive_loss(y, x)]
        return tf.stack(out + [pairwise_binary_loss(y, x, head)])

    got = all_losses(tf.constant(labels), tf.constant(e)).numpy()
    assert np.isfinite(got).all()
    assert got[0] == pytest.approx(_ref_semi_hard(labels, e, 0.2), abs=1e-4)


def test_losses_run_under_distribution_strategy():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    labels, e = _random_batch(2)
    with strategy.scope():
        head = PairClassifierHead(embedding_dim=e.shape[1])

    @tf.function
    def step(y, x):
        def replica_fn(y, x):
            out = [triplet_loss(y, x, mining=m, seed=0) for m in MINING_MODES]
            out += [contrastive_loss(y, x), pairwise_binary_loss(y, x, head)]
            return tf.stack(out)

        per_replica = strategy.run(replica_fn, args=(y, x))
        return strategy.reduce(tf.distribute.ReduceOp.MEAN, per_replica, axis=None)

    got = step(tf.constant(labels), tf.constant(e)).numpy()
    assert got.shape == (len(MINING_MODES) + 2,) and np.isfinite(got).all()
    assert got[0] == pytest.approx(_ref_semi_hard(labels, e, 0.2), abs=1e-4)


# ----------------------------------------------------------------------------
# Keras wrappers and factory
# ----------------------------------------------------------------------------


def _tiny_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 6)).astype(np.float32)
    y = np.repeat(np.arange(4), 4).astype(np.int32)
    return x, y


def _tiny_functional_model():
    inp = keras.Input((6,))
    out = keras.layers.UnitNormalization()(keras.layers.Dense(3)(inp))
    return keras.Model(inp, out)


@pytest.mark.parametrize(
    "loss",
    [TripletLoss(margin=0.2), TripletLoss(mining="distance-weighted", seed=1), ContrastiveLoss()],
    ids=["semi-hard", "distance-weighted", "contrastive"],
)
def test_keras_wrapper_compile_fit(loss):
    keras.utils.set_random_seed(0)
    x, y = _tiny_data()
    model = _tiny_functional_model()
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss)
    history = model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


def test_binary_pair_loss_head_trains_when_attached_to_model():
    keras.utils.set_random_seed(0)
    x, y = _tiny_data()
    loss = BinaryPairLoss(embedding_dim=3)
    model = _tiny_functional_model()
    model.pair_head = loss.head  # makes Keras track and train the head
    before = [w.copy() for w in loss.head.get_weights()]
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss=loss)
    history = model.fit(x, y[:, None], batch_size=8, epochs=1, shuffle=False, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    after = loss.head.get_weights()
    assert any(not np.allclose(b, a) for b, a in zip(before, after))


def test_get_loss_factory():
    expected = {
        "triplet-semi-hard": (TripletLoss, "semi-hard"),
        "triplet-batch-hard": (TripletLoss, "batch-hard"),
        "triplet-batch-all": (TripletLoss, "batch-all"),
        "triplet-distance-weighted": (TripletLoss, "distance-weighted"),
    }
    for name, (cls, mining) in expected.items():
        loss = get_loss(name, margin=0.3)
        assert isinstance(loss, cls) and loss.options["mining"] == mining and loss.options["margin"] == 0.3
    assert isinstance(get_loss("contrastive"), ContrastiveLoss)
    assert isinstance(get_loss("margin"), MarginLoss)
    assert get_loss("binary-head", embedding_dim=4).head.chi_squared is False
    assert get_loss("binary-head-chi2", embedding_dim=4).head.chi_squared is True
    assert set(expected) | {"contrastive", "binary-head", "binary-head-chi2"} <= set(LOSS_NAMES)
    with pytest.raises(ValueError, match="triplet-semi-hard.*contrastive.*binary-head"):
        get_loss("arcface")


def test_triplet_loss_config_round_trip():
    loss = TripletLoss(margin=0.3, mining="batch-hard")
    clone = TripletLoss.from_config(loss.get_config())
    assert (clone.options["margin"], clone.options["mining"], clone.name) == (0.3, "batch-hard", loss.name)


def test_each_loss_gets_the_run_options_it_takes():
    """One place knows which option goes to which loss: the margin reaches every loss
    with a margin (the margin loss included), the embedding size the binary head."""
    options = {"margin": 0.37, "embedding_dim": 4}
    for name in ("triplet-semi-hard", "triplet-distance-weighted", "margin", "contrastive"):
        assert get_loss(name, **options).options["margin"] == 0.37, name
    assert get_loss("binary-head", **options).head.embedding_dim == 4


def test_the_margin_flag_reaches_the_runs_metric_loss():
    """`model-build train --margin` -> TrainConfig -> parse_losses -> the loss's own option,
    for the margin loss too (train.py once picked options by loss-name prefix)."""
    from model_build.cli import build_parser, train_config
    from model_build.losses.combine import parse_losses
    for name in ("margin", "triplet-batch-hard", "contrastive"):
        args = build_parser().parse_args(["train", "--data", "d", "--run-dir", "r", "--margin", "0.37",
                                          "--losses", f"distill=1,{name}=0.5"])
        cfg = train_config(args)
        mix = parse_losses(cfg.losses, margin=cfg.margin, embedding_size=cfg.embedding_size)
        assert (mix.metric_name, mix.metric.options["margin"]) == (name, 0.37)


def test_loss_names_and_the_command_line_load_without_tensorflow():
    import subprocess
    import sys
    code = ("import sys; from model_build.cli import build_parser; build_parser(); "
            "from model_build.losses import LOSS_NAMES, METRIC_LOSS_NAMES; "
            "assert 'margin' in METRIC_LOSS_NAMES and 'distill' in LOSS_NAMES; "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_identity_centres_average_every_view_of_every_photo():
    """A person's centre is the normalised mean over all their photos' views; rows of
    single-image people (label -1) belong to no centre."""
    from model_build.losses.distillation import identity_centres
    t = np.zeros((4, 2, 3), np.float32)
    t[0] = [[1, 0, 0], [0, 1, 0]]     # person 0
    t[1] = [[1, 0, 0], [1, 0, 0]]     # person 0
    t[2] = [[0, 0, 1], [0, 0, 1]]     # person 1
    t[3] = [[0, 1, 0], [0, 1, 0]]     # nobody's
    c = identity_centres(t, np.array([0, 0, 1, -1]))
    np.testing.assert_allclose(c, [[3 / np.sqrt(10), 1 / np.sqrt(10), 0], [0, 0, 1]], atol=1e-6)


def test_centre_loss_pulls_labelled_rows_to_their_persons_centre():
    """The centre term is the mean squared distance of the labelled rows to their
    people's centres; the unlabelled rows after them do not count."""
    from model_build.losses.combine import parse_losses
    mix = parse_losses("distill=1,centre=0.5", margin=0.2, embedding_size=2)
    assert mix.needs_labels and mix.weights == {"distill": 1.0, "centre": 0.5}
    emb = tf.constant([[1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    labels = tf.constant([1, 0, 0])
    with pytest.raises(ValueError, match="centres"):
        mix(emb, emb, emb, labels, labelled=2)
    mix.centres = tf.constant([[0.0, 1.0], [0.6, 0.8]])
    terms = mix(emb, emb, emb, labels, labelled=2)
    # row 0 -> person 1: |(1,0) - (.6,.8)|^2 = .16 + .64; row 1 -> person 0: 0
    assert float(terms["centre"]) == pytest.approx(0.8 / 2)
    assert float(terms["distill"]) == pytest.approx(0.0)
    assert not parse_losses("distill=1", margin=0.2, embedding_size=2).needs_labels
