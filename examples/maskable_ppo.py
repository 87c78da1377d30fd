"""sb3-contrib's MaskablePPO on MusicRec-v0 with the session features and the action mask.

``SessionFeatures`` (``musicrec_gym.wrappers``) appends the mean embeddings of the
session's listened and skipped tracks (what the linear bandits use) to the observation
and gives ``action_masks()``, the tracks not played yet this session, which MaskablePPO
reads by itself. The policy is then evaluated greedily, with the mask, on fixed
listeners against the best expected reward that only the simulator knows::

    pip install sb3-contrib
    python examples/maskable_ppo.py --steps 50000
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
import torch
from sb3_contrib import MaskablePPO
from stable_baselines3.common.env_util import make_vec_env

import musicrec_gym  # noqa: F401  (registers MusicRec-v0)
from musicrec_gym.wrappers import SessionFeatures


def evaluate(model: MaskablePPO, episodes: int, seed: int) -> tuple[float, float]:
    """Mean greedy return, and its fraction of the optimal return on the same sessions."""
    env = SessionFeatures(gym.make("MusicRec-v0"))
    returns, optimal = [], []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        ret = opt = 0.0
        done = False
        while not done:
            action, _ = model.predict(obs, action_masks=env.action_masks(), deterministic=True)
            obs, reward, terminated, truncated, info = env.step(int(action))
            ret, opt = ret + reward, opt + info["optimal_reward"]
            done = terminated or truncated
        returns.append(ret)
        optimal.append(opt)
    return float(np.mean(returns)), float(np.sum(returns) / np.sum(optimal))


def main(argv: list[str] | None = None) -> None:
    """Train MaskablePPO for ``--steps`` env steps and print its greedy evaluation."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50_000, help="training env steps")
    parser.add_argument("--n-envs", type=int, default=8, help="listeners at once")
    parser.add_argument("--n-steps", type=int, default=128, help="PPO rollout length")
    parser.add_argument("--eval-episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # small networks: one thread is fastest

    env = make_vec_env(
        "MusicRec-v0", n_envs=args.n_envs, seed=args.seed, wrapper_class=SessionFeatures
    )
    batch = min(64, args.n_envs * args.n_steps)
    model = MaskablePPO("MlpPolicy", env, n_steps=args.n_steps, batch_size=batch, seed=args.seed)
    model.learn(total_timesteps=args.steps)
    mean_return, fraction = evaluate(model, args.eval_episodes, seed=10_000)
    print(
        f"MaskablePPO ({model.num_timesteps} steps): greedy return {mean_return:.3f}, "
        f"fraction of optimal {fraction:.3f}"
    )


if __name__ == "__main__":
    main()
