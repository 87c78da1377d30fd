"""Offline agents (BC, CQL) trained from logged sessions, and the logging-policy reference."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch as th

from agents import AgentContext, make_agent
from agents.offline import (
    CQLAgent,
    LoggedTransitions,
    conservative_term,
    session_feature_rows,
)
from musicrec_gym.envs.vector import MusicRecVectorEnv
from musicrec_gym.errors import ConfigError
from musicrec_gym.logged_data import LoggedDataset
from musicrec_gym.session_features import SessionPlays, standardized

FAST = {"steps": 300, "batch_size": 64, "net_arch": [32, 32], "lr": 3e-3}


def log_rollout(env: MusicRecVectorEnv, sessions: int, seed: int = 0) -> LoggedDataset:
    """The first session of every slot under the world's logging policy, as a dataset.

    A stand-in for ``musicrec log`` with the same columns (propensities set to 1: the
    learners never read them).
    """
    n = env.num_envs
    rows: dict[str, list] = {k: [] for k in ("episode", "step", "obs", "next_obs", "action")}
    for k in ("reward", "terminated", "truncated", "user", "listened", "exp", "opt"):
        rows[k] = []
    warm_t, warm_l, seeds = [], [], []
    episode = 0
    while episode < sessions:
        batch_seeds = [seed * 10_000 + episode + i for i in range(n)]
        obs, info = env.reset(seed=batch_seeds)
        warm_t.append(info["warmup_tracks"].copy())
        warm_l.append(info["warmup_listened"].copy())
        seeds.append(np.array(batch_seeds))
        per_slot = [[] for _ in range(n)]
        active = np.ones(n, dtype=bool)
        step = np.zeros(n, dtype=np.int64)
        while active.any():
            actions = env.core.sim.logging_actions(slice(None)).astype(np.int64)
            next_obs, rewards, terminated, truncated, info = env.step(actions)
            final = info.get("final_obs")
            for i in np.flatnonzero(active):
                done = bool(terminated[i] or truncated[i])
                nxt = final[i] if done and final is not None else next_obs[i]
                per_slot[i].append(
                    (step[i], obs[i], nxt, actions[i], rewards[i], terminated[i], truncated[i],
                     info["user"][i], info["listened"][i], info["expected_reward"][i],
                     info["optimal_reward"][i])
                )  # fmt: skip
                if done:
                    active[i] = False
            step += 1
            obs = next_obs
        for i in range(n):
            for r in per_slot[i]:
                for key, value in zip(
                    ("step", "obs", "next_obs", "action", "reward", "terminated", "truncated",
                     "user", "listened", "exp", "opt"), r, strict=True,
                ):  # fmt: skip
                    rows[key].append(value)
                rows["episode"].append(episode + i)
        episode += n
    count = len(rows["action"])
    return LoggedDataset(
        episode=np.array(rows["episode"], dtype=np.int64),
        step=np.array(rows["step"], dtype=np.int64),
        obs=np.array(rows["obs"], dtype=np.float32),
        next_obs=np.array(rows["next_obs"], dtype=np.float32),
        action=np.array(rows["action"], dtype=np.int64),
        reward=np.array(rows["reward"], dtype=np.float64),
        terminated=np.array(rows["terminated"], dtype=bool),
        truncated=np.array(rows["truncated"], dtype=bool),
        pscore=np.ones(count),
        user=np.array(rows["user"], dtype=np.int64),
        listened=np.array(rows["listened"], dtype=bool),
        warmup_tracks=np.concatenate(warm_t).astype(np.int64),
        warmup_listened=np.concatenate(warm_l).astype(bool),
        reset_seed=np.concatenate(seeds).astype(np.int64),
        truth_expected_reward=np.array(rows["exp"], dtype=np.float64),
        truth_optimal_reward=np.array(rows["opt"], dtype=np.float64),
        action_context=np.column_stack([env.world.embeddings, np.zeros(env.world.n_tracks)]).astype(
            np.float32
        ),
        meta={
            "world": str(env.world.directory),
            "world_sha": "",
            "env_kwargs": {},
            "policy": "world",
            "seed": seed,
            "n_episodes": episode,
        },
    )


@pytest.fixture(scope="module")
def logged(tiny_world) -> LoggedDataset:
    return log_rollout(MusicRecVectorEnv(num_envs=16, world=tiny_world), 64)


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread, as the harness runs agents (many small matrices: much faster)."""
    threads = th.get_num_threads()
    th.set_num_threads(1)
    yield
    th.set_num_threads(threads)


