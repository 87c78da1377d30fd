"""Linear bandits: vectorised scoring, no repeats, sublinear regret, save/load."""

import numpy as np
import pytest

from agents import AgentContext, make_agent
from agents.linear import LinTSAgent
from musicrec_gym.errors import ConfigError

LINEAR = ["epsilon_greedy", "linucb", "lin_ts"]


class LinearRewardEnv:
    """One-step sessions with expected reward ``[s, 1]ᵀ W* [e_i, 1]`` (Gaussian noise).

    It speaks the vector env's API (batched ``reset``/``step``, ``info`` with
    ``optimal_reward``, ``regret``, ``listened``) and records the expected regret of
    every step in ``self.regret``.
    """

    def __init__(self, num_envs=16, n_tracks=40, obs_dim=3, d=4, noise=0.3, seed=0):
        rng = np.random.default_rng(seed)
        self.num_envs, self.obs_dim, self.noise = num_envs, obs_dim, noise
        emb = rng.standard_normal((n_tracks, d))
        self.emb = (emb - emb.mean(axis=0)) / emb.std(axis=0)
        self.w = rng.standard_normal((obs_dim + 1, d + 1)) * 0.3
        self.rng = rng
        self.regret: list[float] = []
        self.context = AgentContext(
            n_tracks=n_tracks,
            obs_dim=obs_dim,
            track_features=self.emb.astype(np.float32),
            track_plays=np.full(n_tracks, 100.0),
            track_artist=np.arange(n_tracks),
            seed=0,
        )

    def _obs(self):
        self.s = self.rng.uniform(-1, 1, (self.num_envs, self.obs_dim))
        s1 = np.concatenate([self.s, np.ones((self.num_envs, 1))], axis=1)
        e1 = np.concatenate([self.emb, np.ones((len(self.emb), 1))], axis=1)
        self.mu = s1 @ self.w @ e1.T
        return self.s.astype(np.float32)

    def reset(self, seed=None):
        return self._obs(), {}

    def step(self, actions):
        rows = np.arange(self.num_envs)
        best, chosen = self.mu.max(axis=1), self.mu[rows, actions]
        reward = chosen + self.noise * self.rng.standard_normal(self.num_envs)
        self.regret.append(float((best - chosen).sum()))
        info = {"optimal_reward": best, "regret": best - chosen, "listened": reward > 0}
        done = np.ones(self.num_envs, dtype=bool)
        return self._obs(), reward, done, np.zeros_like(done), info


@pytest.mark.parametrize("key", LINEAR)
def test_acts_validly_and_never_repeats_in_a_session(key, env, context, rollout, session_tracks):
    agent = make_agent(key)
    agent.bind(context)
    assert agent.learns_online
    infos, actions = rollout(agent, env, 120, learn=True)
    for a in actions:
        assert a.shape == (env.num_envs,) and a.dtype == np.int64
        assert a.min() >= 0 and a.max() < context.n_tracks
    sessions = [s for slot in session_tracks(infos) for s in slot]
    assert max(len(s) for s in sessions) > 5
    assert all(len(s) == len(set(s)) for s in sessions)
    assert agent.steps == 120 * env.num_envs


def test_default_learn_loop_also_avoids_repeats(env, context):
    agent = make_agent("linucb")
    agent.bind(context)
    episodes = []
    agent.learn(env, 2000, callback=lambda *args: episodes.append(args))
    assert len(episodes) > 50
    steps, ret, _, length, listens = episodes[-1]
    assert steps <= 2000 + env.num_envs and 1 <= length <= 20 and ret == listens


def _fit(agent, context, rng, steps=6):
    """Feed ``steps`` random batches through act/update; returns the explicit design."""
    rows, rewards = [], []
    n = context.n_tracks
    for _ in range(steps):
        obs = rng.uniform(-1, 1, (16, context.obs_dim))
        actions = agent.act(obs, {})
        r = rng.random(16)
        s = agent.state_x(obs)
        rows.append(np.concatenate([agent.features(s, actions), np.eye(n)[actions]], axis=1))
        rewards.append(r)
        agent.update(obs, actions, r, obs, np.zeros(16, bool), {})
    return np.concatenate(rows), np.concatenate(rewards)


