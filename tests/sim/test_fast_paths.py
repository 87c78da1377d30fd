"""The simulator's fast paths give exactly the numbers of the plain ones."""

import numpy as np
import pandas as pd
import pytest

from musicrec_gym.data.synthetic import SyntheticConfig, generate_world
from musicrec_gym.sim.constants import RESET_DRAWS
from musicrec_gym.sim.params import SimulatorParams
from musicrec_gym.sim.simulator import BatchSimulator, SlotRows

_STATE = (
    "hist", "hist_listened", "hist_len", "win_tracks", "win_listened", "win_artist",
    "cand_pen",
)  # fmt: skip


@pytest.fixture(scope="module")
def sim():
    catalog, _, truth = generate_world(
        SyntheticConfig(n_tracks=300, n_artists=30, n_listeners=80, seed=5)
    )
    artist = pd.factorize(catalog["artist_id"], sort=True)[0]
    return BatchSimulator(
        truth, artist, catalog["popularity"].to_numpy(), SimulatorParams(), n_slots=400
    )


def fresh_rows(sim, user):
    b, warmup, cands = len(user), sim.params.warmup, sim.candidates
    return SlotRows(
        index=np.arange(b),
        user=user,
        hist=np.full((b, warmup), -1, dtype=np.int64),
        hist_listened=np.zeros((b, warmup), dtype=np.int8),
        hist_len=np.zeros(b, dtype=np.int64),
        win_tracks=np.full((b, 5), -1, dtype=np.int64),
        win_listened=np.zeros((b, 5)),
        win_artist=np.full((b, 5), -1, dtype=np.int64),
        cand=cands.index[user],
        cand_artist=sim.artist_of[cands.index[user]],
        cand_pen=np.zeros((b, cands.index.shape[1])),
    )


def test_vectorised_warmup_equals_playing_it_one_play_at_a_time(sim):
    rng = np.random.default_rng(0)
    u = rng.random((400, RESET_DRAWS))
    user = rng.integers(0, 80, 400)
    fast, plain = fresh_rows(sim, user), fresh_rows(sim, user)
    sim._warmup(fast, u)
    sim._warmup_by_play(plain, u)
    for name in _STATE:
        assert np.array_equal(getattr(fast, name), getattr(plain, name)), name
    # the draws took every branch: popular, to taste, continuation; repeats and skips
    assert (fast.cand_pen >= 4.0).any() and 0 < fast.hist_listened.mean() < 1


def test_pool_nearest_table_equals_the_direct_choice(sim):
    rng = np.random.default_rng(1)
    users = rng.integers(0, 80, 500)
    pos = rng.integers(0, sim.pool, 500)
    pool = sim.candidates.index[users, : sim.pool]
    k = sim.params.continuation_pool
    table = sim.candidates.pool_nearest(sim.response.factors, sim.pool, k, users)
    u = rng.random(500)
    direct = sim._pick(sim._similarity(pool, pool[np.arange(500), pos]), u)
    pick = np.minimum((u * k).astype(np.int64), k - 1)
    assert np.array_equal(table[users, pos, pick], direct)
    assert not (table[users, pos] == pos[:, None]).any()  # a play never continues itself
