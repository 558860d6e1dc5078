"""k-of-n voting and the per-person cooldown, with an injected clock."""

from __future__ import annotations

import pytest

from daemon.decision import Unlock, UnlockDecider


def feed(decider, frames, start=0.0, step=0.1):
    """frames: list of {person: distance}; returns [(frame_index, Unlock)]."""
    out = []
    for i, frame in enumerate(frames):
        out += [(i, u) for u in decider.observe(frame, start + i * step)]
    return out


A = {"alice": 0.5}
NONE: dict = {}


def test_unlocks_on_the_kth_matching_frame_not_before():
    got = feed(UnlockDecider(k=3, n=5, cooldown_s=10.0), [A, A, A, A])
    assert got == [(2, Unlock("alice", 3, 0.5))]


def test_votes_may_be_spread_over_the_last_n_frames():
    assert [i for i, _ in feed(UnlockDecider(k=3, n=5, cooldown_s=10.0), [A, NONE, A, NONE, A])] == [4]


def test_votes_older_than_n_frames_do_not_count():
    assert feed(UnlockDecider(k=3, n=5, cooldown_s=10.0), [A, NONE, NONE, A, NONE, NONE, A, NONE, NONE]) == []


def test_one_stray_match_never_unlocks():
    assert feed(UnlockDecider(k=3, n=5, cooldown_s=10.0), [{"mallory": 0.8}] + [NONE] * 10) == []


def test_cooldown_blocks_repeats_for_that_person_then_expires():
    d = UnlockDecider(k=3, n=5, cooldown_s=10.0)
    first = feed(d, [A] * 50, start=0.0, step=0.1)   # 5 s of frames of alice
    assert [i for i, _ in first] == [2]
    again = feed(d, [A] * 3, start=10.3, step=0.1)   # 10 s after the unlock at t=0.2
    assert [i for i, _ in again] == [0]


def test_cooldown_is_per_person():
    d = UnlockDecider(k=2, n=3, cooldown_s=10.0)
    both = {"alice": 0.4, "bob": 0.6}
    got = feed(d, [A, A, both, both])
    assert [(i, u.person_id) for i, u in got] == [(1, "alice"), (3, "bob")]


def test_reports_votes_and_best_distance():
    d = UnlockDecider(k=3, n=5, cooldown_s=10.0)
    got = feed(d, [{"alice": 0.7}, {"alice": 0.4}, NONE, {"alice": 0.6}])
    assert got == [(3, Unlock("alice", 3, 0.4))]


def test_k_equal_1_unlocks_at_once():
    assert [i for i, _ in feed(UnlockDecider(k=1, n=1, cooldown_s=0), [A])] == [0]


@pytest.mark.parametrize("k,n,cooldown", [(0, 5, 1), (6, 5, 1), (3, 5, -1)])
def test_invalid_parameters_are_refused(k, n, cooldown):
    with pytest.raises(ValueError):
        UnlockDecider(k=k, n=n, cooldown_s=cooldown)
