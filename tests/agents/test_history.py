"""The per-session history that keeps agents from recommending a track twice."""

import numpy as np
import pytest

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


def broadcast_block_reference(
    played: np.ndarray, recent: np.ndarray, track_artist: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Reference: ``EpisodeHistory.blocked``'s artist block as first written (broadcast).

    Compares every recent artist with every track's, (B, window, n_tracks) values; the
    fast path must equal it wherever ``track_artist`` has no negative value. Returns the
    block and the played mask after a full slot is cleared.
    """
    played = played.copy()
    mask = played
    valid = recent >= 0
    if valid.any():
        artists = np.where(valid, track_artist[np.maximum(recent, 0)], -1)
        same = (artists[:, :, None] == track_artist[None, None, :]).any(axis=1)
        mask = mask | same
        full = mask.all(axis=1)
        mask[full] = played[full]
    full = mask.all(axis=1)
    played[full] = False
    mask[full] = False
    return mask, played


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("batch", [1, 7])
@pytest.mark.parametrize("window", [1, 2, 3, 4, 5])
def test_artist_block_equals_the_broadcast_reference(seed, batch, window):
    rng = np.random.default_rng(seed)
    picks_seen = set()
    for artist in (
        rng.integers(0, 3, 30),  # few artists with many tracks each
        rng.permutation(30),  # one track per artist
        np.r_[np.zeros(10, int), np.arange(1, 21)] * 7 + 3,  # both; sparse codes
        np.array([0, 0, 1, 2]),  # a catalog played out within a session
    ):
        n = len(artist)
        h = EpisodeHistory(n, artist, artist_window=window)
        for _ in range(25):
            h.mark(rng.integers(0, n, batch))
            h.end(rng.random(batch) < 0.3)  # slots with 0..window picks in their window
            picks_seen.update((h.recent >= 0).sum(axis=1).tolist())
            want, played = broadcast_block_reference(h.mask, h.recent, artist)
            np.testing.assert_array_equal(h.blocked(batch), want)
            np.testing.assert_array_equal(h.mask, played)
    assert picks_seen == set(range(window + 1))


def test_empty_places_of_the_window_block_no_artistless_track():
    # tracks 3 and 4 have no artist (-1): a slot with fewer picks than the window must
    # not block them (the broadcast block compared the empty places' -1 with them)
    artist = np.array([0, 0, 1, -1, -1])
    h = EpisodeHistory(5, artist, artist_window=3)
    h.mark(np.array([0]))
    assert np.flatnonzero(h.blocked(1)).tolist() == [0, 1]


def test_a_track_without_an_artist_blocks_nothing_and_is_blocked_only_once_played():
    artist = np.array([0, 0, -1, -1, -2, 1])
    h = EpisodeHistory(6, artist, artist_window=2)
    for track in (2, 4):  # a full window of artistless picks
        h.mark(np.array([track]))
    assert np.flatnonzero(h.blocked(1)).tolist() == [2, 4]
    h.mark(np.array([0]))
    assert np.flatnonzero(h.blocked(1)).tolist() == [0, 1, 2, 4]


def test_track_artist_must_match_the_catalog():
    with pytest.raises(ValueError, match=r"track_artist must have shape \(4,\), got \(3,\)"):
        EpisodeHistory(4, np.arange(3), artist_window=1)
