"""The per-session history that keeps agents from recommending a track twice."""

import numpy as np

from agents.history import EpisodeHistory, masked_argmax, random_allowed


def test_mark_block_and_end():
    h = EpisodeHistory(5)
    assert h.blocked(3).shape == (3, 5) and not h.blocked(3).any()
    h.mark(np.array([0, 1, 2]))
    h.mark(np.array([4, 1, 2]))
    assert h.blocked(3).sum(axis=1).tolist() == [2, 1, 1]
    h.end(np.array([True, False, False]))
    assert h.blocked(3).sum(axis=1).tolist() == [0, 1, 1]


def test_new_batch_size_starts_afresh():
    h = EpisodeHistory(5)
    h.mark(np.array([0, 1]))
    assert not h.blocked(4).any()
    h.mark(np.array([0, 1, 2, 3]))
    h.end(np.ones(2, dtype=bool))  # another env: every slot restarts
    assert not h.blocked(2).any()


def test_full_row_is_cleared_so_a_track_is_always_allowed():
    h = EpisodeHistory(3)
    for a in range(3):
        h.mark(np.array([a]))
    assert not h.blocked(1).any()


def test_masked_argmax_and_random_allowed_skip_blocked():
    scores = np.array([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0]])
    blocked = np.array([[True, False, False], [False, False, True]])
    assert masked_argmax(scores, blocked).tolist() == [1, 1]
    rng = np.random.default_rng(0)
    blocked = np.ones((200, 10), dtype=bool)
    blocked[:, 7] = False
    blocked[:100, 3] = False
    picks = random_allowed(rng, blocked)
    assert picks.dtype == np.int64
    assert not blocked[np.arange(200), picks].any()
    assert set(picks[:100].tolist()) == {3, 7}


def test_warmup_tracks_in_info_are_blocked_for_new_sessions():
    artist = np.arange(10) // 2  # tracks 2k and 2k+1 share artist k
    h = EpisodeHistory(10, artist, artist_window=2)
    info = {"warmup_tracks": np.array([[0, 4, 6], [-1, -1, 9]])}
    blocked = h.blocked(2, info)
    # the warm-up tracks are blocked, not their artists (5 and 7 stay allowed)
    assert np.flatnonzero(blocked[0]).tolist() == [0, 4, 6]
    assert np.flatnonzero(blocked[1]).tolist() == [9]
    h.mark(np.array([1, 2]))  # now artists 0 (tracks 0, 1) and 1 (tracks 2, 3) are recent
    info = {"warmup_tracks": np.array([[5, 5, 5], [7, 7, 7]])}
    h.end(np.array([False, True]))
    blocked = h.blocked(2, info)  # only slot 1 starts afresh from the new info
    assert np.flatnonzero(blocked[0]).tolist() == [0, 1, 4, 6]
    assert np.flatnonzero(blocked[1]).tolist() == [7]
