"""Record a logged dataset of MusicRec-v0 sessions with Minari, infos included.

A ``DataCollector(env, record_infos=True)`` stores every step's ``info`` beside the
observations, actions and rewards (the reset's info first: its step-outcome keys are
placeholders, 0 / False / -1). The logging policy here is epsilon-greedy over track
popularity, and the dataset says so (``algorithm_name``) with the probability of
each action it took (``info["propensity"]``, 1.0 at reset): what off-policy
estimators need. ``info``'s ``optimal_reward``,
``expected_reward``, ``regret`` and ``optimal_action`` are what only the simulator
knows: keep them for evaluation, never as a logged feature::

    MINARI_DATASETS_PATH=/tmp/minari python examples/minari_record.py --episodes 1000
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import minari
import numpy as np

import musicrec_gym  # noqa: F401  (registers MusicRec-v0)

SIMULATOR_ONLY = ("optimal_reward", "expected_reward", "regret", "optimal_action")
"""Info keys a real service would not have: for evaluation, not for learning."""


class Propensity(gym.Wrapper):
    """Adds ``info["propensity"]``: the logging policy's probability of the action taken.

    Set ``propensity`` before each ``step``; the reset's info has 1.0.
    """

    propensity = 1.0

    def reset(self, **kwargs):
        """Reset, with the placeholder propensity."""
        obs, info = self.env.reset(**kwargs)
        return obs, {**info, "propensity": np.float64(1.0)}

    def step(self, action):
        """Step, with the propensity of ``action``."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, {**info, "propensity": self.propensity}


def main(argv: list[str] | None = None) -> None:
    """Log ``--episodes`` sessions, write the dataset, load it back and summarise it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=1000, help="sessions to log")
    parser.add_argument("--epsilon", type=float, default=0.3, help="uniform exploration")
    parser.add_argument("--dataset-id", default="musicrec/popularity-eps-v0")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    logged = Propensity(gym.make("MusicRec-v0"))
    env = minari.DataCollector(logged, record_infos=True)
    catalog = env.unwrapped.world.catalog
    top = np.argsort(-catalog["popularity"].to_numpy(), kind="stable")  # most popular first
    n_tracks = len(catalog)
    rng = np.random.default_rng(args.seed)
    for episode in range(args.episodes):
        env.reset(seed=args.seed + episode)
        played, done = set(), False
        while not done:
            greedy = next(int(t) for t in top if t not in played)
            action = int(rng.integers(n_tracks)) if rng.random() < args.epsilon else greedy
            logged.propensity = np.float64(
                args.epsilon / n_tracks + (1 - args.epsilon) * (action == greedy)
            )
            played.add(action)
            *_, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
    if args.dataset_id in minari.list_local_datasets():
        minari.delete_dataset(args.dataset_id)
    dataset = env.create_dataset(
        dataset_id=args.dataset_id,
        algorithm_name=f"epsilon-greedy popularity, epsilon={args.epsilon}",
        description=(
            "MusicRec-v0 sessions logged by epsilon-greedy over track popularity. "
            f"Simulator-only info keys (not logged features): {', '.join(SIMULATOR_ONLY)}."
        ),
        author="musicrec-gym examples",
        author_email="examples@example.org",
        code_permalink="https://example.org/musicrec-gym/examples/minari_record.py",
        eval_env="MusicRec-v0",
    )
    env.close()

    loaded = minari.load_dataset(args.dataset_id)
    rewards, regrets = [], []
    for episode in loaded.iterate_episodes():
        rewards.append(episode.rewards.sum())
        regrets.append(episode.infos["regret"][1:].sum())  # [0] is the reset's placeholder
    print(
        f"minari dataset {args.dataset_id!r}: {loaded.total_episodes} sessions, "
        f"{loaded.total_steps} steps, info keys {sorted(episode.infos)}; mean return "
        f"{np.mean(rewards):.3f}, mean regret {np.mean(regrets):.3f} ({dataset.spec.data_path})"
    )


if __name__ == "__main__":
    main()
