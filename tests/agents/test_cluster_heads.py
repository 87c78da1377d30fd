"""The two-level (cluster, then track) PPO head (``params: {head: clustered}``)."""

import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from torch.distributions import Categorical

from agents import AgentContext, make_agent
from agents.cluster_heads import (
    ClusteredActorCriticPolicy,
    ClusteredCategorical,
    ClusteredHead,
    default_clusters,
    track_clusters,
)
from musicrec_gym.envs.vector import MusicRecVectorEnv
from musicrec_gym.errors import ConfigError

FAST = {"n_steps": 16, "batch_size": 64, "n_epochs": 1, "net_arch": [32]}
CLUSTERED = {**FAST, "head": "clustered"}
N, K, LATENT = 103, 5, 8


def _head(n_clusters=8, seed=0):
    """A head over N random tracks with random (non-zero) parameters."""
    features = np.random.default_rng(seed).normal(size=(N, K)).astype(np.float32)
    head = ClusteredHead(LATENT, N, K, n_clusters)
    head.set_features(features)
    th.manual_seed(seed)
    for parameter in head.parameters():
        th.nn.init.normal_(parameter)
    return head, features


def _allowed(rows, blocked_cluster_of=None, head=None, seed=0):
    """(rows, N) float mask, 1 = allowed; optionally one whole cluster blocked in row 0."""
    allowed = (th.rand(rows, N, generator=th.Generator().manual_seed(seed)) > 0.3).float()
    if blocked_cluster_of is not None:
        members = head.slot_track[blocked_cluster_of][head.slot_floor[blocked_cluster_of] == 0]
        allowed[0, members] = 0.0
    return allowed


def test_clusters_are_balanced_and_hold_every_track_once():
    features = np.random.default_rng(1).normal(size=(N, K))
    slots = track_clusters(features, 8)
    assert slots.shape == (8, 13)  # ceil(103 / 8)
    used = slots[slots >= 0]
    assert sorted(used.tolist()) == list(range(N))
    assert sorted((slots >= 0).sum(axis=1).tolist()) == [12] + [13] * 7
    assert np.array_equal(track_clusters(features, 8), slots)  # deterministic


def test_clusters_group_similar_tracks():
    """Two well-separated groups of tracks, two clusters: one group each."""
    rng = np.random.default_rng(2)
    features = np.vstack([rng.normal(-5, 1, (20, 3)), rng.normal(5, 1, (20, 3))])
    features[:, 1] *= 0.1  # the split must pick a spread column, not a narrow one
    groups = [set(np.where(features[:, 0] < 0)[0]), set(np.where(features[:, 0] > 0)[0])]
    order = rng.permutation(40)
    slots = track_clusters(features[order], 2)
    found = [{int(order[i]) for i in row if i >= 0} for row in slots]
    assert sorted(map(sorted, found)) == sorted(map(sorted, groups))


@pytest.mark.parametrize(
    ("features", "n_clusters", "match"),
    [
        (np.zeros((4, 2)), 5, r"`n_clusters` must be in \[1, 4\]"),
        (np.zeros((4, 2)), 0, r"`n_clusters` must be in \[1, 4\]"),
        (np.zeros(4), 2, "need finite"),
        (np.array([[0.0, np.nan]]), 1, "need finite"),
    ],
)
def test_track_clusters_rejects_bad_input(features, n_clusters, match):
    with pytest.raises(ValueError, match=match):
        track_clusters(features, n_clusters)


def test_default_clusters_is_the_power_of_two_near_the_square_root():
    assert [default_clusters(n) for n in (1, 3, 10, 1000, 100_000)] == [1, 2, 4, 32, 256]
    with pytest.raises(ValueError, match="n_tracks"):
        default_clusters(0)


def test_set_features_checks_the_shape():
    head = ClusteredHead(LATENT, N, K, 8)
    with pytest.raises(ValueError, match=r"must have shape \(103, 5\)"):
        head.set_features(np.zeros((N, K + 1)))


