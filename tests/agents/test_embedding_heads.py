"""The embedding output head of the SB3 agents (``params: {head: embedding}``)."""

import numpy as np
import pytest
import torch as th
from torch import nn
from torch.distributions import Categorical

from agents import AgentContext, make_agent
from agents.embedding_heads import (
    EmbeddingHead,
    FusedCategorical,
    GumbelCategorical,
    TakenLogProb,
    catalog_features,
)
from musicrec_gym.envs.vector import MusicRecVectorEnv
from musicrec_gym.errors import ConfigError, DataFormatError

FAST = {
    "ppo": {"n_steps": 16, "batch_size": 64, "n_epochs": 1, "net_arch": [32]},
    "dqn": {"learning_starts": 64, "batch_size": 32, "buffer_size": 1000, "net_arch": [32]},
}
EMBEDDING = {key: {**params, "head": "embedding"} for key, params in FAST.items()}


def _tiny_catalog():
    rng = np.random.default_rng(3)
    return rng.normal(size=(5, 3)), np.array([0.0, 1.0, 10.0, 100.0, 3.0])


def _head(agent):
    """The embedding head(s) of an agent's policy."""
    if agent.name == "ppo":
        return [agent.model.policy.action_net]
    return [agent.model.policy.q_net.head, agent.model.policy.q_net_target.head]


def test_catalog_features_are_standardised_embeddings_popularity_and_a_constant():
    embeddings, plays = _tiny_catalog()
    features = catalog_features(embeddings, plays)
    raw = np.column_stack([embeddings, np.log1p(plays)])
    expected = (raw - raw.mean(0)) / raw.std(0)
    assert features.shape == (5, 5) and features.dtype == np.float32
    np.testing.assert_allclose(features[:, :4], expected, rtol=1e-5, atol=1e-6)
    assert np.all(features[:, 4] == 1.0)


@pytest.mark.parametrize(
    ("embeddings", "plays", "match"),
    [
        (np.zeros((3, 2)), np.zeros(4), "shapes"),
        (np.zeros(3), np.zeros(3), "shapes"),
        (np.full((3, 2), np.nan), np.zeros(3), "finite"),
        (np.zeros((3, 2)), np.array([1.0, -1.0, 0.0]), ">= 0"),
    ],
)
def test_catalog_features_rejects_bad_input(embeddings, plays, match):
    with pytest.raises(ValueError, match=match):
        catalog_features(embeddings, plays)


def test_head_score_of_track_i_is_the_formula():
    features = catalog_features(*_tiny_catalog())
    head = EmbeddingHead(latent_dim=4, n_tracks=5, feature_dim=5)
    head.set_features(features)
    with th.no_grad():
        head.proj.weight.normal_()
        head.track_bias.normal_()
    latent = th.randn(2, 4)
    scores = head(latent).detach().numpy()
    w = head.proj.weight.detach().numpy().T  # (latent_dim, feature_dim): W of the docstring
    b = head.track_bias.detach().numpy()
    h = latent.numpy()
    for row in range(2):
        for i in range(5):
            by_hand = float(h[row] @ (w @ features[i]) + b[i])
            assert scores[row, i] == pytest.approx(by_hand, rel=1e-5, abs=1e-5)


def test_gradient_reaches_the_projection_and_bias_not_the_features():
    features = catalog_features(*_tiny_catalog())
    head = EmbeddingHead(latent_dim=4, n_tracks=5, feature_dim=5)
    head.set_features(features)
    assert {name for name, _ in head.named_parameters()} == {"proj.weight", "track_bias"}
    assert "features" in head.state_dict()  # a buffer: saved with the weights
    optimizer = th.optim.SGD(head.parameters(), lr=0.1)
    (head(th.randn(3, 4)) ** 2).sum().backward()
    assert head.proj.weight.grad.abs().sum() > 0
    assert head.track_bias.grad.abs().sum() > 0
    assert not head.features.requires_grad and head.features.grad is None
    optimizer.step()
    assert np.array_equal(head.features.numpy(), features)


def test_set_features_checks_the_shape():
    head = EmbeddingHead(latent_dim=4, n_tracks=5, feature_dim=5)
    with pytest.raises(ValueError, match=r"shape \(5, 5\)"):
        head.set_features(np.zeros((5, 4)))


