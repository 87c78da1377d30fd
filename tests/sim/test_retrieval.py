"""The retrieval's tables: the alias table's distribution, the cache table, the record layout."""

from __future__ import annotations

import numpy as np
import pytest

from musicrec_gym.sim.retrieval import stable_order
from musicrec_gym.sim.retrieval_tables import (
    alias_draw,
    alias_pick,
    alias_table,
    cache_pos,
    cache_table,
    draw_pick,
    draw_table,
    popularity_ranks,
    record_table,
    track_records,
)


def alias_probabilities(table: np.ndarray) -> np.ndarray:
    """The probability of each index under an alias table, computed from its rows."""
    n = len(table)
    prob = table[:, 0].copy()
    np.add.at(prob, table[:, 1].astype(np.int64), 1.0 - table[:, 0])
    return prob / n


@pytest.mark.parametrize("seed", range(5))
def test_alias_table_reproduces_the_shares(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    share = rng.pareto(1.2, n) * (rng.random(n) < 0.8)  # heavy-tailed, with zeros
    share[rng.integers(n)] += 1.0
    share /= share.sum()
    table = alias_table(share)
    assert np.allclose(alias_probabilities(table), share, rtol=1e-9, atol=1e-15)
    assert ((table[:, 0] >= 0) & (table[:, 0] <= 1 + 1e-12)).all()
    zero = np.flatnonzero(share == 0)
    # an index of zero share is never drawn: its own threshold is 0, nobody aliases it
    assert (table[zero, 0] == 0).all() and not np.isin(table[:, 1], zero).any()


def test_alias_draws_follow_the_shares():
    share = np.array([0.5, 0.25, 0.125, 0.125, 0.0])
    table = alias_table(share)
    u = (np.arange(80_000) + 0.5) / 80_000  # a fine grid of uniforms: exact frequencies
    counts = np.bincount([alias_draw(table, x) for x in u], minlength=5)
    assert np.allclose(counts / len(u), share, atol=1e-4)


def test_popularity_ranks_order_and_invert():
    pop = np.array([0.1, 0.4, 0.1, 0.3, 0.1])
    rank_track, rank_of, share = popularity_ranks(pop)
    assert rank_track.tolist() == [1, 3, 0, 2, 4]  # ties: lower row first
    assert (rank_track[rank_of] == np.arange(5)).all()
    assert np.isclose(share.sum(), 1.0) and np.allclose(share, pop[rank_track] / pop.sum())


def test_cache_table_finds_every_cached_track_and_nothing_else():
    rng = np.random.default_rng(0)
    index = np.stack([rng.choice(10_000, 256, replace=False) for _ in range(20)])
    table = cache_table(index)
    assert table.shape == (20, 512)
    for u in range(20):
        for q in (0, 1, 100, 255):
            assert cache_pos(table, u, index[u, q]) == q
        absent = np.setdiff1d(np.arange(10_000), index[u])[:50]
        assert all(cache_pos(table, u, t) == -1 for t in absent)


def test_record_table_rows():
    rng = np.random.default_rng(1)
    emb = rng.standard_normal((30, 8)).astype(np.float32)
    rec = track_records(emb, rng.integers(0, 99, 30), rng.integers(0, 5, 30))
    rank_track = rng.permutation(30)
    pools = np.stack([rng.choice(30, 4, replace=False) for _ in range(3)])
    table = record_table(rec, rank_track, pools)
    assert table.ctypes.data % 64 == 0 and table.shape == (30 + 12, rec.shape[1])
    assert np.array_equal(table[:30], rec[rank_track])
    assert np.array_equal(table[30 + 2 * 4 + 3], rec[pools[2, 3]])


def test_draw_table_picks_the_alias_tables_rank_and_its_track():
    """A draw-table row gives the alias table's rank and that rank's track, for any fraction."""
    rng = np.random.default_rng(3)
    share = rng.dirichlet(np.full(40, 0.3))
    alias = alias_table(share)
    rank_track = rng.permutation(40).astype(np.int64)
    table = draw_table(alias, rank_track)
    for j in range(40):
        for frac in (0.0, 0.25, alias[j, 0] - 1e-12, alias[j, 0], 0.999999):
            rank = alias_pick(alias, j, frac)
            assert draw_pick(table, j, frac) == (rank, rank_track[rank])


@pytest.mark.parametrize("seed", range(4))
def test_stable_order_is_a_stable_sort(seed):
    """The counting sort of the continuations: numpy's stable argsort, ties in index order."""
    rng = np.random.default_rng(seed)
    for n in (1, 2, 7, 50, 64):
        keys = rng.integers(-3, 4, n).astype(np.float64)  # many ties
        keys[: n // 3] = rng.standard_normal(n // 3)
        if n > 2:
            keys[1] = -0.0 if keys[2] == 0.0 else keys[1]  # -0.0 and 0.0 are equal keys
        perm = np.full(n + 3, -1, np.int64)
        stable_order(keys, perm, n)
        assert np.array_equal(perm[:n], np.argsort(keys, kind="stable"))
        assert (perm[n:] == -1).all()
