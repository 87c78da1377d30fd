"""Stable-Baselines3 PPO on MusicRec-v0, through SB3's own ``make_vec_env`` or the native adapter.

``--env gymnasium`` is what SB3 does with any Gymnasium id: one Python environment per
listener (``make_vec_env("MusicRec-v0")``). ``--env native`` is the project's adapter,
``MusicRecSB3VecEnv``: all listeners stepped at once by the native vector environment,
much faster at many listeners. Both train the same PPO, then evaluate it greedily on
fixed listeners against the best expected reward that only the simulator knows::

    python examples/sb3_ppo.py --env native --steps 50000
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env

import musicrec_gym  # noqa: F401  (registers MusicRec-v0)
from musicrec_gym.envs.sb3 import MusicRecSB3VecEnv


def evaluate(model: PPO, episodes: int, seed: int) -> tuple[float, float]:
    """Mean greedy return, and its fraction of the optimal return on the same sessions."""
    env = gym.make("MusicRec-v0")
    returns, optimal = [], []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        ret = opt = 0.0
        done = False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, info = env.step(int(action))
            ret, opt = ret + reward, opt + info["optimal_reward"]
            done = terminated or truncated
        returns.append(ret)
        optimal.append(opt)
    return float(np.mean(returns)), float(np.sum(returns) / np.sum(optimal))


def main(argv: list[str] | None = None) -> None:
    """Train PPO for ``--steps`` env steps and print its greedy evaluation."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", choices=["gymnasium", "native"], default="native")
    parser.add_argument("--steps", type=int, default=50_000, help="training env steps")
    parser.add_argument("--n-envs", type=int, default=16, help="listeners at once")
    parser.add_argument("--n-steps", type=int, default=128, help="PPO rollout length")
    parser.add_argument("--eval-episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # small networks: one thread is fastest

    if args.env == "gymnasium":
        env = make_vec_env("MusicRec-v0", n_envs=args.n_envs, seed=args.seed)
    else:
        env = MusicRecSB3VecEnv(num_envs=args.n_envs, seed=args.seed)
    batch = min(64, args.n_envs * args.n_steps)
    model = PPO("MlpPolicy", env, n_steps=args.n_steps, batch_size=batch, seed=args.seed)
    model.learn(total_timesteps=args.steps)
    mean_return, fraction = evaluate(model, args.eval_episodes, seed=10_000)
    print(
        f"sb3 PPO ({args.env} env, {model.num_timesteps} steps): greedy return "
        f"{mean_return:.3f}, fraction of optimal {fraction:.3f}"
    )


if __name__ == "__main__":
    main()