@pytest.mark.parametrize("key", ["ppo", "dqn"])
def test_the_policy_scores_through_the_head(key, context):
    agent = make_agent(key, EMBEDDING[key])
    agent.bind(context)
    obs = np.random.default_rng(0).uniform(-1, 1, (6, context.obs_dim)).astype(np.float32)
    agent.act(obs, {}, explore=False)
    policy = agent.model.policy
    expected = catalog_features(context.track_features, context.track_plays)
    for head in _head(agent):
        assert isinstance(head, EmbeddingHead)
        assert np.array_equal(head.features.numpy(), expected)
    # the optimizer trains the head (and no leftover linear head)
    trained = policy.parameters() if key == "ppo" else policy.q_net.parameters()
    in_optimizer = {id(p) for group in policy.optimizer.param_groups for p in group["params"]}
    assert in_optimizer == {id(p) for p in trained}
    assert {id(p) for p in _head(agent)[0].parameters()} <= in_optimizer
    obs_t = th.as_tensor(obs)
    with th.no_grad():
        if key == "ppo":
            latent = policy.mlp_extractor.forward_actor(policy.extract_features(obs_t))
            scores = policy.get_distribution(obs_t).distribution.logits  # log-softmax
            expected_scores = th.log_softmax(_head(agent)[0](latent), dim=1)
        else:
            latent = policy.q_net.q_net[:-1](obs_t)
            scores = policy.q_net(obs_t)
            expected_scores = _head(agent)[0](latent)
        assert th.allclose(scores, expected_scores, atol=1e-6)


@pytest.mark.parametrize("key", ["ppo", "dqn"])
def test_the_default_head_is_linear(key, context):
    agent = make_agent(key, FAST[key])
    agent.bind(context)
    agent.act(np.zeros((2, context.obs_dim), dtype=np.float32), {}, explore=False)
    assert agent.head == "linear"
    last = agent.model.policy.action_net if key == "ppo" else agent.model.q_net.q_net[-1]
    assert isinstance(last, nn.Linear) and last.out_features == context.n_tracks


@pytest.mark.parametrize("key", ["ppo", "dqn"])
def test_learns_on_the_built_in_world_and_round_trips(key, tmp_path):
    env = MusicRecVectorEnv(num_envs=16)  # the built-in world: 1,000 tracks
    context = AgentContext.from_env(env, seed=0)
    agent = make_agent(key, EMBEDDING[key])
    agent.bind(context)
    agent.act(np.zeros((1, context.obs_dim), dtype=np.float32), {}, explore=False)
    head = _head(agent)[0]
    before = {name: value.clone() for name, value in head.state_dict().items()}
    episodes = []
    agent.learn(env, 400, callback=lambda *args: episodes.append(args))
    assert len(episodes) >= 5
    head = _head(agent)[0]  # learn builds the model anew on the real env
    after = head.state_dict()
    assert not th.equal(before["proj.weight"], after["proj.weight"])
    assert not th.equal(before["track_bias"], after["track_bias"])
    assert th.equal(before["features"], after["features"])
    if key == "dqn":  # the target network is a copy of the online one, features included
        target = agent.model.policy.q_net_target.head
        assert th.equal(target.features, after["features"])

    agent.save(tmp_path / "model.zip")
    obs = np.random.default_rng(0).uniform(-1, 1, (32, context.obs_dim)).astype(np.float32)
    greedy = agent.act(obs, {}, explore=False)
    for trust_file in (False, True):
        twin = make_agent(key, EMBEDDING[key])
        twin.bind(context)
        twin.load(tmp_path / "model.zip", trust_file=trust_file)
        assert np.array_equal(twin.act(obs, {}, explore=False), greedy)
        for twin_head, head in zip(_head(twin), _head(agent), strict=True):
            assert th.equal(twin_head.features, head.features)
    clone = make_agent(key, EMBEDDING[key])
    clone.bind(context)
    clone.set_state(agent.state())
    assert np.array_equal(clone.act(obs, {}, explore=False), greedy)


@pytest.mark.parametrize("key", ["ppo", "dqn"])
def test_a_model_of_the_other_head_is_refused(key, context, tmp_path):
    linear = make_agent(key, FAST[key])
    linear.bind(context)
    linear.save(tmp_path / "linear.zip")
    embedding = make_agent(key, EMBEDDING[key])
    embedding.bind(context)
    embedding.save(tmp_path / "embedding.zip")
    with pytest.raises(DataFormatError, match="fits this agent"):
        embedding.load(tmp_path / "linear.zip")
    with pytest.raises(DataFormatError, match="fits this agent"):
        linear.load(tmp_path / "embedding.zip")


