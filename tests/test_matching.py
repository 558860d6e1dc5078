"""1:N open-set matching on synthetic unit embeddings, checked against brute force."""

from __future__ import annotations

import numpy as np
import pytest

from daemon.matching import AMBIGUOUS, MATCH, UNKNOWN, GalleryIndex, Matcher
from daemon.protocol.person import PersonRecord
from daemon_helpers import unit_vectors

D = 128


def record(pid, encodings, model="m1", deleted=False, version=1):
    if deleted:
        return PersonRecord.tombstone(pid, version)
    return PersonRecord(person_id=pid, version=version, model_id=model, name=pid.upper(),
                        encodings=np.asarray(encodings, np.float32))


def near(v, noise, seed):
    """A unit vector at roughly `noise` distance from v."""
    n = unit_vectors(1, seed=seed)[0]
    w = v + noise * (n - (n @ v) * v)
    return (w / np.linalg.norm(w)).astype(np.float32)


def matcher(records, threshold=0.9, margin=0.05, model="m1"):
    return Matcher(GalleryIndex.build(records, model, D), threshold, margin)


def test_identifies_the_closest_person_among_many():
    vecs = unit_vectors(50, seed=1)
    m = matcher([record(f"p{i}", vecs[i:i + 1]) for i in range(50)])
    for i in (0, 17, 49):
        r = m.match(near(vecs[i], 0.3, seed=100 + i))
        assert (r.status, r.person_id) == (MATCH, f"p{i}")
        assert r.distance == pytest.approx(np.linalg.norm(near(vecs[i], 0.3, seed=100 + i) - vecs[i]), abs=1e-5)


def test_a_face_farther_than_the_threshold_from_everyone_is_unknown():
    vecs = unit_vectors(21, seed=2)
    m = matcher([record(f"p{i}", vecs[i:i + 1]) for i in range(20)], threshold=0.9)
    r = m.match(vecs[20])  # random unit vectors in 128-d are ~1.41 apart
    assert r.status == UNKNOWN and r.distance > 0.9
    assert r.person_id is not None  # the closest one is still reported, for the logs


def test_two_people_closer_than_the_margin_make_the_result_ambiguous():
    a = unit_vectors(1, seed=3)[0]
    b = near(a, 0.04, seed=4)  # a look-alike enrolled as someone else
    m = matcher([record("alice", [a]), record("bob", [b])], threshold=0.9, margin=0.05)
    r = m.match(near(a, 0.3, seed=5))
    assert r.status == AMBIGUOUS
    assert {r.person_id, r.runner_up_id} == {"alice", "bob"}
    assert r.runner_up_distance - r.distance < 0.05
    far_apart = matcher([record("alice", [a]), record("bob", [b])], margin=0.0)
    assert far_apart.match(near(a, 0.3, seed=5)).status == MATCH


def test_several_encodings_of_one_person_count_once_and_the_nearest_wins():
    vecs = unit_vectors(3, seed=6)
    # alice has three encodings; the query is near her third one. Her first two must not
    # make the result "ambiguous" with herself.
    m = matcher([record("alice", vecs), record("bob", unit_vectors(1, seed=7))], margin=0.5)
    q = near(vecs[2], 0.2, seed=8)
    r = m.match(q)
    assert (r.status, r.person_id) == (MATCH, "alice")
    assert r.distance == pytest.approx(np.linalg.norm(q - vecs[2]), abs=1e-5)


def test_records_of_another_model_are_never_matched_and_are_reported():
    vecs = unit_vectors(2, seed=9)
    index = GalleryIndex.build([record("alice", vecs[:1], model="old-model"), record("bob", vecs[1:]),
                                record("carol", [], deleted=True, version=3)], "m1", D)
    assert index.person_ids == ("bob",) and index.other_model == ("alice",)
    r = Matcher(index, 0.9, 0.05).match(vecs[0])  # exactly alice's old-model encoding
    assert r.status == UNKNOWN


