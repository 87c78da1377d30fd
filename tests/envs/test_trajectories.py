"""The reproducibility contract of the README, held against recorded trajectories.

``recorded_trajectories.npz`` was written by ``trajectory_cases.run_cases`` before the
speed work, on another CPU model (an AVX2 machine whose OpenBLAS ran its Haswell
kernels), so comparing with it is a check across machines:

- identical on any x86-64 machine: every integer and boolean array (listeners, tracks
  played, listens, terminations and truncations, optimal actions, warm-ups, histories);
- within a stated tolerance: floating-point arrays, observations within 1e-5 (the
  encoder's float32 arithmetic) and everything else within 1e-12 (expected rewards and
  logits: BLAS kernels and ``exp`` differ in the last bits between CPUs and libraries).

On one machine the same seed gives the same bits, floats included.
"""

import numpy as np
import pytest

from tests.envs.trajectory_cases import RECORDED, run_cases

OBS_ATOL = 1e-5
FLOAT_ATOL = 1e-12


def assert_within_contract(now: dict, before: dict) -> None:
    """Integer and boolean arrays equal, floats within the contract's tolerance."""
    assert set(now) == set(before)
    for key, expected in before.items():
        got = now[key]
        assert got.shape == expected.shape, key
        if expected.dtype.kind == "f":
            atol = OBS_ATOL if key.endswith("obs") else FLOAT_ATOL
            assert np.allclose(got, expected, atol=atol, rtol=0), key
        else:
            assert got.dtype.kind == expected.dtype.kind, key
            assert np.array_equal(got, expected), key


@pytest.fixture(scope="module")
def cases():
    with np.load(RECORDED) as rec:
        recorded = {key: rec[key] for key in rec.files}
    return recorded, run_cases()


def test_recorded_trajectories_agree_across_machines(cases):
    recorded, now = cases
    assert_within_contract(now, recorded)


def test_same_seed_same_bits_on_one_machine(cases):
    _, now = cases
    again = run_cases()
    assert set(again) == set(now)
    for key, value in now.items():
        assert np.array_equal(again[key], value), key


def test_recording_exercises_every_path(cases):
    """The recording would catch a change: it holds ends of both kinds, resets and skips."""
    recorded, _ = cases
    assert recorded["vec16/terminated"].any() and recorded["vec16/truncated"].any()
    assert recorded["single/reset_user"].size > 5
    listened = recorded["vec16/listened"]
    assert 0.05 < listened.mean() < 0.95
    # repeats were penalised (with 3 cached candidates, the optimum often leaves the cache)
    assert (recorded["sim/cand_pen"] > 0).any() and (recorded["sim_m3/cand_pen"] > 0).any()
    # both kinds of array are compared: the contract's two halves are exercised
    kinds = {value.dtype.kind for value in recorded.values()}
    assert "f" in kinds and kinds & {"i", "u", "b"}


def test_without_pool_similarity_tables_the_trajectories_are_the_same(monkeypatch):
    """Worlds too big for the tables compute each continuation: the same numbers."""
    from musicrec_gym.sim import simulator
    from tests.envs.trajectory_cases import simulator_case

    monkeypatch.setattr(simulator, "_POOL_SIM_BYTES", 0)
    with np.load(RECORDED) as rec:
        for prefix, seed, steps, m in (("sim", 500, 40, None), ("sim_m3", 600, 30, 3)):
            now = simulator_case(prefix, seed=seed, steps=steps, n_candidates=m)
            assert_within_contract(now, {key: rec[key] for key in now})
