"""Random, popularity and oracle: valid actions, no repeats, zero oracle regret."""

import numpy as np
import pytest

from agents import make_agent
from musicrec_gym.errors import ConfigError


@pytest.mark.parametrize("key", ["random", "popularity", "oracle"])
def test_acts_validly_on_a_batch(key, env, context, rollout):
    agent = make_agent(key)
    agent.bind(context)
    assert not agent.learns_online
    _, actions = rollout(agent, env, 30)
    for a in actions:
        assert a.shape == (env.num_envs,) and a.dtype == np.int64
        assert a.min() >= 0 and a.max() < context.n_tracks


def test_popularity_ranks_by_plays_and_never_repeats_in_a_session(env, context):
    """Each session gets the most-played tracks in order, minus its warm-up plays."""
    agent = make_agent("popularity")
    agent.bind(context)
    order = np.argsort(-context.track_plays, kind="stable").tolist()
    obs, info = env.reset(seed=0)
    agent.episode_end(np.ones(env.num_envs, dtype=bool))
    warm = [set(w.tolist()) for w in info["warmup_tracks"]]
    current = [[] for _ in range(env.num_envs)]
    sessions = []  # (warm-up tracks, recommended tracks)
    for _ in range(60):
        actions = agent.act(obs, info, explore=True)
        obs, _, terminated, truncated, info = env.step(actions)
        dones = terminated | truncated
        agent.episode_end(dones)
        for i in range(env.num_envs):
            current[i].append(int(actions[i]))
            if dones[i]:
                sessions.append((warm[i], current[i]))
                current[i], warm[i] = [], set(info["warmup_tracks"][i].tolist())
    assert sum(len(s) > 1 for _, s in sessions) > 10
    assert any(order[0] in w for w, _ in sessions)  # the top track is sometimes a warm-up
    for warmup, s in sessions:
        assert len(s) == len(set(s)) and not warmup & set(s)
        assert s == [t for t in order if t not in warmup][: len(s)]


def test_oracle_has_zero_regret_on_every_step(env, context, rollout):
    agent = make_agent("oracle")
    agent.bind(context)
    infos, _ = rollout(agent, env, 200)
    regret = np.concatenate([info["regret"] for info in infos])
    # The env computes the optimum and the chosen track's value by two summation
    # orders, so "zero" is up to float rounding (a few 1e-16).
    assert np.abs(regret).max() < 1e-12
    chosen = np.concatenate([info["expected_reward"] for info in infos])
    assert np.allclose(chosen, np.concatenate([info["optimal_reward"] for info in infos]))


def test_oracle_needs_the_optimal_action(context):
    agent = make_agent("oracle")
    agent.bind(context)
    with pytest.raises(ConfigError, match="optimal_action"):
        agent.act(np.zeros((2, context.obs_dim)), {})


def test_the_context_of_a_catalog_env_says_so(context):
    assert context.setting == "catalog"
    assert context.n_actions == context.n_tracks and context.slate_size == 0


def test_random_acts_in_every_setting(context):
    """Uniform candidate indices in [0, K); slates of K distinct catalog tracks."""
    import dataclasses

    obs = {"session": np.zeros((64, 9)), "candidates": np.zeros((64, 7, 3))}
    cand = make_agent("random")
    cand.bind(dataclasses.replace(context, setting="candidates", n_actions=7))
    actions = cand.act(obs, {})
    assert actions.shape == (64,) and set(actions.tolist()) == set(range(7))
    slate = make_agent("random")
    slate.bind(dataclasses.replace(context, setting="slate", slate_size=5))
    shown = slate.act(np.zeros((64, 9)), {})
    assert shown.shape == (64, 5) and shown.min() >= 0 and shown.max() < context.n_tracks
    assert all(len(set(row.tolist())) == 5 for row in shown)


def test_oracle_checks_the_slate_shape(context):
    import dataclasses

    agent = make_agent("oracle")
    agent.bind(dataclasses.replace(context, setting="slate", slate_size=3))
    best = np.arange(12).reshape(4, 3)
    assert (agent.act(np.zeros((4, 9)), {"optimal_action": best}) == best).all()
    with pytest.raises(ConfigError, match=r"expected \(4, 3\)"):
        agent.act(np.zeros((4, 9)), {"optimal_action": np.arange(4)})


def test_an_agent_refuses_a_setting_it_does_not_act_in(context):
    import dataclasses

    agent = make_agent("popularity")
    with pytest.raises(ConfigError, match=r"does not act in the 'slate' setting.*random"):
        agent.bind(dataclasses.replace(context, setting="slate", slate_size=3))
