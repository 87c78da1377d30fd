"""The compiled simulator against the NumPy reference (``BatchSimulator``'s own methods)."""

from dataclasses import replace

import numpy as np
import pytest

from musicrec_gym.encoder_kernel import (
    BLOCK,
    aligned_empty,
    encode_block,
    encode_window,
    pack_encoder,
    work_size,
)
from musicrec_gym.sim import layout, simulator
from musicrec_gym.sim.compiled import CompiledSimulator
from musicrec_gym.sim.simulator import BatchSimulator
from musicrec_gym.world import load_world


@pytest.fixture(scope="module")
def world():
    return load_world(None)


def _pair(world, n, mode, long_term=False):
    params = world.params
    if long_term:
        params = replace(params, satisfaction=replace(params.satisfaction, enabled=True))
    args = (world.truth, world.artist_index, world.popularity, params, n)
    ref = BatchSimulator(*args, reward_mode=mode, candidates=world.candidates)
    fast = CompiledSimulator(*args, encoder=world.encoder, reward_mode=mode,
                             candidates=world.candidates)  # fmt: skip
    slots = np.arange(n)
    for sim in (ref, fast):
        sim.seed(slots, slots + 11)
        sim.reset(slots)
    return ref, fast


def _same_state(ref, fast, when):
    for name in ref.int_columns:
        assert np.array_equal(getattr(ref, name), getattr(fast, name)), (when, name)
    for name in ref.float_columns:  # fatigue sums and cached logits: the same floats
        assert np.array_equal(getattr(ref, name), getattr(fast, name)), (when, name)
    assert np.array_equal(ref.streams.state, fast.streams.state), when


@pytest.mark.parametrize(
    ("mode", "tables", "long_term"),
    [
        ("listen", True, False),
        ("time", True, False),
        ("event", True, False),
        ("listen", False, False),
        ("listen", True, True),
        ("time", True, True),
    ],
)
def test_compiled_steps_and_resets_match_the_reference(world, mode, tables, long_term, monkeypatch):
    """The same state after every step and reset.

    ``tables=False``: a world too big for the pool's nearest-tracks table;
    ``long_term``: with satisfaction (``MusicRecLongTerm-v0``).
    """
    if not tables:
        monkeypatch.setattr(simulator, "_POOL_SIM_BYTES", 0)
    ref, fast = _pair(world, 128, mode, long_term)
    assert fast.ci[layout.C_PTAB] == tables
    assert fast.ci[layout.C_SATL] == (ref.params.satisfaction.levels if long_term else 0)
    _same_state(ref, fast, "reset")
    rng = np.random.default_rng(3)
    ends = 0
    for t in range(120):
        # random tracks, the optimum and repeats: cache hits, misses and fatigue
        kind = rng.integers(0, 3, ref.n_slots)
        actions = rng.integers(0, ref.n_tracks, ref.n_slots)
        actions = np.where(kind == 1, ref.opt_action, actions)
        actions = np.where(kind == 2, ref.hist[:, 0], actions)
        a, b = ref.step(actions), fast.step(actions)
        for key in ("reward", "listened", "terminated", "truncated"):
            assert np.array_equal(getattr(a, key), getattr(b, key)), (t, key)
        for key in ("expected_reward", "optimal_reward"):  # exp may differ in the last bit
            assert np.allclose(getattr(a, key), getattr(b, key), atol=1e-12, rtol=0), (t, key)
        done = np.flatnonzero(a.terminated | a.truncated)
        ends += done.size
        if done.size:
            ref.reset(done)
            fast.reset(done)
        _same_state(ref, fast, t)
    assert ends > 100
    if long_term:  # satisfaction moved both ways, and was reset with the sessions
        assert ref.satisfaction.min() < 0 < ref.satisfaction.max()


