"""Off-policy estimators (experiments.ope*): hand-computed cases, bad input, configs, the CLI."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.ope import (
    ESTIMATORS,
    TargetDistribution,
    check_logged,
    direct_method,
    doubly_robust,
    estimate,
    ips,
    pdis,
    ratio_estimate,
    sequential_dr,
    snips,
    weighted_dr,
    wpdis,
)
from experiments.ope_config import parse_ope_config
from experiments.ope_models import SKIP_WINDOW, fit_models, history_features, logger_features
from musicrec_gym.errors import ConfigError, DataFormatError

# Two episodes: episode 0 has two steps, episode 1 one.
#   w = target_prob / pscore = [1/0.5, 0.5/0.25, 0.25/0.5] = [2, 2, 0.5]
#   cumulative ρ: episode 0 [2, 4], episode 1 [0.5]
EP = np.array([0, 0, 1])
R = np.array([1.0, 0.5, 1.0])
PS = np.array([0.5, 0.25, 0.5])
TP = np.array([1.0, 0.5, 0.25])
R_LOGGED = np.array([0.4, 0.1, 0.6])  # model at the logged actions
R_TARGET = np.array([0.5, 0.5, 0.2])  # model's mean under the target
KW = {"reps": 200, "seed": 0}


def test_hand_computed_per_decision():
    # IPS: (2*1 + 2*0.5 + 0.5*1) / 3 = 3.5 / 3
    assert ips(EP, R, PS, TP, **KW).value == pytest.approx(3.5 / 3)
    # SNIPS: 3.5 / (2 + 2 + 0.5)
    assert snips(EP, R, PS, TP, **KW).value == pytest.approx(3.5 / 4.5)
    # DM: (0.5 + 0.5 + 0.2) / 3
    assert direct_method(EP, R, PS, TP, R_TARGET, **KW).value == pytest.approx(0.4)
    # DR: [0.5 + 2*(1-0.4), 0.5 + 2*(0.5-0.1), 0.2 + 0.5*(1-0.6)] = [1.7, 1.3, 0.4]
    dr = doubly_robust(EP, R, PS, TP, R_LOGGED, R_TARGET, **KW)
    assert dr.value == pytest.approx(3.4 / 3)


def test_hand_computed_session_level():
    # PDIS: episode 0: 2*1 + 4*0.5 = 4; episode 1: 0.5*1 = 0.5; mean 2.25
    assert pdis(EP, R, PS, TP, **KW).value == pytest.approx(2.25)
    # WPDIS: t=0 (2*1 + 0.5*1) / (2 + 0.5) = 1; t=1 (4*0.5 + 0) / (4 + 0.5, episode 1's
    # ratio frozen) = 2 / 4.5
    assert wpdis(EP, R, PS, TP, **KW).value == pytest.approx(1 + 2 / 4.5)
    # Sequential DR, Q̂(s,a) = R_LOGGED, V̂(s) = R_TARGET:
    #   episode 0: t=0 2*(1-0.4) + 1*0.5 = 1.7; t=1 4*(0.5-0.1) + 2*0.5 = 2.6 -> 4.3
    #   episode 1: 0.5*(1-0.6) + 1*0.2 = 0.4; mean (4.3 + 0.4) / 2
    assert sequential_dr(EP, R, PS, TP, R_LOGGED, R_TARGET, **KW).value == pytest.approx(2.35)
    # Weighted DR: t=0 (2*0.6 + 0.5*0.4)/2.5 + (1*0.5 + 1*0.2)/2 = 0.56 + 0.35;
    #   t=1 (4*0.4 + 0)/(4 + 0.5) + (2*0.5 + 0)/(2 + 0.5) = 1.6/4.5 + 0.4
    wdr = weighted_dr(EP, R, PS, TP, R_LOGGED, R_TARGET, **KW)
    assert wdr.value == pytest.approx(0.56 + 0.35 + 1.6 / 4.5 + 0.4)


def test_dr_reduces_to_is_with_a_zero_model_and_to_dm_with_an_exact_one():
    zero = np.zeros(3)
    assert doubly_robust(EP, R, PS, TP, zero, zero, **KW).value == pytest.approx(
        ips(EP, R, PS, TP, **KW).value
    )
    assert sequential_dr(EP, R, PS, TP, zero, zero, **KW).value == pytest.approx(
        pdis(EP, R, PS, TP, **KW).value
    )
    assert weighted_dr(EP, R, PS, TP, zero, zero, **KW).value == pytest.approx(
        wpdis(EP, R, PS, TP, **KW).value
    )
    # an exact reward model (the rewards themselves): the correction vanishes
    exact = doubly_robust(EP, R, PS, TP, R, R_TARGET, **KW)
    assert exact.value == pytest.approx(direct_method(EP, R, PS, TP, R_TARGET, **KW).value)


def test_on_policy_weights_make_the_estimators_plain_means():
    ones = np.ones(3)
    assert ips(EP, R, PS, PS, **KW).value == pytest.approx(R.mean())
    assert pdis(EP, R, PS, PS, **KW).value == pytest.approx((1.5 + 1.0) / 2)
    assert wpdis(EP, R, PS, PS, **KW).value == pytest.approx(1.0 + 0.5 / 2)
    assert snips(EP, R, ones * 0.5, ones * 0.5, **KW).value == pytest.approx(R.mean())


def test_ratio_estimate_interval_brackets_the_value():
    rng = np.random.default_rng(0)
    num = rng.normal(1.0, 1.0, size=400)
    est = ratio_estimate("x", num, np.ones(400), reps=500, seed=1)
    assert est.value == pytest.approx(num.mean())
    assert est.low < est.value < est.high
    half = 1.96 * num.std() / 20
    assert est.high - est.low == pytest.approx(2 * half, rel=0.2)


def test_ips_is_unbiased_on_a_synthetic_bandit():
    """Uniform logger, ε-greedy target, known reward probabilities: the interval covers."""
    rng = np.random.default_rng(3)
    n, k = 20000, 5
    ctx = rng.integers(0, 2, n)
    p = np.array([[0.1, 0.2, 0.3, 0.4, 0.5], [0.9, 0.1, 0.1, 0.1, 0.2]])
    greedy = np.where(ctx == 0, 4, 0)
    dist = TargetDistribution.epsilon_greedy(greedy, 0.2, k)
    truth = float(dist.mean_per_row(p[ctx]).mean())
    action = rng.integers(0, k, n)
    reward = (rng.random(n) < p[ctx, action]).astype(float)
    episode = np.arange(n)
    for name in ("ips", "snips"):
        est = estimate(name, episode, reward, np.full(n, 1 / k), dist.prob(action), reps=300)
        assert est.covers(truth), (name, est, truth)
        assert abs(est.value - truth) < 0.03


def test_models_are_exact_on_a_linear_world_and_dr_matches():
    """A reward linear in the features: the fitted model recovers it; DM ≈ DR ≈ truth."""
    rng = np.random.default_rng(0)
    n_eps, t, k = 400, 3, 6
    n = n_eps * t
    episode = np.repeat(np.arange(n_eps), t)
    step = np.tile(np.arange(t), n_eps)
    obs = rng.normal(size=(n, 2))
    ctx = rng.normal(size=(k, 2))
    action = rng.integers(0, k, n)
    reward = 0.5 + 0.3 * obs[:, 0] * ctx[action, 0] - 0.2 * ctx[action, 1]
    dist = TargetDistribution.epsilon_greedy(rng.integers(0, k, n), 0.3, k)
    models = fit_models(episode, step, obs, action, reward, ctx, dist, horizon=t)
    assert np.allclose(models.r_logged, reward, atol=0.02)
    table = 0.5 + 0.3 * obs[:, :1] * ctx[None, :, 0] - 0.2 * ctx[None, :, 1]
    truth = dist.mean_per_row(table)
    assert np.allclose(models.r_target, truth, atol=0.02)
    # the Q-model of a 3-step session at its first step: about 3 rewards to go
    assert models.v_target[step == 0].mean() == pytest.approx(3 * truth.mean(), abs=0.1)
    tp, ps = dist.prob(action), np.full(n, 1 / k)
    dm = estimate("dm", episode, reward, ps, tp, models.as_dict(), reps=100)
    dr = estimate("dr", episode, reward, ps, tp, models.as_dict(), reps=100)
    assert dm.value == pytest.approx(truth.mean(), abs=0.01)
    assert dr.value == pytest.approx(dm.value, abs=0.01)


def test_history_features_use_only_the_sessions_earlier_steps():
    """h(s_t): recent skips, listen rate and mean listened/skipped embeddings before t."""
    episode = np.array([0, 0, 0, 1, 1])
    action = np.array([0, 1, 2, 1, 0])
    reward = np.array([1.0, 0.0, 0.0, 0.0, 1.0])
    psi = np.array([[1.0, 2.0], [1.0, -4.0], [1.0, 6.0]])  # constant column, then one feature
    h = history_features(episode, action, reward, psi)
    # columns: recent skips / SKIP_WINDOW, listen rate, mean listened emb, mean skipped emb
    expected = [
        [0, 0, 0, 0],  # a session's first step: nothing before it
        [0, 1, 2, 0],  # after a listen of track 0
        [1 / SKIP_WINDOW, 0.5, 1.0, -2.0],  # after a listen of 0 and a skip of 1
        [0, 0, 0, 0],  # a new session
        [1 / SKIP_WINDOW, 0, 0, -4.0],  # after a skip of 1
    ]
    assert np.allclose(h, expected)
    # a step's own reward (and any later one) never enters its features
    changed = reward.copy()
    changed[[2, 4]] = 1 - changed[[2, 4]]
    assert np.allclose(history_features(episode, action, changed, psi), h)


def test_target_distribution_exact_probabilities():
    dist = TargetDistribution.epsilon_greedy(np.array([2, 0]), 0.4, 4)
    assert np.allclose(dist.prob(np.array([2, 2])), [0.1 + 0.6, 0.1])
    table = np.arange(4.0)[:, None]
    assert np.allclose(dist.mean_of(table)[:, 0], [0.4 * 1.5 + 0.6 * 2, 0.4 * 1.5])
    uniform = TargetDistribution.epsilon_greedy(np.array([1]), 1.0, 4)
    assert np.allclose(uniform.prob(np.array([3])), [0.25])


def test_target_distribution_pairs_and_rows_by_hand():
    """``prob_at``, ``sparse_at`` and ``at_rows`` on a case with a negative (blocked) entry."""
    # row 0: 0.5 · uniform(4) + 0.5 on track 2; row 1: 1.0 · uniform(4), track 3 blocked
    # (−0.25, taken back) and its mass on track 0 (+0.25)
    base = np.full(4, 0.25)
    dist = TargetDistribution(
        np.array([0.5, 1.0]), base, np.array([0, 1, 1]), np.array([2, 3, 0]),
        np.array([0.5, -0.25, 0.25]),
    )  # fmt: skip
    rows, cols = np.array([0, 0, 1, 1, 1]), np.array([2, 1, 3, 0, 1])
    assert np.allclose(dist.prob_at(rows, cols), [0.625, 0.125, 0.0, 0.5, 0.25])
    assert np.allclose(dist.sparse_at(rows, cols), [0.5, 0, -0.25, 0.25, 0])
    assert np.allclose(dist.mean_of(np.ones((4, 1)))[:, 0], 1.0)
    again = dist.at_rows(np.array([1, 1, 0]))  # repeats and reorders rows
    assert np.allclose(again.prob_at(np.array([0, 1, 2]), np.array([0, 0, 2])), [0.5, 0.5, 0.625])
    assert np.allclose(again.prob(np.array([3, 1, 1])), [0.0, 0.25, 0.125])


def test_logger_features_by_hand():
    """u(s, a) = [the logger's own pick, its own-pick mass / mean mass], exact under π_e."""
    # the logger: 0.5 · uniform(4) + own picks: row 0 {1: 0.2, 2: 0.3}, row 1 {0: 0.5}
    logger = TargetDistribution(
        np.array([0.5, 0.5]), np.full(4, 0.25), np.array([0, 0, 1]), np.array([1, 2, 0]),
        np.array([0.2, 0.3, 0.5]),
    )  # fmt: skip
    target = TargetDistribution.epsilon_greedy(np.array([2, 3]), 0.4, 4)  # 0.1 each + 0.6
    u, u_bar = logger_features(logger, np.array([2, 3]), target)
    m = (0.2 + 0.3 + 0.5) / 3  # mean own-pick mass
    assert np.allclose(u, [[1, 0.3 / m], [0, 0]])
    # row 0: π_e(1) = 0.1, π_e(2) = 0.7; row 1: π_e(0) = 0.1
    assert np.allclose(u_bar, [[0.8, (0.1 * 0.2 + 0.7 * 0.3) / m], [0.1, 0.1 * 0.5 / m]])


def test_models_with_the_logger_feature_learn_its_picks():
    """A reward that only the logger's own picks explain: with ``logger`` DM is exact."""
    rng = np.random.default_rng(1)
    n_eps, t, k = 300, 2, 8
    n = n_eps * t
    episode = np.repeat(np.arange(n_eps), t)
    step = np.tile(np.arange(t), n_eps)
    obs = rng.normal(size=(n, 2))
    ctx = rng.normal(size=(k, 2))
    picks = rng.integers(0, k, n)  # the logger's own pick in each state: reward 1, else 0.2
    logger = TargetDistribution(np.full(n, 0.5), np.full(k, 1 / k), np.arange(n), picks,
                                np.full(n, 0.5))  # fmt: skip
    action = np.where(rng.random(n) < 0.5, picks, rng.integers(0, k, n))
    reward = np.where(action == picks, 1.0, 0.2)
    target = TargetDistribution.epsilon_greedy(rng.integers(0, k, n), 0.5, k)
    truth = 0.2 + 0.8 * target.prob_at(np.arange(n), picks)
    with_logger = fit_models(episode, step, obs, action, reward, ctx, target, logger=logger)
    without = fit_models(episode, step, obs, action, reward, ctx, target)
    assert np.allclose(with_logger.r_target, truth, atol=0.02)
    assert np.abs(without.r_target - truth).mean() > 0.1
    with pytest.raises(ConfigError, match="logger's distribution has 3 rows"):
        fit_models(
            episode, step, obs, action, reward, ctx, target, logger=logger.at_rows([0, 1, 2])
        )


@pytest.mark.parametrize(
    "change, match",
    [
        ({"pscore": np.array([0.5, 0.0, 0.5])}, r"`pscore` must be in \(0, 1\].*row 1"),
        ({"pscore": np.array([0.5, 1.5, 0.5])}, r"`pscore` must be in \(0, 1\]"),
        ({"reward": np.array([1.0, 0.5])}, "1-D of one length"),
        ({"target_prob": np.zeros(3)}, "probability 0 to every logged action"),
        ({"target_prob": np.array([0.5, 1.2, 0.1])}, r"target probabilities must be in \[0, 1\]"),
        ({"reward": np.array([1.0, np.nan, 0.0])}, "non-finite value at row 1"),
        ({"episode": np.array([0, 1, 0])}, "contiguous"),
    ],
)
def test_bad_input_is_a_clear_error(change, match):
    args = {"episode": EP, "reward": R, "pscore": PS, "target_prob": TP, **change}
    with pytest.raises(ConfigError, match=match):
        check_logged(**args)
    with pytest.raises(ConfigError, match=match):
        ips(**args, **KW)


def test_model_values_and_estimator_names_are_checked():
    with pytest.raises(ConfigError, match=r"`r_target` must have shape \(3,\)"):
        direct_method(EP, R, PS, TP, np.zeros(2), **KW)
    with pytest.raises(ConfigError, match="needs model values q_logged, v_target"):
        estimate("sdr", EP, R, PS, TP, {})
    with pytest.raises(ConfigError, match="Did you mean 'snips'"):
        estimate("snip", EP, R, PS, TP)


GOOD = """\
name: t
log:
  policy: world
  sessions: 100
targets: [oracle:0.1, uniform]
seeds: [0]
"""


def test_config_defaults():
    config = parse_ope_config(GOOD, "ope.yaml")
    assert config.estimators == ESTIMATORS
    assert [str(t) for t in config.targets] == ["oracle:0.1", "uniform"]
    assert config.log is not None and config.log.sessions == 100


@pytest.mark.parametrize(
    "text, match",
    [
        (GOOD + "bootstrapp: 100\n", r"ope.yaml, line 7: bootstrapp: unknown key.*'bootstrap'"),
        (GOOD.replace("uniform", "unifrom"), r"line 5: targets\[1\]: .*Did you mean 'uniform'"),
        (GOOD.replace("oracle:0.1", "oracle:2"), r"line 5: targets\[0\]: .*epsilon"),
        (GOOD + "estimators: [ips, dR]\n", r"line 7: estimators\[1\]: unknown estimator 'dR'"),
        (GOOD + "dataset: runs/x\n", "line 1: give exactly one of `dataset`"),
        (GOOD.replace("sessions: 100", "sessions: 0"), r"line 4: log.sessions: must be an int"),
        (GOOD.replace("seeds: [0]", "seeds: [999]"), r"line 6: seeds\[0\]: .*other than 999"),
        (GOOD.replace("[oracle:0.1, uniform]", "[uniform, uniform]"), "listed twice"),
        (GOOD + "truth_sessions: 10\n", r"line 7: truth_sessions: must be an int >= 100"),
    ],
)
def test_config_errors_name_file_and_line(text, match):
    with pytest.raises(ConfigError, match=match):
        parse_ope_config(text, "ope.yaml")


# ---------------------------------------------------------------- with the simulator
@pytest.fixture(scope="module")
def tiny_dataset():
    from experiments.logged import log_sessions

    return log_sessions(policy="world", sessions=60, seed=0, progress=False, ref_sessions=0)


def test_replay_gives_exact_target_probabilities(tiny_dataset):
    from experiments.ope_targets import replay_targets

    data = tiny_dataset
    world, oracle = replay_targets(data, ["world", "oracle:0.2"])
    # the logger as target: its probabilities are the logged propensities
    assert np.allclose(world.dist.prob(data.action), data.pscore)
    # and its true mean reward per step is the logged actions' expected reward, on average
    assert world.truth_step.mean() == pytest.approx(data.truth_expected_reward.mean(), abs=0.02)
    sums = oracle.dist.mean_of(np.ones((data.n_actions, 1)))[:, 0]
    assert np.allclose(sums, 1.0)
    assert set(np.round(oracle.dist.prob(data.action), 6)) <= {0.2 / 1000, 0.2 / 1000 + 0.8}
    # the oracle's truth: 0.2 * mean + 0.8 * best, above the logger's
    assert oracle.truth_step.mean() > world.truth_step.mean()
    # the logger's full distribution comes along, and gives the logged pscores
    assert world.logger is oracle.logger and world.logger is not None
    assert np.allclose(world.logger.prob(data.action), data.pscore)
    rows = np.array([5, 5, 0])
    sub = oracle.subset(rows)
    assert np.allclose(sub.logger.prob(data.action[rows]), data.pscore[rows])


def test_replay_refuses_another_setting(tiny_dataset):
    import dataclasses

    from experiments.ope_targets import replay_targets

    meta = {**tiny_dataset.meta, "env_kwargs": {**tiny_dataset.meta["env_kwargs"], "slate": 5}}
    with pytest.raises(ConfigError, match="catalog setting only"):
        replay_targets(dataclasses.replace(tiny_dataset, meta=meta), ["uniform"])


def test_replay_refuses_a_dataset_that_does_not_replay(tiny_dataset):
    import dataclasses

    from experiments.ope_targets import replay_targets

    reward = tiny_dataset.reward.copy()
    reward[3] = 1 - reward[3]
    bad = dataclasses.replace(tiny_dataset, reward=reward)
    with pytest.raises(DataFormatError, match="do not replay: at row 3"):
        replay_targets(bad, ["uniform"])


def test_musicrec_ope_end_to_end(tmp_path, tiny_dataset):
    import pandas as pd

    from musicrec_gym.cli import main

    tiny_dataset.save(tmp_path / "logs")
    config = tmp_path / "ope.yaml"
    config.write_text(
        f"name: e2e\ndataset: {tmp_path / 'logs'}\ntargets: [uniform, world]\n"
        "seeds: [0, 1]\ntruth_sessions: 100\nbootstrap: 100\n"
    )
    out = tmp_path / "out"
    assert main(["ope", str(config), "--out", str(out), "--quiet"]) == 0
    table = pd.read_csv(out / "ope.csv")
    assert len(table) == 2 * len(ESTIMATORS)
    assert set(table["covers"]) <= {"yes", "no"}
    assert {"estimate", "truth", "bias", "rmse", "low", "high"} <= set(table.columns)
    # the logger evaluated on its own logs: IS weights are 1, IPS is the mean reward
    row = table[(table.target == "world") & (table.estimator == "ips")].iloc[0]
    assert abs(row.estimate - tiny_dataset.reward.mean()) < 0.1
    assert (out / "ope.png").stat().st_size > 1000
    markdown = (out / "ope.md").read_text()
    assert "| target | check | DR RMSE | IS RMSE | holds | support |" in markdown
    assert "| world | dr ≤ ips |" in markdown
    assert len(pd.read_csv(out / "ope_seeds.csv")) == 2 * 2 * len(ESTIMATORS)


def test_musicrec_ope_bad_config_exits_2(tmp_path, capsys):
    from musicrec_gym.cli import main

    config = tmp_path / "ope.yaml"
    config.write_text(GOOD.replace("uniform", "unifrom"))
    assert main(["ope", str(config), "--out", str(tmp_path / "o")]) == 2
    assert "line 5: targets[1]" in capsys.readouterr().err


def test_replay_refuses_edited_propensities(tiny_dataset):
    import dataclasses

    from experiments.ope_targets import replay_targets

    pscore = tiny_dataset.pscore.copy()
    pscore[5] *= 2
    bad = dataclasses.replace(tiny_dataset, pscore=pscore)
    with pytest.raises(DataFormatError, match="at row 5 `pscore`"):
        replay_targets(bad, ["uniform"])


def test_a_target_beyond_the_loggers_support_is_refused():
    from experiments.logged import log_sessions
    from experiments.ope_targets import replay_targets

    greedy = log_sessions(policy="oracle:0", sessions=8, seed=0, progress=False, ref_sessions=0)
    with pytest.raises(ConfigError, match=r"target 'uniform' puts probability 0\.999 on tracks"):
        replay_targets(greedy, ["uniform"])
    # the logger itself is fine
    (oracle,) = replay_targets(greedy, ["oracle:0"])
    assert np.allclose(oracle.dist.prob(greedy.action), 1.0)


def test_dr_support_over_paired_resamples_of_the_seeds():
    from experiments.ope_run import dr_support

    assert dr_support(np.array([0.1, -0.2, 0.1]), np.array([1.0, 1.0, -1.0])) == 1.0
    assert dr_support(np.array([2.0, -2.0]), np.array([0.5, 0.5])) == 0.0
    assert np.isnan(dr_support(np.array([0.1]), np.array([1.0])))
    # DR's MSE is at most IS's exactly when the resample misses the third seed (error 3):
    # probability (2/3)^3 = 8/27
    support = dr_support(np.array([0.0, 0.0, 3.0]), np.array([1.0, 1.0, 1.0]))
    assert abs(support - 8 / 27) < 0.04
    assert support == dr_support(np.array([0.0, 0.0, 3.0]), np.array([1.0, 1.0, 1.0]))