@pytest.fixture
def saved(logged, tiny_world, tmp_path) -> Path:
    from musicrec_gym.logged_data import world_sha

    logged = dataclasses.replace(logged, meta={**logged.meta, "world_sha": world_sha(tiny_world)})
    return logged.save(tmp_path / "logs")


class NoStepEnv:
    """What ``learn`` may touch of an environment: its world. Stepping it fails the test."""

    def __init__(self, env: MusicRecVectorEnv) -> None:
        self.world = env.world
        self.num_envs = env.num_envs

    def reset(self, *args, **kwargs):
        raise AssertionError("an offline agent stepped the environment")

    step = reset


def bound(key: str, context: AgentContext, **params):
    agent = make_agent(key, {**FAST, **params})
    agent.bind(context)
    return agent


# ----------------------------------------------------------------- data


def test_session_features_are_rebuilt_as_session_plays_computes_them(logged, context):
    emb = standardized(context.track_features)
    before, after = session_feature_rows(
        logged.episode, logged.action, logged.listened, logged.warmup_tracks,
        logged.warmup_listened, emb,
    )  # fmt: skip
    plays = SessionPlays(emb, 1)
    for j in range(logged.n_rows):
        if logged.step[j] == 0:
            e = logged.episode[j]
            plays.reset(
                np.array([0]), logged.warmup_tracks[e : e + 1], logged.warmup_listened[e : e + 1]
            )
        np.testing.assert_allclose(before[j], plays.features()[0], atol=1e-9)
        plays.add(np.array([0]), logged.action[j : j + 1], logged.listened[j : j + 1])
        np.testing.assert_allclose(after[j], plays.features()[0], atol=1e-9)


def test_played_after_blocks_warmup_and_earlier_actions(logged, context):
    trans = LoggedTransitions.from_dataset(logged, context.track_features, True)
    rows = np.flatnonzero(logged.step == 2)[:5]
    mask = trans.played_after(rows, context.n_tracks)
    for row, m in zip(rows, mask, strict=True):
        e = logged.episode[row]
        want = set(logged.action[row - 2 : row + 1]) | {
            t for t in logged.warmup_tracks[e] if 0 <= t < context.n_tracks
        }
        assert set(np.flatnonzero(m)) == want


# ----------------------------------------------------------------- learning


@pytest.mark.parametrize("key", ["bc", "cql"])
def test_training_lowers_the_loss(key, logged, context):
    agent = bound(key, context, alpha=0.5) if key == "cql" else bound(key, context)
    losses = agent.fit(logged)
    assert len(losses) == FAST["steps"] and np.isfinite(losses).all()
    assert losses[-50:].mean() < 0.8 * losses[:50].mean()


def test_conservative_term_on_a_hand_checked_batch():
    q = th.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    actions = th.tensor([2, 0])
    # row 0: log(e + e^2 + e^3) - 3 = log(1 + e^-1 + e^-2); row 1: log 3 - 0
    want = (np.log(1 + np.exp(-1) + np.exp(-2)) + np.log(3)) / 2
    assert float(conservative_term(q, actions)) == pytest.approx(want, abs=1e-6)
    # the logged action with the highest Q-value scores lower than one with the lowest
    assert float(conservative_term(q[:1], th.tensor([2]))) < float(
        conservative_term(q[:1], th.tensor([0]))
    )


def test_cql_loss_is_td_plus_alpha_times_the_conservative_term(logged, context):
    agent = bound("cql", context, alpha=2.0, steps=0)
    trans = LoggedTransitions.from_dataset(logged, context.track_features, True)
    agent.fit(logged)  # builds the networks, no gradient step
    rows = np.arange(8)
    loss = float(agent.loss(trans, rows).detach())
    td, conservative = agent.last_terms
    assert loss == pytest.approx(td + 2.0 * conservative, rel=1e-5)
    q_all = agent.net(th.as_tensor(trans.states[rows]))
    assert conservative == pytest.approx(
        float(conservative_term(q_all, th.as_tensor(trans.actions[rows]))), rel=1e-5
    )


def test_learn_reads_the_dataset_and_never_steps_the_env(saved, env, context):
    agent = bound("bc", context, dataset=str(saved), steps=20)
    agent.learn(NoStepEnv(env), 10_000)
    assert len(agent.losses) == 20