@pytest.mark.parametrize("key", ["ppo", "dqn"])
@pytest.mark.parametrize("head", ["mlp", "Embedding", 1, None])
def test_an_unknown_head_is_a_config_error_naming_the_param(key, head):
    allowed = r"'linear', 'embedding'(, 'clustered')?"  # PPO offers the clustered head too
    with pytest.raises(ConfigError, match=rf"`head` must be one of {allowed}, got"):
        make_agent(key, {"head": head})


def test_gumbel_sampling_draws_from_the_softmax():
    """The PPO head's sampler: frequencies match softmax(logits); -inf logits never drawn."""
    th.manual_seed(0)
    logits = th.tensor([[2.0, 1.0, 0.0, -1.0, float("-inf")]]).repeat(40_000, 1)
    dist = GumbelCategorical(5).proba_distribution(logits)
    draws = dist.sample()
    assert draws.shape == (40_000,)
    freq = th.bincount(draws, minlength=5).double() / len(draws)
    probs = th.softmax(logits[0].double(), dim=0)
    assert th.allclose(freq, probs, atol=0.01) and freq[4] == 0
    # log-probabilities and entropy stay SB3's, -inf logits included
    assert th.allclose(dist.log_prob(th.tensor([0])), th.log_softmax(logits[0], 0)[0])
    assert th.allclose(dist.entropy(), Categorical(logits=logits[:1]).entropy())
    assert dist.mode()[0] == 0
    assert th.allclose(dist.distribution.probs[0], probs.float())


def test_taken_log_prob_matches_categorical_values_and_gradients():
    """The fused log-probability and entropy: PyTorch's Categorical's values and gradients.

    Masked (-inf) logits get a zero gradient. The reference puts them at -1e4 (probability
    exactly 0 in float64): Categorical's entropy floors -inf at float64's minimum, and its
    gradient overflows to NaN with these weights.
    """
    gen = th.Generator().manual_seed(0)
    logits = th.randn(9, 13, generator=gen, dtype=th.float64) * 3
    logits[0, 4] = logits[2, :5] = float("-inf")  # masked tracks
    actions = th.randint(5, 13, (9,), generator=gen)
    w_lp, w_h = (
        th.randn(9, generator=gen, dtype=th.float64),
        th.randn(9, generator=gen, dtype=th.float64),
    )
    grads = []
    for fused in (True, False):
        x = logits.clone().requires_grad_(True)
        if fused:
            log_prob, entropy = TakenLogProb.apply(x, actions)
        else:
            cat = Categorical(logits=th.where(x.isinf(), -1e4, x))
            log_prob, entropy = cat.log_prob(actions), cat.entropy()
        values = (log_prob.detach(), entropy.detach())
        ((log_prob * w_lp).sum() + (entropy * w_h).sum()).backward()
        grads.append((values, x.grad))
    (fused_values, fused_grad), (ref_values, ref_grad) = grads
    assert all(th.allclose(a, b, atol=1e-12) for a, b in zip(fused_values, ref_values, strict=True))
    assert th.allclose(fused_grad, ref_grad, atol=1e-12)
    assert (fused_grad[0, 4] == 0) and (fused_grad[2, :5] == 0).all()
    # one of the two outputs used at a time
    x = logits[3:].clone().requires_grad_(True)
    assert th.autograd.gradcheck(lambda t: TakenLogProb.apply(t, actions[3:])[0].sum(), (x,))
    assert th.autograd.gradcheck(lambda t: TakenLogProb.apply(t, actions[3:])[1].sum(), (x,))


def test_the_ppo_embedding_policy_uses_the_fused_softmax(context):
    agent = make_agent("ppo", EMBEDDING["ppo"])
    agent.bind(context)
    obs = np.random.default_rng(0).uniform(-1, 1, (6, context.obs_dim)).astype(np.float32)
    agent.act(obs, {}, explore=True)
    dist = agent.model.policy.action_dist
    assert isinstance(dist, FusedCategorical) and dist._head is agent.model.policy.action_net