def _all_features(agent, s):
    """(B, n, D + n): the explicit hybrid features of every track in every slot."""
    n = agent.context.n_tracks
    every = np.arange(n)
    return np.stack(
        [
            np.concatenate([agent.features(np.repeat(s[b : b + 1], n, 0), every), np.eye(n)], 1)
            for b in range(len(s))
        ]
    )


def test_hybrid_posterior_equals_ridge_on_explicit_features(context):
    """Schur-complement posterior and Kronecker scoring = plain ridge on [z, one-hot]."""
    agent = make_agent("linucb", {"lam": 0.7, "refresh_every": 1})
    agent.bind(context)
    rng = np.random.default_rng(1)
    x, r = _fit(agent, context, rng)
    precision = 0.7 * np.eye(x.shape[1]) + x.T @ x
    weights = np.linalg.solve(precision, x.T @ r)
    assert np.allclose(agent.beta, weights[: agent.dim])
    assert np.allclose(agent.theta, weights[agent.dim :])
    s = agent.state_x(rng.uniform(-1, 1, (4, context.obs_dim)))
    xs = _all_features(agent, s)
    assert xs.shape == (4, context.n_tracks, (context.obs_dim + 17) * 10 + context.n_tracks)
    assert np.allclose(agent.mean_scores(s), xs @ weights)
    brute = np.sqrt(np.einsum("bid,de,bie->bi", xs, np.linalg.inv(precision), xs))
    assert np.allclose(agent.widths(s), brute)


def test_thompson_draws_have_the_posterior_covariance(context):
    agent = make_agent("lin_ts", {"v": 0.5, "refresh_every": 1, "session_features": False})
    agent.bind(context)
    rng = np.random.default_rng(2)
    x, _ = _fit(agent, context, rng, steps=8)
    precision = agent.lam * np.eye(x.shape[1]) + x.T @ x
    s = agent.state_x(rng.uniform(-1, 1, (1, context.obs_dim)))
    xs = _all_features(agent, s)[0][:6]  # the first six tracks
    expected = 0.25 * xs @ np.linalg.inv(precision) @ xs.T
    draws = []
    for _ in range(4000):
        eps = agent.rng.standard_normal((1, agent.dim))
        beta = agent.beta + agent.v * (eps @ agent._chol.T)[0]
        theta = (
            agent.theta
            - (beta - agent.beta) @ agent.proj.T
            + agent.v * agent.rng.standard_normal(context.n_tracks) * np.sqrt(agent.track_var)
        )
        draws.append(xs[:, : agent.dim] @ beta + theta[:6])
    empirical = np.cov(np.array(draws).T)
    assert np.allclose(empirical, expected, atol=0.1 * np.abs(expected).max())


def test_session_features_follow_the_outcomes(context):
    agent = make_agent("epsilon_greedy", {"epsilon": 0.0, "epsilon_final": 0.0})
    agent.bind(context)
    obs = np.zeros((2, context.obs_dim))
    first = agent.act(obs, {})
    agent.act(obs, {"listened": np.array([True, False])})
    d = agent.track_emb.shape[1]
    s = agent.state_x(obs)[:, context.obs_dim : context.obs_dim + 2 * d]
    assert np.allclose(s[0], np.concatenate([agent.track_emb[first[0]], np.zeros(d)]))
    assert np.allclose(s[1], np.concatenate([np.zeros(d), agent.track_emb[first[1]]]))
    agent.episode_end(np.array([True, False]))
    s = agent.state_x(obs)[:, context.obs_dim : context.obs_dim + 2 * d]
    assert not s[0].any() and s[1].any()


def test_session_features_start_from_the_warmup_plays(context):
    agent = make_agent("epsilon_greedy", {"epsilon": 0.0, "epsilon_final": 0.0})
    agent.bind(context)
    obs = np.zeros((2, context.obs_dim))
    warm = np.array([[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]])
    heard = np.array([[True, True, False, True, False], [False] * 5])
    info = {"warmup_tracks": warm, "warmup_listened": heard}
    agent.episode_end(np.ones(2, dtype=bool))
    actions = agent.act(obs, info)
    assert actions[0] not in warm[0] and actions[1] not in warm[1]  # warm-up is blocked
    d = agent.track_emb.shape[1]
    s = agent.state_x(obs)[:, context.obs_dim : context.obs_dim + 2 * d]
    emb = agent.track_emb
    assert np.allclose(s[0, :d], emb[[0, 1, 3]].sum(axis=0) / 5)
    assert np.allclose(s[0, d:], emb[[2, 4]].sum(axis=0) / 5)
    assert np.allclose(s[1, d:], emb[5:10].sum(axis=0) / 5) and not s[1, :d].any()
    agent.act(obs, {**info, "listened": np.array([True, True])})  # not a new session
    s = agent.state_x(obs)[:, context.obs_dim : context.obs_dim + 2 * d]
    assert np.allclose(s[0, :d], (emb[[0, 1, 3]].sum(axis=0) + emb[actions[0]]) / 6)


