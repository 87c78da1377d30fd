"""Fixed-seed trajectories that lock in the environment's dynamics across speed-ups.

``recorded_trajectories.npz`` beside this file was written by :func:`run_cases` with the
code as it was BEFORE the speed work on the native batch env (the simulator's reset and
step paths, the NumPy encoder, the envs' info building), on another CPU model than
today's CI. ``test_trajectories.py`` runs the cases again and holds them to the
README's reproducibility contract: integer and boolean arrays identical, observations
within 1e-5, other floats (expected rewards, logits) within 1e-12.

Regenerate only on a deliberate change of dynamics (and bump the env's version)::

    python -m tests.envs.trajectory_cases --write
"""

from __future__ import annotations

import argparse
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd

import musicrec_gym  # noqa: F401  (registers MusicRec-v0)
from musicrec_gym.data.synthetic import SyntheticConfig, generate_world
from musicrec_gym.envs.vector import MusicRecVectorEnv
from musicrec_gym.sim.params import SimulatorParams
from musicrec_gym.sim.response import ResponseModel
from musicrec_gym.sim.simulator import BatchSimulator, ListenerCandidates

RECORDED = Path(__file__).with_name("recorded_trajectories.npz")

# Per-step info keys recorded from the vector env (all of them but ids and masks).
_VEC_KEYS = (
    "optimal_reward",
    "expected_reward",
    "regret",
    "listened",
    "track",
    "user",
    "optimal_action",
    "step",
    "warmup_tracks",
    "warmup_listened",
)


def _mixed_actions(rng: np.random.Generator, info: dict, n: int, n_tracks: int) -> np.ndarray:
    """Random tracks, the optimum, and repeats of a warm-up play: every code path.

    Repeats are penalised by the fatigue, pushing cached candidates below the threshold.
    """
    kind = rng.integers(0, 4, n)
    actions = rng.integers(0, n_tracks, n)
    actions = np.where(kind == 1, info["optimal_action"], actions)
    return np.where(kind == 2, info["warmup_tracks"][:, 0], actions)


def vector_case(prefix: str, n: int, seed: int, steps: int, **kwargs) -> dict[str, np.ndarray]:
    """``steps`` steps of the native vector env with mixed actions, autoresets included."""
    env = MusicRecVectorEnv(num_envs=n, **kwargs)
    obs, info = env.reset(seed=seed)
    out: dict[str, list[np.ndarray]] = {"obs": [obs], "reset_optimal_reward": []}
    # (the best expected reward of the first recommendation: the simulator's, since the
    # reset info's step-outcome keys are placeholders)
    out["reset_optimal_reward"].append(env.core.sim.optimal_reward())
    rng = np.random.default_rng(seed)
    n_tracks = env.world.n_tracks
    for _ in range(steps):
        actions = _mixed_actions(rng, info, n, n_tracks)
        obs, reward, term, trunc, info = env.step(actions)
        out["obs"].append(obs)
        for key, value in (("reward", reward), ("terminated", term), ("truncated", trunc)):
            out.setdefault(key, []).append(value)
        for key in _VEC_KEYS:
            out.setdefault(key, []).append(np.asarray(info[key]))
        final = info.get("final_obs", np.zeros_like(obs))
        out.setdefault("final_obs", []).append(final)
    sim = env.core.sim
    arrays = {f"{prefix}/{k}": np.stack(v) for k, v in out.items()}
    arrays[f"{prefix}/hist"] = sim.hist.copy()
    arrays[f"{prefix}/hist_listened"] = sim.hist_listened.copy()
    return arrays


def single_case(prefix: str, seed: int, steps: int) -> dict[str, np.ndarray]:
    """A single ``MusicRec-v0`` for ``steps`` steps, resetting (one with a chosen user)."""
    env = gym.make("MusicRec-v0")
    obs, info = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    out: dict[str, list] = {}

    def keep(key: str, value) -> None:
        out.setdefault(key, []).append(np.asarray(value))

    keep("reset_obs", obs)
    keep("reset_user", info["user"])
    keep("reset_optimal_action", info["optimal_action"])
    keep("reset_warmup_tracks", info["warmup_tracks"])
    episodes = 0
    for _ in range(steps):
        kind = rng.integers(0, 3)
        action = (
            int(rng.integers(0, 1000))
            if kind == 0
            else int(info["optimal_action"] if kind == 1 else info["warmup_tracks"][0])
        )
        obs, reward, term, trunc, info = env.step(action)
        keep("obs", obs)
        keep("reward", reward)
        keep("done", [term, trunc])
        keep("optimal_reward", info["optimal_reward"])
        keep("expected_reward", info["expected_reward"])
        keep("optimal_action", info["optimal_action"])
        if term or trunc:
            episodes += 1
            options = {"user": 3} if episodes % 3 == 0 else None
            obs, info = env.reset(options=options)
            keep("reset_obs", obs)
            keep("reset_user", info["user"])
            keep("reset_optimal_action", info["optimal_action"])
            keep("reset_warmup_tracks", info["warmup_tracks"])
    return {f"{prefix}/{k}": np.stack(v) for k, v in out.items()}


