"""IQM, probability of improvement, bootstrap intervals and the time to a threshold.

Each estimator is held to a case small enough to work out by hand, to SciPy's own
``trim_mean`` and ``mannwhitneyu`` (which rliable calls), to a direct loop over the same
seeded resamples, and, where rliable's ``metrics.py`` is installed, to rliable itself.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from experiments.statistics import (
    MEASURED,
    REACHING,
    SECONDS_TO,
    THRESHOLD_WINDOW,
    Estimate,
    add_improvement,
    agent_columns,
    first_crossing,
    iqm,
    iqm_estimate,
    markdown_cells,
    percentile_interval,
    probability_of_improvement,
    probability_of_improvement_estimate,
    stratified_resamples,
    time_to_threshold,
)

# ------------------------------------------------------------------ point estimates


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        ([5, 1, 3, 2, 4, 100, 0, 6], 3.5),  # sorted 0..6, 100: drop 2 each end -> 2,3,4,5
        ([0.2, 0.9, 0.4], 0.5),  # n = 3: floor(3/4) = 0 dropped, the mean
        ([1, 2, 3, 50, 60], (2 + 3 + 50) / 3),  # n = 5: one dropped at each end
        ([[0, 10], [1, 2]], 1.5),  # (runs, tasks): pooled 0,1,2,10 -> 1,2
        ([7.0], 7.0),
    ],
)
def test_iqm_by_hand(scores: list, expected: float) -> None:
    assert iqm(scores) == pytest.approx(expected)


def test_iqm_is_scipys_trim_mean_of_the_pooled_scores() -> None:
    rng = np.random.default_rng(3)
    for n in range(1, 13):
        scores = rng.normal(size=(n, 2))
        assert iqm(scores) == pytest.approx(stats.trim_mean(scores, 0.25, axis=None))


def test_probability_of_improvement_by_hand_with_ties() -> None:
    # x = 1 beats y = 0 only (1 of 3); x = 2 ties both 2s (1/2 + 1/2) and beats 0;
    # x = 3 beats all three: (1 + 2 + 3) / 9.
    assert probability_of_improvement([1, 2, 3], [2, 2, 0]) == pytest.approx(6 / 9)
    assert probability_of_improvement([1, 1], [1, 1, 1]) == 0.5  # all ties
    assert probability_of_improvement([0.3], [0.2]) == 1.0
    assert probability_of_improvement([0.1, 0.2], [0.3, 0.4]) == 0.0


def test_probability_of_improvement_is_mann_whitney_u_over_nm_averaged_over_tasks() -> None:
    rng = np.random.default_rng(4)
    for _ in range(20):
        x = rng.integers(0, 4, size=(5, 2)).astype(float)  # small integers: many ties
        y = rng.integers(0, 4, size=(3, 2)).astype(float)
        expected = np.mean(
            [stats.mannwhitneyu(x[:, t], y[:, t]).statistic / (5 * 3) for t in range(2)]
        )
        assert probability_of_improvement(x, y) == pytest.approx(expected)


def _rliable_metrics():
    """The ``metrics.py`` of rliable, loaded alone (the package's ``__init__`` fails)."""
    spec = importlib.util.find_spec("rliable")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("rliable is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "metrics.py"
    module_spec = importlib.util.spec_from_file_location("rliable_metrics_only", path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as err:  # any failure only means: not comparable here
        pytest.skip(f"rliable's metrics.py does not load: {type(err).__name__}: {err}")
    return module


def test_the_point_estimates_are_rliables() -> None:
    metrics = _rliable_metrics()
    rng = np.random.default_rng(5)
    for _ in range(50):
        n, m, tasks = rng.integers(1, 7, size=3)
        x = rng.integers(0, 4, size=(n, tasks)).astype(float)
        y = rng.integers(0, 4, size=(m, tasks)).astype(float)
        assert iqm(x) == pytest.approx(metrics.aggregate_iqm(x))
        assert probability_of_improvement(x, y) == pytest.approx(
            metrics.probability_of_improvement(x, y)
        )


# ---------------------------------------------------------------------- the bootstrap


def test_resamples_stay_within_their_task() -> None:
    scores = np.array([[0.0, 100.0], [1.0, 101.0], [2.0, 102.0]])
    resamples = stratified_resamples(scores, 500, np.random.default_rng(0))
    assert resamples.shape == (500, 3, 2)
    assert set(np.unique(resamples[:, :, 0])) == {0.0, 1.0, 2.0}
    assert set(np.unique(resamples[:, :, 1])) == {100.0, 101.0, 102.0}


def test_percentile_interval_is_numpys_linear_percentile() -> None:
    assert percentile_interval(np.arange(101.0)) == pytest.approx((2.5, 97.5))
    assert percentile_interval(np.arange(101.0), confidence=0.5) == pytest.approx((25.0, 75.0))
    assert percentile_interval([0.0, 1.0]) == pytest.approx((0.025, 0.975))


def test_iqm_interval_of_three_seeds_by_hand() -> None:
    # The mean of 3 draws from {0, 1, 2} is 0 (or 2) in 1 resample of 27, 3.7% > 2.5%:
    # the percentile interval is the whole range.
    assert iqm_estimate([0.0, 1.0, 2.0]) == Estimate(1.0, 0.0, 2.0)
    # Two seeds 0 and 1: the resample mean is 0, 1/2, 1 with 1/4, 1/2, 1/4.
    assert iqm_estimate([0.0, 1.0]) == Estimate(0.5, 0.0, 1.0)


def test_iqm_interval_is_a_direct_loop_over_the_same_seeded_resamples() -> None:
    scores = np.array([0.1, 0.5, 0.2, 0.9, 0.4, 0.35])
    rows = np.random.default_rng(11).integers(0, 6, size=(300, 6, 1))
    direct = [stats.trim_mean(scores[row[:, 0]], 0.25) for row in rows]
    low, high = np.percentile(direct, [2.5, 97.5])
    estimate = iqm_estimate(scores, reps=300, seed=11)
    assert (estimate.low, estimate.high) == pytest.approx((low, high), rel=1e-12)
    assert estimate.value == iqm(scores)


def test_probability_of_improvement_interval_by_hand() -> None:
    # x = {0, 1} resampled is 00 with probability 1/4, and y 11 likewise: P = 0 in 1/16
    # of the resamples (> 2.5%), P = 1 in 1/16 too: the interval is [0, 1].
    assert probability_of_improvement_estimate([0.0, 1.0], [0.0, 1.0]) == Estimate(0.5, 0.0, 1.0)
    # Every x beats every y in every resample.
    assert probability_of_improvement_estimate([2.0, 3.0], [0.0, 1.0]) == Estimate(1.0, 1.0, 1.0)


def test_probability_of_improvement_interval_is_a_direct_loop() -> None:
    x, y = np.array([0.2, 0.5, 0.5, 0.9]), np.array([0.5, 0.1, 0.3])
    rng = np.random.default_rng(2)  # X's resamples are drawn first, then Y's
    rows_x = rng.integers(0, 4, size=(200, 4, 1))[:, :, 0]
    rows_y = rng.integers(0, 3, size=(200, 3, 1))[:, :, 0]
    direct = [
        stats.mannwhitneyu(x[a], y[b]).statistic / 12 if not np.array_equal(x[a], y[b]) else 0.5
        for a, b in zip(rows_x, rows_y, strict=True)
    ]
    low, high = np.percentile(direct, [2.5, 97.5])
    estimate = probability_of_improvement_estimate(x, y, reps=200, seed=2)
    assert (estimate.low, estimate.high) == pytest.approx((low, high), rel=1e-12)
    assert estimate.value == probability_of_improvement(x, y)


def test_intervals_are_deterministic_and_need_two_seeds() -> None:
    scores = [0.3, 0.1, 0.7, 0.4, 0.2]
    assert iqm_estimate(scores, seed=1) == iqm_estimate(scores, seed=1)
    one = iqm_estimate([0.4])
    assert one.value == 0.4 and math.isnan(one.low) and math.isnan(one.high)
    assert one.format("{:.2f}") == "0.40 [n/a]"
    assert math.isnan(probability_of_improvement_estimate([0.4], [0.1, 0.2]).low)
    assert Estimate(0.5, 0.25, 0.75).format("{:.2f}") == "0.50 [0.25, 0.75]"
    assert Estimate(math.nan, math.nan, math.nan).format("{:.2f}") == "–"


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: iqm([]), r"`scores` must be a \(runs, tasks\) matrix"),
        (lambda: iqm([[[1.0]]]), r"`scores` must be a \(runs, tasks\) matrix"),
        (lambda: iqm([1.0, math.nan]), "`scores` must hold finite numbers only"),
        (lambda: probability_of_improvement([[1, 2]], [[1]]), "must have the same tasks"),
        (lambda: iqm_estimate([1.0, 2.0], reps=0), "`reps` must be an int >= 1, got 0"),
        (lambda: percentile_interval([1.0], confidence=1.0), r"`confidence` must be in \(0, 1\)"),
        (lambda: first_crossing([1, 2], [1.0, 2.0], 1.0, 0), "`window` must be an int >= 1"),
        (lambda: first_crossing([1, 2], [1.0], 1.0, 1), "must be 1-D of one length"),
        (lambda: first_crossing([1, 2], [1.0, 2.0], 1.0, 3), "2 values are fewer than the window"),
    ],
)
def test_invalid_input(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


# ------------------------------------------------------------------ time to threshold


def test_first_crossing_of_a_centred_moving_average() -> None:
    steps = np.array([10, 20, 30, 40, 50])
    # window 2: means of (0,0), (0,1), (1,1), (1,1); the first >= 1 covers episodes 2-3
    # and is stamped with the later middle episode, 3.
    assert first_crossing(steps, np.array([0.0, 0.0, 1.0, 1.0, 1.0]), 1.0, 2) == 40
    # window 3: (0,0,1) (0,1,1) (1,1,1) -> the third, centred on episode 3.
    assert first_crossing(steps, np.array([0.0, 0.0, 1.0, 1.0, 1.0]), 1.0, 3) == 40
    assert first_crossing(steps, np.array([0.0, 0.0, 1.0, 1.0, 1.0]), 0.5, 2) == 30
    assert first_crossing(steps, np.zeros(5), 0.5, 2) is None


def test_time_to_threshold_by_hand() -> None:
    n = 2 * THRESHOLD_WINDOW
    steps = np.arange(n) * 10.0
    returns = np.where(np.arange(n) < THRESHOLD_WINDOW, 0.0, 10.0)
    # Level 9 of random 0 -> oracle 10 needs 90% of the window's episodes at 10: the
    # window starting at episode 0.9 * W, centred on 1.4 * W.
    episode = int(0.9 * THRESHOLD_WINDOW) + THRESHOLD_WINDOW // 2
    step, seconds = time_to_threshold(steps, returns, 0.0, 10.0, n * 10, 50.0)
    assert step == steps[episode]
    assert seconds == pytest.approx(50.0 * steps[episode] / (n * 10))
    assert time_to_threshold(steps, returns * 0.8, 0.0, 10.0, n * 10, 50.0) == (math.inf,) * 2
    for args in ((steps, returns, 10.0, 10.0), (steps[:10], returns[:10], 0.0, 10.0)):
        assert all(math.isnan(v) for v in time_to_threshold(*args, n * 10, 50.0))


def test_agent_columns_median_counts_never_as_never() -> None:
    row = agent_columns(np.array([0.1, math.nan, 0.3]), np.array([1.0, 2.0, math.inf]))
    assert row["normalised_score_iqm"] == pytest.approx(0.2)  # the nan seed left out
    assert (row[SECONDS_TO], row[REACHING], row[MEASURED]) == (2.0, 2, 3)
    assert markdown_cells(row)[2] == "2.0 s (2/3)"
    row = agent_columns(np.array([0.1, 0.2]), np.array([math.inf, math.inf, 4.0]))
    assert (row[SECONDS_TO], row[REACHING]) == (math.inf, 1)
    assert markdown_cells(row)[2] == "not reached (1/3)"
    row = agent_columns(np.array([0.1]), np.array([math.nan]))
    assert markdown_cells(row) == ["0.100 [n/a]", "–", "–"]


def test_the_baseline_is_the_best_bandit_at_the_same_grid_point() -> None:
    scores = {
        "UCB": np.array([0.5, 0.6]),
        "TS": np.array([0.7, 0.8]),
        "PPO": np.array([0.6, 0.9]),
        "UCB@w=b": np.array([0.1, 0.2]),
        "PPO@w=b": np.array([0.3, 0.1]),
    }
    kinds = {"UCB": "linucb", "TS": "lin_ts", "PPO": "ppo"}
    rows = [
        {"agent": name, "type": kinds[name.split("@")[0]], **agent_columns(s, np.array([]))}
        for name, s in scores.items()
    ]
    points = {name: (("env.w", "b"),) if "@" in name else (("env.w", "a"),) for name in scores}
    add_improvement(rows, scores, points)
    by = {row["agent"]: row for row in rows}
    assert by["PPO"]["prob_improvement_over"] == "TS"  # highest IQM at point a
    assert by["PPO"]["prob_improvement"] == pytest.approx(0.5)  # 0.6<0.7,0.8; 0.9 beats both
    assert by["TS"]["prob_improvement"] == 0.5
    assert by["PPO@w=b"]["prob_improvement_over"] == "UCB@w=b"
    # 0.3 beats 0.1 and 0.2; 0.1 ties 0.1 (1/2) and loses to 0.2: 2.5 of 4 pairs.
    assert by["PPO@w=b"]["prob_improvement"] == pytest.approx(0.625)
    rows = [{"agent": "PPO", "type": "ppo", **agent_columns(scores["PPO"], np.array([]))}]
    add_improvement(rows, scores, {})
    assert rows[0]["prob_improvement_over"] is None and math.isnan(rows[0]["prob_improvement"])