def test_recent_artists_are_avoided(env, context, rollout):
    agent = make_agent("linucb")
    agent.bind(context)
    infos, _ = rollout(agent, env, 80, learn=True)
    artist = context.track_artist
    recent = [[] for _ in range(env.num_envs)]
    for info in infos:
        for i, track in enumerate(info["track"]):
            assert artist[track] not in recent[i][-5:]
            recent[i] = [] if info["done"][i] else [*recent[i], artist[track]]


def test_update_must_follow_act_with_session_features(context):
    agent = make_agent("linucb")
    agent.bind(context)
    obs = np.zeros((2, context.obs_dim))
    with pytest.raises(ConfigError, match=r"must follow the act\(\)"):
        agent.update(obs, np.array([0, 1]), np.ones(2), obs, np.zeros(2, bool), {})


def test_linucb_regret_is_sublinear_on_a_linear_world():
    env = LinearRewardEnv()
    agent = make_agent("linucb", {"alpha": 0.5})
    agent.bind(env.context)
    agent.learn(env, 16 * 400)
    regret = np.array(env.regret)
    first, second = regret[:200].sum(), regret[200:].sum()
    assert second < 0.35 * first
    assert regret[-50:].mean() < 0.1 * regret[:50].mean()


def test_thompson_sampling_with_zero_scale_is_greedy(context):
    greedy = make_agent("epsilon_greedy", {"epsilon": 0.0, "epsilon_final": 0.0})
    ts = LinTSAgent(v=0.0)
    rng = np.random.default_rng(2)
    obs = rng.uniform(-1, 1, (16, context.obs_dim))
    rewards = rng.random(16)
    for agent in (greedy, ts):
        agent.bind(context)
        actions = agent.act(obs, {})
        agent.update(obs, actions, rewards, obs, np.ones(16, bool), {})
        agent.episode_end(np.ones(16, bool))
    assert np.array_equal(greedy.act(obs, {}), ts.act(obs, {}))


def test_epsilon_decays_linearly(context):
    agent = make_agent("epsilon_greedy", {"epsilon": 0.5, "epsilon_final": 0.1, "decay_steps": 100})
    agent.bind(context)
    assert agent.current_epsilon() == 0.5
    agent.steps = 50
    assert agent.current_epsilon() == pytest.approx(0.3)
    agent.steps = 1000
    assert agent.current_epsilon() == pytest.approx(0.1)


@pytest.mark.parametrize("key", LINEAR)
def test_save_load_round_trip_gives_identical_actions(key, env, context, rollout, tmp_path):
    agent = make_agent(key, {"refresh_every": 3})
    agent.bind(context)
    rollout(agent, env, 50, learn=True)
    agent.save(tmp_path / "agent.npz")
    twin = make_agent(key, {"refresh_every": 3})
    twin.bind(context)
    twin.load(tmp_path / "agent.npz")
    assert twin.steps == agent.steps
    agent.episode_end(np.ones(env.num_envs, dtype=bool))  # the twin has no session history
    obs = np.random.default_rng(3).uniform(-1, 1, (env.num_envs, context.obs_dim))
    for explore in (False, True, True):
        assert np.array_equal(agent.act(obs, {}, explore), twin.act(obs, {}, explore))


def test_load_rejects_a_state_from_another_world(context):
    agent = make_agent("linucb")
    agent.bind(context)
    state = agent.state()
    state["A"] = np.eye(7)
    with pytest.raises(ConfigError, match=r"saved A has shape \(7, 7\).*another world"):
        agent.set_state(state)


