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


def test_popularity_ranks_by_plays_and_never_repeats_in_a_session(
    env, context, rollout, session_tracks
):
    agent = make_agent("popularity")
    agent.bind(context)
    infos, actions = rollout(agent, env, 60)
    order = np.argsort(-context.track_plays, kind="stable")
    assert np.all(actions[0] == order[0])
    sessions = [s for slot in session_tracks(infos) for s in slot]
    assert sum(len(s) > 1 for s in sessions) > 10
    for s in sessions:
        assert len(s) == len(set(s))
        assert s == order[: len(s)].tolist()  # a new session starts from the top again


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