def test_autoreset_restarts_ended_sessions_as_a_reset_would(world):
    ref, fast = _pair(world, 64, "listen")
    rng = np.random.default_rng(5)
    for _ in range(30):
        actions = rng.integers(0, ref.n_tracks, ref.n_slots)
        a = ref.step(actions)
        users_before = ref.user.copy()
        done = np.flatnonzero(a.terminated | a.truncated)
        codes_before = world.encoder.encode_ids(ref.win_tracks, ref.win_listened)
        if done.size:
            ref.reset(done)
        b, enc = fast.step_encode(actions, autoreset=True)
        assert np.array_equal(enc.user, users_before)
        _same_state(ref, fast, "autoreset")
        now = world.encoder.encode_ids(ref.win_tracks, ref.win_listened)
        assert np.allclose(enc.obs, now, atol=1e-6, rtol=0)
        assert np.allclose(enc.final_obs[done], codes_before[done], atol=1e-6, rtol=0)


def test_one_chunk_and_uneven_chunks_give_the_same_numbers(world):
    sims = []
    for chunks in (1, 3):  # the batch on one thread, or split in 3 uneven chunks
        _, fast = _pair(world, 200, "listen")
        fast._work = aligned_empty((chunks, fast._work.shape[1]))
        sims.append(fast)
    rng = np.random.default_rng(9)
    for _ in range(20):
        actions = rng.integers(0, world.n_tracks, 200)
        (ra, ea), (rb, eb) = (s.step_encode(actions, autoreset=True) for s in sims)
        assert np.array_equal(ra.reward, rb.reward)
        assert np.array_equal(ea.obs, eb.obs) and np.array_equal(ea.final_obs, eb.final_obs)
    assert np.array_equal(sims[0].int_state, sims[1].int_state)


def test_encoder_kernels_match_numpy_encoder_and_each_other(world):
    enc = world.encoder
    ce, lay = pack_encoder(enc)
    assert ce.ctypes.data % 64 == 0
    rng = np.random.default_rng(0)
    n = 2 * BLOCK + 5
    tracks = rng.integers(-1, enc.n_tracks, (n, 5))  # -1: an empty window place
    flags = rng.integers(0, 2, (n, 5)).astype(np.float64)
    expected = enc.encode_ids(tracks, flags)
    work = aligned_empty(work_size(lay))
    for size in (BLOCK, 7, 1):  # full blocks, odd blocks, blocks of one
        blocks = np.empty((n, enc.code_dim), np.float32)
        for start in range(0, n, size):
            end = min(start + size, n)
            encode_block(ce, lay, tracks[start:end], flags[start:end], blocks[start:end], work)
        assert np.allclose(blocks, expected, atol=1e-6, rtol=0), size
        if size == BLOCK:
            full = blocks
        assert np.array_equal(blocks, full), size  # a window's code does not depend on its block
    ones = np.empty_like(full)
    for i in range(n):
        encode_window(ce, lay, tracks[i], flags[i], ones[i], work)
    assert np.array_equal(ones, full)  # one at a time: the same bits


def test_encoder_kernel_matches_pytorch(world):
    """Within 1e-5 of PyTorch's two LSTMs run in float64 on the world's weights."""
    torch = pytest.importorskip("torch")
    enc = world.encoder
    f, h1 = enc.feature_dim, enc._h1
    ce, lay = pack_encoder(enc)
    rng = np.random.default_rng(1)
    tracks = rng.integers(0, enc.n_tracks, (BLOCK, 5))
    flags = rng.integers(0, 2, (BLOCK, 5)).astype(np.float64)
    x = np.concatenate([world.embeddings[tracks], flags[..., None]], axis=2)
    w = {k: torch.tensor(v) for k, v in enc._w.items()}
    lstm1 = torch.nn.LSTM(f, h1, batch_first=True).double()
    lstm2 = torch.nn.LSTM(h1, enc.code_dim, batch_first=True).double()
    with torch.no_grad():
        for lstm, k in ((lstm1, "l1"), (lstm2, "l2")):
            lstm.weight_ih_l0.copy_(w[f"{k}_w_ih"])
            lstm.weight_hh_l0.copy_(w[f"{k}_w_hh"])
            lstm.bias_ih_l0.copy_(w[f"{k}_b"])
            lstm.bias_hh_l0.zero_()
        out1, _ = lstm1(torch.tensor(x))
        _, (h2, _) = lstm2(out1)
    expected = h2[0].numpy()
    got = np.empty((BLOCK, enc.code_dim), np.float32)
    encode_block(ce, lay, tracks, flags, got, aligned_empty(work_size(lay)))
    assert np.abs(got - expected).max() < 1e-5