def test_empty_gallery_is_unknown():
    r = matcher([]).match(unit_vectors(1)[0])
    assert r.status == UNKNOWN and r.person_id is None and r.distance == float("inf")


def test_index_is_one_contiguous_float32_matrix_grouped_by_person():
    index = GalleryIndex.build([record("a", unit_vectors(3, seed=1)), record("b", unit_vectors(2, seed=2))], "m1", D)
    assert index.matrix_t.dtype == np.float32 and index.matrix_t.flags.c_contiguous
    assert index.matrix_t.shape == (D, 5) and index.size == 5
    assert index.row_person.tolist() == [0, 0, 0, 1, 1]


def brute_force(records, query, threshold, margin):
    """Reference: per-person minimum distance with a Python loop, then the same rules."""
    dists = sorted((float(np.linalg.norm(r.encodings - query, axis=1).min()), r.person_id) for r in records)
    if not dists or dists[0][0] > threshold:
        return UNKNOWN, dists[0][1] if dists else None
    if len(dists) > 1 and dists[1][0] - dists[0][0] < margin:
        return AMBIGUOUS, dists[0][1]
    return MATCH, dists[0][1]


@pytest.mark.parametrize("seed", range(8))
def test_agrees_with_brute_force_on_random_galleries(seed):
    rng = np.random.default_rng(seed)
    people = int(rng.integers(1, 40))
    base = unit_vectors(people, seed=seed)
    records = []
    for i in range(people):
        k = int(rng.integers(1, 5))
        records.append(record(f"p{i}", [near(base[i], 0.5, seed=seed * 1000 + i * 10 + j) for j in range(k)]))
    # some look-alikes so that ambiguity actually happens
    for i in range(0, people - 1, 3):
        records[i + 1] = record(f"p{i + 1}", [near(base[i], 0.15, seed=seed * 7 + i)])
    threshold, margin = 0.8, 0.08
    m = matcher(records, threshold, margin)
    queries = np.stack([near(base[int(rng.integers(people))], float(rng.uniform(0.1, 1.2)), seed=seed * 31 + q)
                        for q in range(40)])
    results = m.match_many(queries)
    statuses = set()
    for q, r in zip(queries, results):
        assert (r.status, r.person_id) == brute_force(records, q, threshold, margin)
        statuses.add(r.status)
    single = m.match(queries[0])
    assert (single.status, single.person_id) == (results[0].status, results[0].person_id)
    assert single.distance == pytest.approx(results[0].distance, abs=1e-5)
    assert len(statuses) >= 2  # the data exercise more than one branch


def test_explain_says_why_a_face_matched_or_not_with_the_margin_to_the_next_person():
    """`facegate run -v` logs this per face: the answer to "why didn't it recognise me"."""
    a, b, stranger = unit_vectors(3, seed=7)
    m = matcher([record("alice", [a, near(a, 0.2, seed=8)]), record("bob", [b])], threshold=0.9, margin=0.05)
    face = near(a, 0.3, seed=9)
    d_alice = min(np.linalg.norm(face - a), np.linalg.norm(face - near(a, 0.2, seed=8)))
    line = m.explain(face, m.match(face))
    assert line == (f"match alice: distance {d_alice:.3f} <= threshold 0.900; next bob at "
                    f"{np.linalg.norm(face - b):.3f}, margin {np.linalg.norm(face - b) - d_alice:.3f} "
                    "(a match needs >= 0.050)")
    r = m.match(stranger)
    assert m.explain(stranger, r).startswith(f"unknown {r.person_id}: distance {r.distance:.3f} > threshold 0.900; "
                                             "next ")
    alone = matcher([record("alice", [a])])
    assert alone.explain(face, alone.match(face)).endswith("; no second person in the gallery")
    assert matcher([]).explain(face, matcher([]).match(face)) == "unknown: the gallery is empty"