def test_acting_is_greedy_valid_and_never_repeats(saved, env, context, rollout):
    agent = bound("cql", context, dataset=str(saved), steps=50)
    agent.learn(env, 1)
    infos, actions = rollout(agent, env, 25, explore=False)
    assert all(((a >= 0) & (a < context.n_tracks)).all() for a in actions)
    slot_sessions = [[[]] for _ in range(env.num_envs)]
    for info in infos:
        for i in range(env.num_envs):
            slot_sessions[i][-1].append(int(info["track"][i]))
            if info["done"][i]:
                slot_sessions[i].append([])
    for sessions in slot_sessions:
        for tracks in sessions:
            assert len(tracks) == len(set(tracks))


@pytest.mark.parametrize("key", ["bc", "cql"])
def test_save_load_round_trip_gives_the_same_actions(key, logged, env, context, rollout, tmp_path):
    agent = bound(key, context, steps=50)
    agent.fit(logged)
    agent.save(tmp_path / "agent.npz")
    copy = bound(key, context)
    copy.load(tmp_path / "agent.npz")
    _, a = rollout(agent, env, 10, seed=3, explore=False)
    _, b = rollout(copy, env, 10, seed=3, explore=False)
    np.testing.assert_array_equal(np.array(a), np.array(b))


def test_loading_weights_of_another_shape_is_refused(logged, context, tmp_path):
    from musicrec_gym.errors import DataFormatError

    agent = bound("bc", context, steps=1)
    agent.fit(logged)
    agent.save(tmp_path / "agent.npz")
    other = bound("bc", context, net_arch=[16])
    with pytest.raises(DataFormatError, match="do not fit"):
        other.load(tmp_path / "agent.npz")


# ----------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"alpha": -1.0}, "alpha"),
        ({"gamma": 1.5}, "gamma"),
        ({"steps": -1}, "steps"),
        ({"batch_size": 0}, "batch_size"),
        ({"lr": 0.0}, "lr"),
        ({"dataset": 3}, "dataset"),
        ({"avoid_repeats": "yes"}, "avoid_repeats"),
        ({"target_update_interval": 0}, "target_update_interval"),
    ],
)
def test_bad_hyperparameters_name_the_field(params, field):
    with pytest.raises(ConfigError, match=f"`{field}`"):
        make_agent("cql", params)


def test_learning_without_a_dataset_names_the_field(env, context):
    agent = bound("cql", context)
    with pytest.raises(ConfigError, match=r"`dataset` is required"):
        agent.learn(NoStepEnv(env), 1)


def test_a_missing_dataset_directory_names_the_field(env, context, tmp_path):
    agent = bound("bc", context, dataset=str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match=r"`dataset` .*nowhere"):
        agent.learn(NoStepEnv(env), 1)


def test_a_dataset_of_another_catalog_size_is_refused(logged, context):
    smaller = AgentContext(
        n_tracks=context.n_tracks - 1,
        obs_dim=context.obs_dim,
        track_features=context.track_features[:-1],
        track_plays=context.track_plays[:-1],
        track_artist=context.track_artist[:-1],
    )
    agent = bound("cql", smaller)
    with pytest.raises(ConfigError, match=r"`dataset` .* tracks but the environment has"):
        agent.fit(logged)


def test_a_dataset_of_another_world_is_refused(saved, context):
    default = MusicRecVectorEnv(num_envs=2)  # the built-in world, not the tiny one
    agent = make_agent("bc", {**FAST, "dataset": str(saved)})
    agent.bind(AgentContext.from_env(default))
    with pytest.raises(ConfigError, match=r"`dataset`.*another world"):
        agent.learn(NoStepEnv(default), 1)


# ----------------------------------------------------------------- the logging policy


def test_logging_agent_plays_valid_tracks(env, context, rollout):
    agent = make_agent("logging")
    agent.bind(context)
    agent.attach(env)
    assert not agent.learns_online
    _, actions = rollout(agent, env, 20, explore=False)
    actions = np.array(actions)
    assert ((actions >= 0) & (actions < context.n_tracks)).all()
    assert len(np.unique(actions)) > 5


def test_logging_agent_needs_a_musicrec_env(context):
    agent = make_agent("logging")
    agent.bind(context)
    with pytest.raises(ConfigError, match="attach"):
        agent.act(np.zeros((2, context.obs_dim)), {})
    with pytest.raises(ConfigError, match="MusicRec environment"):
        agent.attach(object())


def test_cql_is_a_registered_offline_agent():
    assert isinstance(make_agent("cql"), CQLAgent)
