"""Any project agent softened to a logging policy: exact propensities, specs, CLI, OPE."""

from __future__ import annotations

import numpy as np
import pytest

from agents import AvoidsRepeats
from experiments.logged import log_sessions
from experiments.ope_config import parse_ope_config
from experiments.ope_targets import replay_targets
from experiments.soft_policies import (
    DEFAULT_TRAIN_STEPS,
    SoftenedAgentPolicy,
    egreedy_probabilities,
    parse_logging_policy,
    parse_soft_spec,
    softmax_probabilities,
)
from musicrec_gym.cli import main
from musicrec_gym.envs.vector import MusicRecVectorEnv
from musicrec_gym.errors import ConfigError, DataFormatError
from musicrec_gym.logged_data import load_dataset
from musicrec_gym.logging_policies import PolicySpec, sample_actions

#: A LinUCB trained briefly (cheap, but its scores differ across tracks and states).
LINUCB = "softmax:linucb:0.05,train_steps=500"


def test_spec_round_trip_and_defaults():
    spec = parse_soft_spec("softmax:linucb:0.5")
    assert (spec.kind, spec.agent, spec.value) == ("softmax", "linucb", 0.5)
    assert spec.train_steps == DEFAULT_TRAIN_STEPS and spec.epsilon is None
    assert parse_soft_spec(str(spec)) == spec
    full = parse_soft_spec("egreedy:ppo:0.2,head=embedding,net_arch=[32, 32],train_steps=64")
    assert dict(full.params) == {"head": "embedding", "net_arch": [32, 32]}
    assert full.epsilon == 0.2 and parse_soft_spec(str(full)) == full
    assert str(full) == (
        "egreedy:ppo:0.2,head=embedding,net_arch=[32, 32],train_steps=64"
    )  # one line, options in a fixed order
    assert parse_soft_spec("egreedy:planner:0.1").train_steps == 0  # the planner does not learn
    assert parse_soft_spec("softmax:linucb:1,state=a.npz").train_steps == 0
    assert parse_logging_policy("oracle:0.2") == PolicySpec("oracle", 0.2)


@pytest.mark.parametrize(
    ("spec", "match"),
    [("softmax:linucbb:0.1", "Did you mean 'linucb'"),
     ("softmax:linucb:0", "temperature must be a number > 0"),
     ("softmax:linucb:-1", "temperature must be a number > 0"),
     ("softmax:linucb:nan", "temperature must be a number > 0"),
     ("egreedy:linucb:1.5", "in \\[0, 1\\]"),
     ("egreedy:linucb:-0.1", "in \\[0, 1\\]"),
     ("egreedy:linucb:x", "epsilon in \\[0, 1\\]"),
     ("softmx:linucb:0.1", "Did you mean 'softmax'"),
     ("softmax:linucb", "KIND:AGENT:VALUE"),
     ("softmax:linucb:0.1,alpah=1", "Did you mean 'alpha'"),
     ("softmax:linucb:0.1,alpha=-1", "alpha"),
     ("softmax:linucb:0.1,train_steps=-5", "train_steps"),
     ("softmax:linucb:0.1,state=a.npz,train_steps=10", "not both"),
     ("softmax:linucb:0.1,alpha", "key=value"),
     ("softmax:planner:0.5", "no scores"),
     ("egreedy:logging:0.1", "use the policy `world`"),
     ("softmax:slateq:0.1", "catalog setting only")],
)  # fmt: skip
def test_bad_specs_are_named(spec, match):
    with pytest.raises(ConfigError, match=match):
        parse_logging_policy(spec)


