"""TorchRL PPO on MusicRec-v0: ``GymEnv("MusicRec-v0")``, unmodified.

TorchRL's own pieces throughout: ``GymEnv`` (with an info reader, so that the
simulator's ``optimal_reward`` rides along in the rollouts), a ``Collector``,
``GAE`` and ``ClipPPOLoss``. TorchRL builds the action spec one-hot, hence the
``OneHotCategorical`` policy::

    python examples/torchrl_ppo.py --steps 50000
"""

from __future__ import annotations

import argparse

import torch
from tensordict.nn import TensorDictModule
from torch import nn
from torchrl.collectors import Collector
from torchrl.data import Unbounded
from torchrl.envs import GymEnv
from torchrl.envs.libs.gym import default_info_dict_reader
from torchrl.envs.utils import check_env_specs
from torchrl.modules import MLP, OneHotCategorical, ProbabilisticActor, ValueOperator
from torchrl.objectives import ClipPPOLoss
from torchrl.objectives.value import GAE

import musicrec_gym  # noqa: F401  (registers MusicRec-v0)


def main(argv: list[str] | None = None) -> None:
    """Train for ``--steps`` env steps; print the return and fraction of optimal."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50_000, help="env steps")
    parser.add_argument("--frames-per-batch", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--minibatch", type=int, default=250)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)  # small networks: one thread is fastest

    env = GymEnv("MusicRec-v0")
    # info values are float64 (TorchRL's reader assumes float32 unless told)
    spec = [Unbounded((), dtype=torch.float64)]
    env.set_info_dict_reader(default_info_dict_reader(["optimal_reward"], spec=spec))
    env.set_seed(args.seed)
    check_env_specs(env)
    n_obs, n_actions = env.observation_spec["observation"].shape[-1], env.action_spec.shape[-1]

    def mlp(n_out: int) -> MLP:
        return MLP(
            in_features=n_obs, out_features=n_out, num_cells=[64, 64], activation_class=nn.Tanh
        )

    logits = TensorDictModule(mlp(n_actions), in_keys=["observation"], out_keys=["logits"])
    actor = ProbabilisticActor(
        logits,
        in_keys=["logits"],
        spec=env.action_spec,
        distribution_class=OneHotCategorical,
        return_log_prob=True,
    )
    critic = ValueOperator(mlp(1), in_keys=["observation"])
    advantage = GAE(gamma=0.99, lmbda=0.95, value_network=critic, average_gae=True)
    loss = ClipPPOLoss(actor, critic, clip_epsilon=0.2, entropy_coeff=0.01)
    optimizer = torch.optim.Adam(loss.parameters(), lr=args.lr)
    collector = Collector(
        env,
        actor,
        frames_per_batch=args.frames_per_batch,
        total_frames=args.steps,
        auto_register_policy_transforms=False,  # the policy is stateless
    )
    reward = optimal = 0.0
    for batch in collector:
        with torch.no_grad():
            advantage(batch)
        flat = batch.reshape(-1)
        for _ in range(args.epochs):
            for idx in torch.randperm(len(flat)).split(args.minibatch):
                out = loss(flat[idx])
                total = out["loss_objective"] + out["loss_critic"] + out["loss_entropy"]
                optimizer.zero_grad()
                total.backward()
                optimizer.step()
        reward = batch["next", "reward"].sum().item()  # the last batch's
        optimal = batch["next", "optimal_reward"].sum().item()
    collector.shutdown()
    print(
        f"torchrl PPO ({args.steps} steps): last batch's reward {reward:.0f} of "
        f"{optimal:.0f} optimal, fraction of optimal {reward / max(optimal, 1e-9):.3f}"
    )


if __name__ == "__main__":
    main()
