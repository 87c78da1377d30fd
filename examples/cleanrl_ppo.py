"""CleanRL-style single-file PPO in plain PyTorch on the native vector environment.

The structure of CleanRL's ``ppo.py`` (rollout, GAE, clipped surrogate, minibatch
epochs), on ``gym.make_vec("MusicRec-v0", num_envs=N)``: many listeners stepped at once
by NumPy, same-step autoreset. A session cut by ``max_steps`` is bootstrapped from its
last observation (``info["final_obs"]``), one that ended because the listener left is
not. With ``--logdir``, TensorBoard scalars go to
``{logdir}/MusicRec-v0__cleanrl_ppo__{seed}__{time}`` (``charts/``, ``losses/``)::

    python examples/cleanrl_ppo.py --steps 200000 --logdir runs
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical

import musicrec_gym  # noqa: F401  (registers MusicRec-v0)


def layer(n_in: int, n_out: int, std: float = 2**0.5) -> nn.Linear:
    """A linear layer with CleanRL's orthogonal initialisation."""
    linear = nn.Linear(n_in, n_out)
    nn.init.orthogonal_(linear.weight, std)
    nn.init.constant_(linear.bias, 0.0)
    return linear


class Agent(nn.Module):
    """Separate actor and critic MLPs over the encoded session."""

    def __init__(self, obs_dim: int, n_actions: int, hidden: int = 64) -> None:
        super().__init__()

        def mlp(n_out: int, std: float) -> nn.Sequential:
            return nn.Sequential(
                layer(obs_dim, hidden),
                nn.Tanh(),
                layer(hidden, hidden),
                nn.Tanh(),
                layer(hidden, n_out, std),
            )

        self.critic, self.actor = mlp(1, 1.0), mlp(n_actions, 0.01)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """V(obs), shape (B,)."""
        return self.critic(obs).squeeze(-1)

    def act(self, obs: torch.Tensor, action: torch.Tensor | None = None):
        """Sample (or score) actions: action, log-probability, entropy, value."""
        dist = Categorical(logits=self.actor(obs))
        if action is None:
            action = dist.sample()
        return action, dist.log_prob(action), dist.entropy(), self.value(obs)