@pytest.mark.parametrize("masked", [False, True])
def test_the_distribution_is_exact_and_respects_the_mask(masked):
    head, _ = _head()
    latent = th.randn(6, LATENT)
    allowed = _allowed(6, blocked_cluster_of=3, head=head) if masked else None
    dist = ClusteredCategorical(N).proba_distribution(head, latent, allowed)
    full = dist.full_log_probs()
    assert th.allclose(full.exp().sum(dim=1), th.ones(6), atol=1e-5)
    if masked:
        assert full.exp()[allowed < 0.5].max() == 0  # the blocked cluster too
        assert dist.cluster_log_probs[0, 3].exp() == 0
    # the formula: pi(i) = softmax(u)[c(i)] * softmax_{c(i)}(v)[i]
    u = head.cluster_proj(latent) @ head.cluster_features.T + head.cluster_bias
    track = 17
    c, s = int(head.track_cluster[track]), int(head.track_slot[track])
    members = head.slot_track[c][head.slot_floor[c] == 0]
    v = head.track_proj(latent) @ head.slot_features[c].T + head.track_bias[c]
    v = v[:, head.slot_floor[c] == 0]
    if masked:
        u = th.where(allowed @ head.membership > 0.5, u, -th.inf)
        v = th.where(allowed[:, members] > 0.5, v, -th.inf)
    expected = th.log_softmax(u, 1)[:, c] + th.log_softmax(v, 1)[:, list(members).index(track)]
    rows = th.isfinite(expected)  # else the track is blocked (its cluster too: NaN)
    assert rows.sum() >= 4
    assert th.allclose(full[rows, track], expected[rows], atol=1e-5)
    assert (full[~rows, track].exp() == 0).all()
    assert s == int((head.slot_track[c] == track).nonzero())
    # the taken log-probability and the exact entropy agree with the full distribution
    actions = dist.sample()
    log_prob, _ = dist.taken(actions)
    assert th.allclose(log_prob, full.gather(1, actions[:, None]).squeeze(1), atol=1e-5)
    categorical = Categorical(logits=full)
    assert th.allclose(dist.entropy(), categorical.entropy(), atol=1e-4)
    assert th.equal(dist.mode(), full.argmax(dim=1))


def test_samples_follow_the_distribution_and_the_entropy_estimate_is_unbiased():
    head, _ = _head()
    th.manual_seed(0)
    rows = 40_000
    allowed = _allowed(1, blocked_cluster_of=2, head=head).expand(rows, -1)
    dist = ClusteredCategorical(N).proba_distribution(
        head, th.randn(1, LATENT).expand(rows, -1), allowed
    )
    actions, log_prob = dist.sample_with_log_prob()
    assert (allowed[0, actions] == 1).all()
    freq = np.bincount(actions.numpy(), minlength=N) / rows
    p = dist.full_log_probs()[0].detach().exp().numpy()
    assert np.abs(freq - p).max() < 4 * np.sqrt(p.max() / rows)
    assert th.allclose(log_prob, dist.log_prob(actions))
    estimate = dist.taken(actions)[1].detach()
    exact = float(dist.entropy()[0].detach())
    assert abs(float(estimate.mean()) - exact) < 4 * float(estimate.std()) / np.sqrt(rows)


def test_gradients_of_the_taken_log_prob_match_the_full_distribution():
    head, _ = _head()
    latent = th.randn(5, LATENT, requires_grad=True)
    allowed = _allowed(5, blocked_cluster_of=1, head=head)
    actions = th.tensor([0, 17, 50, 99, 102])
    actions = th.where(allowed[th.arange(5), actions] > 0, actions, allowed.argmax(dim=1))
    dist = ClusteredCategorical(N).proba_distribution(head, latent, allowed)
    fast = th.autograd.grad(dist.log_prob(actions).sum(), [latent, *head.parameters()])
    dist = ClusteredCategorical(N).proba_distribution(head, latent, allowed)
    full = dist.full_log_probs().gather(1, actions[:, None]).sum()
    slow = th.autograd.grad(full, [latent, *head.parameters()])
    for a, b in zip(fast, slow, strict=True):
        assert th.isfinite(a).all()
        assert th.allclose(a, b, atol=1e-5)