@pytest.mark.parametrize(
    ("key", "params", "match"),
    [
        ("linucb", {"alpha": -1}, r"`alpha` must be a float >= 0, got -1"),
        ("linucb", {"lam": 0}, r"`lam` must be a float > 0, got 0"),
        ("lin_ts", {"v": "big"}, r"`v` must be a float >= 0, got 'big'"),
        ("lin_ts", {"refresh_every": 0}, r"`refresh_every` must be an int >= 1, got 0"),
        ("epsilon_greedy", {"epsilon": 1.5}, r"`epsilon` must be a float in \[0, 1\], got 1.5"),
        ("epsilon_greedy", {"decay_steps": 2.5}, r"`decay_steps` must be an int >= 0, got 2.5"),
        ("epsilon_greedy", {"standardize": 1}, r"`standardize` must be a bool, got 1"),
    ],
)
def test_invalid_hyperparameters_are_rejected(key, params, match):
    with pytest.raises(ConfigError, match=match):
        make_agent(key, params)


class ReferenceSessionMeans:
    """The session means as the bandits computed them before ``SessionPlays`` (reference).

    Put before a bandit class in the bases: it replaces the shared code with the
    bandits' former private copy, kept verbatim, so that the refactor is held to it bit
    for bit.
    """

    def bind(self, context):
        super().bind(context)
        self._session = np.zeros((0, 2 * self.track_emb.shape[1] + 1))

    def state_x(self, obs):
        obs = np.asarray(obs, dtype=np.float64)
        parts = [obs]
        if self.session_features:
            session = self._reference_slots(len(obs))
            count = np.maximum(session[:, -1:], 1.0)
            parts.append(session[:, :-1] / count)
        parts.append(np.ones((len(obs), 1)))
        return np.concatenate(parts, axis=1)

    def _reference_slots(self, batch):
        if self._session.shape[0] != batch:
            self._session = np.zeros((batch, self._session.shape[1]))
        return self._session

    def _observe_outcomes(self, batch, info):
        self.history.blocked(batch)
        self._reference_slots(batch)
        fresh = np.flatnonzero(self.history.fresh)
        slots, tracks, listened = self.history.outcomes(info)
        if not self.session_features:
            return
        if len(fresh) and "warmup_tracks" in info and "warmup_listened" in info:
            warm = np.asarray(info["warmup_tracks"])[fresh]
            heard = np.asarray(info["warmup_listened"], dtype=bool)[fresh]
            valid = warm >= 0
            rows = np.repeat(fresh, warm.shape[1]).reshape(warm.shape)
            self._reference_add(rows[valid], warm[valid], heard[valid])
        self._reference_add(slots, tracks, listened)

    def _reference_add(self, slots, tracks, listened):
        session = self._session
        d = self.track_emb.shape[1]
        emb = self.track_emb[tracks]
        np.add.at(session, (slots[listened], slice(0, d)), emb[listened])
        np.add.at(session, (slots[~listened], slice(d, 2 * d)), emb[~listened])
        np.add.at(session, (slots, -1), 1.0)

    def episode_end(self, dones):
        self.history.end(dones)
        dones = np.asarray(dones, dtype=bool)
        self._reference_slots(len(dones))[dones] = 0.0


@pytest.mark.parametrize("key", LINEAR)
def test_shared_session_features_leave_the_bandits_bit_identical(key, env, context):
    """300 steps of 16 slots: the same actions and final state as the former private code."""
    agent = make_agent(key)
    reference = type("Reference", (ReferenceSessionMeans, type(agent)), {})()
    bandits = (agent, reference)
    obs, info = env.reset(seed=7)
    for bandit in bandits:
        bandit.bind(context)
        bandit.episode_end(np.ones(env.num_envs, dtype=bool))
    for step in range(300):
        acts, ref_acts = (bandit.act(obs, info) for bandit in bandits)
        assert np.array_equal(acts, ref_acts), step
        next_obs, rewards, terminated, truncated, info = env.step(acts)
        dones = terminated | truncated
        for bandit in bandits:
            bandit.update(obs, acts, rewards, next_obs, dones, info)
            bandit.episode_end(dones)
        obs = next_obs
    state, ref_state = agent.state(), reference.state()
    assert state.keys() == ref_state.keys()
    for name in state:
        assert np.array_equal(state[name], ref_state[name]), name