def main(argv: list[str] | None = None) -> None:
    """Train for ``--steps`` env steps; print the mean return and fraction of optimal."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=200_000, help="env steps, all listeners")
    p.add_argument("--num-envs", type=int, default=64)
    p.add_argument("--num-steps", type=int, default=64, help="rollout length per listener")
    p.add_argument("--lr", type=float, default=2.5e-4)
    p.add_argument("--gamma", type=float, default=0.99)
    p.add_argument("--gae-lambda", type=float, default=0.95)
    p.add_argument("--minibatches", type=int, default=4)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--clip", type=float, default=0.2)
    p.add_argument("--ent-coef", type=float, default=0.01)
    p.add_argument("--vf-coef", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--logdir", type=Path, default=None, help="TensorBoard root (optional)")
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)  # small networks: one thread is fastest
    writer = None
    if args.logdir is not None:
        from torch.utils.tensorboard import SummaryWriter

        run = f"MusicRec-v0__cleanrl_ppo__{args.seed}__{int(time.time())}"
        writer = SummaryWriter(args.logdir / run)
        rows = "\n".join(f"|{k}|{v}|" for k, v in vars(args).items())
        writer.add_text("hyperparameters", f"|param|value|\n|-|-|\n{rows}")

    envs = gym.make_vec("MusicRec-v0", num_envs=args.num_envs)  # same-step autoreset
    n, t_len = args.num_envs, args.num_steps
    agent = Agent(envs.single_observation_space.shape[0], envs.single_action_space.n)
    optimizer = torch.optim.Adam(agent.parameters(), lr=args.lr, eps=1e-5)
    obs_buf = torch.zeros((t_len, n, envs.single_observation_space.shape[0]))
    act_buf = torch.zeros((t_len, n), dtype=torch.long)
    logp_buf, rew_buf, done_buf, val_buf = (torch.zeros((t_len, n)) for _ in range(4))

    obs, _ = envs.reset(seed=args.seed)
    next_obs, next_done = torch.as_tensor(obs), torch.zeros(n)
    ep_ret, ep_opt = np.zeros(n), np.zeros(n)
    returns, optimal = [], []
    global_step, iterations = 0, max(1, args.steps // (n * t_len))
    for _ in range(iterations):
        for t in range(t_len):
            obs_buf[t], done_buf[t] = next_obs, next_done
            with torch.no_grad():
                action, logp, _, value = agent.act(next_obs)
            act_buf[t], logp_buf[t], val_buf[t] = action, logp, value
            obs, reward, terminated, truncated, info = envs.step(action.numpy())
            global_step += n
            ep_ret += reward  # (step-outcome keys of info describe the step just taken)
            ep_opt += info["optimal_reward"]
            reward = reward.astype(np.float32)
            cut = np.flatnonzero(truncated & ~terminated)
            if len(cut):  # bootstrap sessions cut by the step limit
                with torch.no_grad():
                    final = torch.as_tensor(info["final_obs"][cut])
                    reward[cut] += args.gamma * agent.value(final).numpy()
            rew_buf[t] = torch.as_tensor(reward)
            next_obs = torch.as_tensor(obs)
            done = terminated | truncated
            next_done = torch.as_tensor(done, dtype=torch.float32)
            for i in np.flatnonzero(done):
                returns.append(ep_ret[i])
                optimal.append(ep_opt[i])
                ep_ret[i] = ep_opt[i] = 0.0
        with torch.no_grad():  # GAE
            next_value = agent.value(next_obs)
            adv = torch.zeros_like(rew_buf)
            last = torch.zeros(n)
            for t in reversed(range(t_len)):
                not_done = 1.0 - (next_done if t == t_len - 1 else done_buf[t + 1])
                nxt = next_value if t == t_len - 1 else val_buf[t + 1]
                delta = rew_buf[t] + args.gamma * nxt * not_done - val_buf[t]
                last = delta + args.gamma * args.gae_lambda * not_done * last
                adv[t] = last
            ret = adv + val_buf
        b_obs, b_act = obs_buf.reshape(n * t_len, -1), act_buf.reshape(-1)
        b_logp, b_adv, b_ret = logp_buf.reshape(-1), adv.reshape(-1), ret.reshape(-1)
        size = n * t_len // args.minibatches
        for _ in range(args.epochs):
            for mb in torch.randperm(n * t_len).split(size):
                _, logp, entropy, value = agent.act(b_obs[mb], b_act[mb])
                ratio = (logp - b_logp[mb]).exp()
                mb_adv = (b_adv[mb] - b_adv[mb].mean()) / (b_adv[mb].std() + 1e-8)
                pg_loss = torch.max(
                    -mb_adv * ratio, -mb_adv * ratio.clamp(1 - args.clip, 1 + args.clip)
                ).mean()
                v_loss = 0.5 * ((value - b_ret[mb]) ** 2).mean()
                loss = pg_loss - args.ent_coef * entropy.mean() + args.vf_coef * v_loss
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), 0.5)
                optimizer.step()
        if writer is not None:
            writer.add_scalar("losses/policy_loss", pg_loss.item(), global_step)
            writer.add_scalar("losses/value_loss", v_loss.item(), global_step)
            if returns:
                writer.add_scalar("charts/episodic_return", np.mean(returns[-100:]), global_step)
    if writer is not None:
        writer.close()
    recent = slice(-max(1, len(returns) // 5), None)  # the last fifth of the episodes
    fraction = np.sum(returns[recent]) / max(np.sum(optimal[recent]), 1e-9)
    print(
        f"cleanrl-style PPO ({global_step} steps, {len(returns)} sessions): training "
        f"return {np.mean(returns[recent]):.3f}, fraction of optimal {fraction:.3f}"
    )


if __name__ == "__main__":
    main()