def simulator_case(
    prefix: str, seed: int, steps: int, n_candidates: int | None = None
) -> dict[str, np.ndarray]:
    """A ``BatchSimulator`` on a 120-track world: chosen users, logging actions, resets.

    With few cached candidates (``n_candidates``), the optimum often falls back to
    scoring the whole catalog.
    """
    catalog, _, truth = generate_world(
        SyntheticConfig(n_tracks=120, n_artists=40, n_listeners=60, seed=3)
    )
    artist = pd.factorize(catalog["artist_id"], sort=True)[0]
    n = 12
    params = SimulatorParams()
    candidates = None
    if n_candidates is not None:
        candidates = ListenerCandidates(ResponseModel(truth, params.response), m=n_candidates)
    sim = BatchSimulator(
        truth, artist, catalog["popularity"].to_numpy(), params, n, candidates=candidates
    )
    sim.seed(np.arange(n), np.arange(seed, seed + n))
    sim.reset(np.arange(n), users=np.arange(n) * 5)
    rng = np.random.default_rng(seed)
    out: dict[str, list] = {}
    for t in range(steps):
        if t % 3 == 0:
            actions = sim.logging_actions()
        else:
            actions = np.where(rng.random(n) < 0.5, sim.opt_action, sim.hist[:, 0])
        r = sim.step(actions)
        for key in ("reward", "listened", "expected_reward", "optimal_reward"):
            out.setdefault(key, []).append(getattr(r, key))
        out.setdefault("done", []).append(np.stack([r.terminated, r.truncated]))
        out.setdefault("opt_logit", []).append(sim.opt_logit.copy())
        out.setdefault("opt_action", []).append(sim.opt_action.copy())
        out.setdefault("win_tracks", []).append(sim.win_tracks.copy())
        out.setdefault("win_listened", []).append(sim.win_listened.copy())
        ended = np.flatnonzero(r.terminated | r.truncated)
        sim.reset(ended)
    arrays = {f"{prefix}/{k}": np.stack(v) for k, v in out.items()}
    arrays[f"{prefix}/hist"] = sim.hist.copy()
    arrays[f"{prefix}/cand_pen"] = sim.cand_pen.copy()
    arrays[f"{prefix}/expected_rewards"] = sim.expected_rewards()
    return arrays


def run_cases() -> dict[str, np.ndarray]:
    """Every recorded case, as one flat dict of arrays."""
    arrays: dict[str, np.ndarray] = {}
    arrays.update(vector_case("vec16", 16, seed=123, steps=90))
    arrays.update(vector_case("vec40_time", 40, seed=7, steps=30, reward="time"))
    arrays.update(
        vector_case("vec3_event", 3, seed=11, steps=40, reward="event", profile_features=True)
    )
    arrays.update(single_case("single", seed=99, steps=120))
    arrays.update(simulator_case("sim", seed=500, steps=40))
    arrays.update(simulator_case("sim_m3", seed=600, steps=30, n_candidates=3))
    return arrays


def main() -> None:
    """Write :data:`RECORDED` (``--write``) or report how the current code compares."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="overwrite the recording")
    args = parser.parse_args()
    arrays = run_cases()
    if args.write:
        np.savez_compressed(RECORDED, **arrays)
        print(f"wrote {len(arrays)} arrays to {RECORDED} ({RECORDED.stat().st_size:,} bytes)")
        return
    with np.load(RECORDED) as rec:
        for key in rec.files:
            same = np.array_equal(rec[key], arrays[key])
            print(f"{key:<32} {'same' if same else 'DIFFERENT'}")


if __name__ == "__main__":
    main()