def test_probabilities_sum_to_one_over_the_allowed_tracks():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(5, 40))
    blocked = rng.random((5, 40)) < 0.3
    for probs in (
        softmax_probabilities(scores, blocked, 0.3),
        egreedy_probabilities(np.where(blocked, -np.inf, scores).argmax(1), blocked, 0.2),
    ):
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=0, atol=1e-12)
        assert not probs[blocked].any() and (probs[~blocked] > 0).all()
    cold = softmax_probabilities(scores, blocked, 1e-6)  # τ → 0: the greedy track
    np.testing.assert_allclose(cold.max(axis=1), 1.0)
    with pytest.raises(ConfigError, match="temperature"):
        softmax_probabilities(scores, blocked, 0.0)
    with pytest.raises(ConfigError, match="every track blocked"):
        softmax_probabilities(scores, np.ones_like(blocked), 1.0)


@pytest.mark.parametrize("spec", [LINUCB, "egreedy:linucb:0.3,train_steps=500",
                                  "softmax:popularity:0.5", "egreedy:planner:0.4"])  # fmt: skip
def test_propensities_match_the_draws_from_one_state(spec):
    """Every slot in the same state: one distribution, and the logger's draws follow it."""
    n_slots = 8000
    env = MusicRecVectorEnv(n_slots)
    obs, info = env.reset(seed=0)
    rng = np.random.default_rng(5)
    policy = SoftenedAgentPolicy(parse_soft_spec(spec))
    policy.start(env)
    policy.episode_end(np.ones(n_slots, dtype=bool))
    for _ in range(2):  # two steps in: the policy's history blocks its plays
        probs = policy.probabilities(obs, info)
        actions = sample_actions(probs, rng.random(n_slots))
        policy.played(actions)
        obs, _, term, trunc, info = env.step(actions)
        policy.episode_end(term | trunc)
    slot = int(np.flatnonzero(~(term | trunc))[0])
    sim = env.core.sim
    sim.int_state[:] = sim.int_state[slot].copy()
    sim.float_state[:] = sim.float_state[slot].copy()
    if hasattr(policy.agent, "history"):
        h = policy.agent.history
        for name in ("mask", "recent", "last", "pending", "fresh"):
            getattr(h, name)[:] = getattr(h, name)[slot].copy()
    if hasattr(policy.agent, "session"):
        s = policy.agent.session
        for name in vars(s):
            value = getattr(s, name)
            if isinstance(value, np.ndarray) and value.shape[:1] == (n_slots,):
                value[:] = value[slot].copy()
    same_obs = np.repeat(obs[slot : slot + 1], n_slots, axis=0)
    same_info = {
        k: np.repeat(np.asarray(v)[slot : slot + 1], n_slots, axis=0)
        if np.ndim(v) and len(v) == n_slots else v
        for k, v in info.items() if not k.startswith("_")
    }  # fmt: skip
    probs = policy.probabilities(same_obs, same_info)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(probs, np.broadcast_to(probs[0], probs.shape), atol=1e-12)
    p = probs[0]
    if isinstance(policy.agent, AvoidsRepeats):  # the tracks this session played: blocked
        assert (p == 0).sum() >= 2
    else:  # the planner does not avoid repeats: ε-greedy over the whole catalog
        assert (p > 0).all()
    draws = np.stack([np.random.default_rng([7, e]).random(1) for e in range(n_slots)])[:, 0]
    actions = sample_actions(probs, draws)
    freq = np.bincount(actions, minlength=len(p)) / n_slots
    assert not freq[p == 0].any()
    sigma = np.sqrt(p * (1 - p) / n_slots)
    assert np.all(np.abs(freq - p) <= 4.5 * sigma + 1.0 / n_slots)


