"""Same seed, same trajectory as recorded before the speed work (see trajectory_cases.py)."""

import numpy as np
import pytest

from tests.envs.trajectory_cases import RECORDED, run_cases

# Expected rewards: affine in a listen probability, sigmoid(logit).
_FROM_EXP = {"optimal_reward", "expected_reward", "regret", "reset_optimal_reward"}


@pytest.fixture(scope="module")
def cases():
    with np.load(RECORDED) as rec:
        recorded = {key: rec[key] for key in rec.files}
    return recorded, run_cases()


def test_every_recorded_array_is_reproduced(cases):
    recorded, now = cases
    assert set(now) == set(recorded)
    for key, before in recorded.items():
        after = now[key]
        assert after.shape == before.shape, key
        if key.endswith("obs"):  # the encoder's float32 rounding may change (within 1e-5)
            assert np.allclose(after, before, atol=1e-5, rtol=0), key
        elif key.rsplit("/", 1)[-1] in _FROM_EXP:
            # sigmoid's exp: NumPy's SIMD exp and the C library's (the compiled kernels)
            # may differ in the last bit
            assert np.allclose(after, before, atol=1e-12, rtol=0), key
        else:  # everything else bit for bit: listeners, plays, rewards, ends, optima
            assert np.array_equal(after, before), key


def test_recording_exercises_every_path(cases):
    """The recording would catch a change: it holds ends of both kinds, resets and skips."""
    recorded, _ = cases
    assert recorded["vec16/terminated"].any() and recorded["vec16/truncated"].any()
    assert recorded["single/reset_user"].size > 5
    listened = recorded["vec16/listened"]
    assert 0.05 < listened.mean() < 0.95
    # repeats were penalised (with 3 cached candidates, the optimum often leaves the cache)
    assert (recorded["sim/cand_pen"] > 0).any() and (recorded["sim_m3/cand_pen"] > 0).any()


def test_without_pool_similarity_tables_the_trajectories_are_the_same(monkeypatch):
    """Worlds too big for the tables compute each continuation: the same numbers."""
    from musicrec_gym.sim import simulator
    from tests.envs.trajectory_cases import simulator_case

    monkeypatch.setattr(simulator, "_POOL_SIM_BYTES", 0)
    with np.load(RECORDED) as rec:
        for prefix, seed, steps, m in (("sim", 500, 40, None), ("sim_m3", 600, 30, 3)):
            now = simulator_case(prefix, seed=seed, steps=steps, n_candidates=m)
            for key, after in now.items():
                assert np.array_equal(after, rec[key]), key