def test_the_policy_evaluates_what_it_sampled():
    obs_space = spaces.Box(-1, 1, (9 + N,), np.float32)
    policy = ClusteredActorCriticPolicy(
        obs_space, spaces.Discrete(N), lambda _: 1e-3, feature_dim=K, n_clusters=8, mask_dim=N
    )
    policy.set_track_features(np.random.default_rng(0).normal(size=(N, K)))
    obs = th.zeros(32, 9 + N)
    obs[:, :9] = th.randn(32, 9)
    obs[:, 9:] = _allowed(32)
    with th.no_grad():
        actions, values, log_prob = policy(obs)
        assert (obs[th.arange(32), 9 + actions] == 1).all()
        again_values, again_log_prob, entropy = policy.evaluate_actions(obs, actions)
        assert th.allclose(again_log_prob, log_prob, atol=1e-6)
        assert th.equal(again_values, values)
        assert th.isfinite(entropy).all()
        greedy = policy.predict(obs.numpy(), deterministic=True)[0]
        assert np.array_equal(greedy, policy.get_distribution(obs).mode().numpy())


def test_ppo_learns_with_the_clustered_head_and_round_trips(tmp_path):
    env = MusicRecVectorEnv(num_envs=16)  # the built-in world: 1,000 tracks
    context = AgentContext.from_env(env, seed=0)
    params = {**CLUSTERED, "session_features": True, "train_mask": True}
    agent = make_agent("ppo", params)
    agent.bind(context)
    episodes = []
    agent.learn(env, 400, callback=lambda *args: episodes.append(args))
    assert len(episodes) >= 5
    head = agent.model.policy.action_net
    assert isinstance(head, ClusteredHead) and head.n_clusters == 32
    assert float(head.track_bias.detach().abs().sum()) > 0  # trained
    agent.save(tmp_path / "model.zip")
    obs, info = env.reset(seed=1)
    agent.episode_end(np.ones(env.num_envs, dtype=bool))
    greedy = agent.act(obs, info, explore=False)
    for trust_file in (False, True):
        twin = make_agent("ppo", params)
        twin.bind(context)
        twin.load(tmp_path / "model.zip", trust_file=trust_file)
        twin.episode_end(np.ones(env.num_envs, dtype=bool))
        assert np.array_equal(twin.act(obs, info, explore=False), greedy)
        assert th.equal(twin.model.policy.action_net.slot_track, head.slot_track)


@pytest.mark.parametrize("key", ["dqn", "recurrent_ppo"])
def test_only_ppo_offers_the_clustered_head(key):
    with pytest.raises(ConfigError, match=r"`head` must be one of 'linear', 'embedding', got"):
        make_agent(key, {"head": "clustered"})


def test_train_mask_needs_a_scoring_head():
    with pytest.raises(ConfigError, match="needs `head: embedding` \\(or `clustered`\\)"):
        make_agent("ppo", {"train_mask": True, "session_features": True})


def test_n_clusters_is_checked():
    with pytest.raises(ConfigError, match="`n_clusters` needs `head: clustered`"):
        make_agent("ppo", {"n_clusters": 8})
    with pytest.raises(ConfigError, match="`n_clusters`"):
        make_agent("ppo", {"head": "clustered", "n_clusters": -1})


def test_n_clusters_above_the_catalog_is_a_config_error(context):
    agent = make_agent("ppo", {**CLUSTERED, "n_clusters": context.n_tracks + 1})
    agent.bind(context)
    with pytest.raises(ConfigError, match=rf"`n_clusters` must be <= {context.n_tracks}"):
        agent.act(np.zeros((1, context.obs_dim), dtype=np.float32), {}, explore=False)


def test_ppo_with_the_clustered_head_acts_on_a_tiny_world(context):
    agent = make_agent("ppo", {**CLUSTERED, "n_clusters": 3})
    agent.bind(context)
    obs = np.random.default_rng(0).uniform(-1, 1, (16, context.obs_dim)).astype(np.float32)
    actions = agent.act(obs, {}, explore=True)
    assert actions.shape == (16,) and (actions >= 0).all() and (actions < context.n_tracks).all()
    assert agent.model.policy.action_net.n_clusters == 3
