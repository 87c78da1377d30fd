"""Tianshou 2.x DQN on MusicRec-v0: ``gym.make("MusicRec-v0")`` in ``DummyVectorEnv``, unmodified.

Tianshou's procedural API, as in its CartPole DQN example: a ``Net``, a
``DiscreteQLearningPolicy`` (epsilon-greedy), the ``DQN`` algorithm, collectors over
vectorised environments and the off-policy trainer; then a greedy evaluation::

    python examples/tianshou_dqn.py --steps 50000
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
import tianshou as ts
import torch
from tianshou.algorithm.modelfree.dqn import DiscreteQLearningPolicy
from tianshou.algorithm.optim import AdamOptimizerFactory
from tianshou.data import CollectStats
from tianshou.trainer import OffPolicyTrainerParams
from tianshou.utils.net.common import Net

import musicrec_gym  # noqa: F401  (registers MusicRec-v0)


def main(argv: list[str] | None = None) -> None:
    """Train DQN for ``--steps`` env steps; print the greedy evaluation return."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50_000, help="training env steps")
    parser.add_argument("--envs", type=int, default=8, help="training environments")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--eval-episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)  # small networks: one thread is fastest

    train_envs = ts.env.DummyVectorEnv([lambda: gym.make("MusicRec-v0")] * args.envs)
    test_envs = ts.env.DummyVectorEnv([lambda: gym.make("MusicRec-v0")] * 4)
    train_envs.seed(args.seed)
    test_envs.seed(10_000)
    env = gym.make("MusicRec-v0")
    net = Net(
        state_shape=env.observation_space.shape,
        action_shape=env.action_space.n,
        hidden_sizes=[128, 128],
    )
    policy = DiscreteQLearningPolicy(
        model=net, action_space=env.action_space, eps_training=0.1, eps_inference=0.0
    )
    algorithm = ts.algorithm.DQN(
        policy=policy,
        optim=AdamOptimizerFactory(lr=1e-3),
        gamma=0.9,
        n_step_return_horizon=3,
        target_update_freq=320,
    )
    buffer = ts.data.VectorReplayBuffer(20_000, args.envs)
    train_collector = ts.data.Collector[CollectStats](
        algorithm, train_envs, buffer, exploration_noise=True
    )
    test_collector = ts.data.Collector[CollectStats](algorithm, test_envs)
    epoch_steps = max(args.steps // args.epochs, args.envs)
    algorithm.run_training(
        OffPolicyTrainerParams(
            training_collector=train_collector,
            test_collector=test_collector,
            max_epochs=args.epochs,
            epoch_num_steps=epoch_steps,
            collection_step_num_env_steps=args.envs,
            test_step_num_episodes=4,
            batch_size=64,
            update_step_num_gradient_steps_per_sample=1 / args.envs,
            show_progress=False,
        )
    )
    stats = ts.data.Collector[CollectStats](algorithm, test_envs).collect(
        n_episode=args.eval_episodes, reset_before_collect=True
    )
    print(
        f"tianshou DQN ({args.epochs} x {epoch_steps} steps): greedy return "
        f"{np.mean(stats.returns):.3f} over {len(stats.returns)} sessions"
    )


if __name__ == "__main__":
    main()