def test_logging_is_deterministic_and_replays_with_its_propensities():
    kwargs = {"policy": LINUCB, "sessions": 30, "seed": 2, "progress": False, "ref_sessions": 0}
    a = log_sessions(num_envs=16, **kwargs)
    again = log_sessions(num_envs=16, **kwargs)
    b = log_sessions(num_envs=7, **kwargs)
    for key, value in a.arrays().items():
        np.testing.assert_array_equal(value, again.arrays()[key], err_msg=key)
        if key == "pscore":  # the scores' batch products may round apart (1e-15)
            np.testing.assert_allclose(value, b.pscore, rtol=1e-12, atol=0)
        else:  # the same sessions and actions whatever num_envs
            np.testing.assert_array_equal(value, b.arrays()[key], err_msg=key)
    assert a.meta["policy"] == LINUCB
    assert a.pscore.min() > 0 and a.pscore.max() <= 1
    # the OPE replay rebuilds the logger from meta["policy"] and checks every pscore
    (replay,) = replay_targets(a, [LINUCB])
    np.testing.assert_allclose(replay.dist.prob(a.action), a.pscore, rtol=1e-6)
    np.testing.assert_allclose(replay.dist.mean_of(np.ones((a.n_actions, 1)))[:, 0], 1.0)


def test_an_egreedy_agent_target_replays_sparsely():
    data = log_sessions(policy="uniform", sessions=20, num_envs=8, progress=False, ref_sessions=0)
    spec = "egreedy:linucb:0.2,train_steps=500"
    (replay,) = replay_targets(data, [spec])
    dist = replay.dist
    np.testing.assert_allclose(dist.mean_of(np.ones((data.n_actions, 1)))[:, 0], 1.0)
    assert len(dist.vals) < 30 * dist.n  # greedy track plus blocked tracks per row, not all
    high = dist.prob(data.action) > 0.5
    assert high.sum() < len(high)  # the uniform logger rarely plays the greedy track


def test_ope_config_takes_softened_targets():
    text = (
        f"name: t\nlog: {{policy: world, sessions: 10}}\ntargets: ['{LINUCB}', world]\nseeds: [0]\n"
    )
    config = parse_ope_config(text)
    assert str(config.targets[0]) == LINUCB
    with pytest.raises(ConfigError, match="temperature"):
        parse_ope_config(text.replace("0.05", "0"))


def test_cli_logs_a_softened_agent(tmp_path, capsys):
    out = tmp_path / "soft"
    argv = ["log", "--policy", "softmax:popularity:0.5", "--sessions", "10", "--num-envs", "4"]
    assert main([*argv, "--ref-sessions", "0", "--quiet", "--out", str(out)]) == 0
    data = load_dataset(out)
    assert data.meta["policy"] == "softmax:popularity:0.5" and data.n_episodes == 10
    bad = ["log", "--policy", "softmax:popularity:0", "--quiet", "--out", str(tmp_path / "b")]
    assert main(bad) == 2
    assert "temperature" in capsys.readouterr().err
    assert main([*bad[:2], "softmax:popularity:1", "--epsilon", "0.1", *bad[3:]]) == 2
    assert not (tmp_path / "b").exists()


def test_a_saved_agent_logs_like_the_one_trained_on_the_fly(tmp_path):
    """``state=FILE`` loads what ``save`` wrote: the same scores, the same dataset."""
    from experiments.soft_policies import build_agent

    env = MusicRecVectorEnv(4)
    agent = build_agent(parse_soft_spec(LINUCB), env)
    agent.save(tmp_path / "linucb.npz")
    kwargs = {"sessions": 12, "seed": 1, "num_envs": 4, "progress": False, "ref_sessions": 0}
    trained = log_sessions(policy=LINUCB, **kwargs)
    loaded_spec = f"softmax:linucb:0.05,state={tmp_path / 'linucb.npz'}"
    loaded = log_sessions(policy=loaded_spec, **kwargs)
    assert loaded.meta["policy"] == loaded_spec
    np.testing.assert_array_equal(loaded.action, trained.action)
    np.testing.assert_allclose(loaded.pscore, trained.pscore, rtol=1e-12)
    with pytest.raises(DataFormatError, match="not found"):
        log_sessions(policy=f"softmax:linucb:0.05,state={tmp_path / 'none.npz'}", **kwargs)
