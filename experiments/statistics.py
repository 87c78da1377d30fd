"""Aggregate scores over seeds as Agarwal et al. (2021) recommend, in NumPy.

"Deep Reinforcement Learning at the Edge of the Statistical Precipice" (NeurIPS 2021)
asks for robust aggregates with interval estimates instead of a mean over a handful of
seeds. Its library, rliable, does not import next to pandas 3 (its dependency ``arch``
fails), so the estimators the report uses are written here with rliable's definitions.
Scores are a ``(runs, tasks)`` matrix (a 1-D array is one task); here a run is a seed.

- ``iqm``: the interquartile mean, rliable's ``metrics.aggregate_iqm``, i.e.
  ``scipy.stats.trim_mean(scores, 0.25, axis=None)``: the scores of every run and task
  pooled and sorted, ``floor(0.25 * n)`` dropped at each end, the mean of the rest (with
  fewer than 4 scores nothing is dropped and it is the mean).
- ``probability_of_improvement``: rliable's ``metrics.probability_of_improvement``,
  P(X > Y) per task as the Mann-Whitney U statistic of X over Y divided by ``n * m``,
  i.e. the fraction of the ``n * m`` pairs (x_i, y_j) with x_i > y_j, ties counting
  1/2, averaged over tasks.
- ``stratified_resamples``: rliable's ``StratifiedBootstrap`` (runs resampled with
  replacement within each task, independently per task); two score sets are resampled
  independently of each other, as its ``StratifiedIndependentBootstrap`` does.
- ``percentile_interval``: the percentile bootstrap, rliable's default (``arch``'s
  ``conf_int(method="percentile")``): the (1 - c)/2 and (1 + c)/2 quantiles of the
  statistic over the resamples, NumPy's linear interpolation.

Every estimate is seeded (``numpy.random.default_rng(seed)``), so a report is the same
each time it is written. An interval needs at least 2 runs per task: with one run every
resample is the same score, which says nothing about the spread (``nan`` then).

``first_crossing`` is unrelated to rliable: the first env step at which a centred moving
average of training-episode returns reaches a threshold.

The second half of the module is what ``experiments.report`` adds to the results tables
with these: per agent, the IQM of the per-seed normalised scores, the probability of
improvement over the best linear bandit (``LINEAR_BANDITS``) and the seconds until the
training curve reaches ``THRESHOLD`` of the way from random to the oracle (the exact
definitions are the footnote, ``footnote``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

#: Bootstrap resamples per interval.
BOOTSTRAP_REPS = 2000
#: Seed of the bootstrap's generator (the same for every agent: common resamples).
BOOTSTRAP_SEED = 0
#: Coverage of the intervals.
CONFIDENCE = 0.95
#: Resamples evaluated at once by ``probability_of_improvement_estimate`` (memory bound).
_CHUNK = 256


@dataclass(frozen=True)
class Estimate:
    """A point estimate and its bootstrap interval.

    Attributes:
        value: The statistic on the scores themselves (``nan`` without scores).
        low: Lower end of the interval (``nan`` with fewer than 2 runs per task).
        high: Upper end of the interval (``nan`` likewise).
    """

    value: float
    low: float
    high: float

    def format(self, fmt: str) -> str:
        """``value [low, high]``; ``value [n/a]`` without an interval; ``–`` without a value."""
        if not math.isfinite(self.value):
            return "–"
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            return f"{fmt.format(self.value)} [n/a]"
        return f"{fmt.format(self.value)} [{fmt.format(self.low)}, {fmt.format(self.high)}]"


NO_ESTIMATE = Estimate(math.nan, math.nan, math.nan)


def score_matrix(scores: np.ndarray | list[float], name: str = "scores") -> np.ndarray:
    """``scores`` as a float ``(runs, tasks)`` matrix (a 1-D array is one task).

    Raises:
        ValueError: Not 1-D or 2-D, no run or no task, or a score is not finite.
    """
    arr = np.asarray(scores, dtype=float)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(
            f"`{name}` must be a (runs, tasks) matrix with >= 1 run and task, got shape "
            f"{np.shape(scores)}"
        )
    if not np.isfinite(arr).all():
        raise ValueError(f"`{name}` must hold finite numbers only, got {arr.ravel().tolist()}")
    return arr


def iqm(scores: np.ndarray | list[float]) -> float:
    """Interquartile mean of all scores pooled (rliable's ``aggregate_iqm``)."""
    return float(_trimmed_means(score_matrix(scores).reshape(1, -1))[0])


def _trimmed_means(pooled: np.ndarray) -> np.ndarray:
    """25% trimmed mean of each row of ``pooled`` (``scipy.stats.trim_mean`` per row)."""
    n = pooled.shape[1]
    cut = int(0.25 * n)
    return np.sort(pooled, axis=1)[:, cut : n - cut].mean(axis=1)


def probability_of_improvement(
    scores_x: np.ndarray | list[float], scores_y: np.ndarray | list[float]
) -> float:
    """P(X > Y): per task U / (n m), ties counted 1/2, mean over tasks (rliable's).

    Args:
        scores_x: ``(n runs, tasks)`` scores of X.
        scores_y: ``(m runs, tasks)`` scores of Y, on the same tasks.
    """
    x = score_matrix(scores_x, "scores_x")
    y = score_matrix(scores_y, "scores_y")
    _same_tasks(x, y)
    return float(_improvement(x[None], y[None])[0])


def _same_tasks(x: np.ndarray, y: np.ndarray) -> None:
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"`scores_x` and `scores_y` must have the same tasks (columns), got {x.shape[1]} "
            f"and {y.shape[1]}"
        )


def _improvement(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(X > Y) of each of a batch: ``x`` is ``(batch, n, tasks)``, ``y`` ``(batch, m, tasks)``."""
    diff = x[:, :, None, :] - y[:, None, :, :]  # (batch, n, m, tasks)
    wins = (diff > 0).mean(axis=(1, 2)) + 0.5 * (diff == 0).mean(axis=(1, 2))
    return wins.mean(axis=1)


def stratified_resamples(scores: np.ndarray, reps: int, rng: np.random.Generator) -> np.ndarray:
    """``reps`` stratified bootstrap resamples of a ``(runs, tasks)`` matrix.

    In each resample and each task, ``runs`` runs are drawn with replacement from that
    task's runs (rliable's ``StratifiedBootstrap``, ``task_bootstrap=False``).

    Returns:
        A ``(reps, runs, tasks)`` array.
    """
    runs, tasks = scores.shape
    rows = rng.integers(0, runs, size=(reps, runs, tasks))
    return scores[rows, np.arange(tasks)[None, None, :]]


def percentile_interval(values: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The percentile bootstrap interval of statistics computed on resamples."""
    if not 0 < confidence < 1:
        raise ValueError(f"`confidence` must be in (0, 1), got {confidence!r}")
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(np.asarray(values, dtype=float), [tail, 100 - tail])
    return float(low), float(high)


def _check_reps(reps: int) -> None:
    if isinstance(reps, bool) or not isinstance(reps, int) or reps < 1:
        raise ValueError(f"`reps` must be an int >= 1, got {reps!r}")


def iqm_estimate(
    scores: np.ndarray | list[float],
    reps: int = BOOTSTRAP_REPS,
    seed: int = BOOTSTRAP_SEED,
    confidence: float = CONFIDENCE,
) -> Estimate:
    """IQM of ``scores`` with its stratified percentile-bootstrap interval."""
    _check_reps(reps)
    arr = score_matrix(scores)
    value = iqm(arr)
    if arr.shape[0] < 2:
        return Estimate(value, math.nan, math.nan)
    resamples = stratified_resamples(arr, reps, np.random.default_rng(seed))
    low, high = percentile_interval(_trimmed_means(resamples.reshape(reps, -1)), confidence)
    return Estimate(value, low, high)


def probability_of_improvement_estimate(
    scores_x: np.ndarray | list[float],
    scores_y: np.ndarray | list[float],
    reps: int = BOOTSTRAP_REPS,
    seed: int = BOOTSTRAP_SEED,
    confidence: float = CONFIDENCE,
) -> Estimate:
    """P(X > Y) with its percentile-bootstrap interval (X and Y resampled independently).

    Each resample draws X's runs, then Y's, from one generator seeded with ``seed``.
    """
    _check_reps(reps)
    x = score_matrix(scores_x, "scores_x")
    y = score_matrix(scores_y, "scores_y")
    _same_tasks(x, y)
    value = probability_of_improvement(x, y)
    if x.shape[0] < 2 or y.shape[0] < 2:
        return Estimate(value, math.nan, math.nan)
    rng = np.random.default_rng(seed)
    stats = np.concatenate(
        [
            _improvement(stratified_resamples(x, k, rng), stratified_resamples(y, k, rng))
            for k in _chunks(reps, _CHUNK)
        ]
    )
    low, high = percentile_interval(stats, confidence)
    return Estimate(value, low, high)


def _chunks(total: int, size: int) -> list[int]:
    """Sizes of the consecutive chunks of ``total`` items, ``size`` at most each."""
    return [min(size, total - start) for start in range(0, total, size)]


def first_crossing(
    steps: np.ndarray, values: np.ndarray, threshold: float, window: int
) -> float | None:
    """The first step at which a centred moving average of ``values`` reaches ``threshold``.

    The average at episode ``i`` is the mean of the ``window`` consecutive values
    ``i - window // 2 .. i - window // 2 + window - 1``; it is defined where the window
    lies within the series, and is stamped with ``steps[i]``.

    Args:
        steps: Env step at which each value (a finished episode) was recorded, ascending.
        values: One value per episode.
        threshold: The level to reach (``>=``).
        window: Episodes averaged.

    Returns:
        The step, or ``None`` if the average never reaches the threshold.

    Raises:
        ValueError: ``window`` < 1, ``steps`` and ``values`` differ in length, or
            there are fewer values than ``window`` (the average is nowhere defined).
    """
    steps = np.asarray(steps, dtype=float)
    values = np.asarray(values, dtype=float)
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"`window` must be an int >= 1, got {window!r}")
    if steps.shape != values.shape or steps.ndim != 1:
        raise ValueError(
            f"`steps` and `values` must be 1-D of one length, got {steps.shape} and {values.shape}"
        )
    if len(values) < window:
        raise ValueError(f"{len(values)} values are fewer than the window of {window}")
    # means[k] is the mean of values[k : k + window]
    means = np.lib.stride_tricks.sliding_window_view(values, window).mean(axis=1)
    reached = np.flatnonzero(means >= threshold)
    if not len(reached):
        return None
    return float(steps[reached[0] + window // 2])


# ------------------------------------------------------------- the report's columns

#: The agent types whose best (by IQM) is the baseline of the probability of improvement:
#: the linear bandits, and in the slate setting the top K of LinUCB's scores.
LINEAR_BANDITS = ("linucb", "lin_ts", "epsilon_greedy", "slate_topk")
#: The normalised score the training curve must reach for the "seconds to" column.
THRESHOLD = 0.9
#: Training episodes in the centred moving average that must reach ``THRESHOLD``.
THRESHOLD_WINDOW = 500
#: Columns of the tables for that threshold: per seed, then per agent.
STEPS_TO, SECONDS_TO = f"steps_to_{THRESHOLD:g}", f"seconds_to_{THRESHOLD:g}"
REACHING, MEASURED = f"seeds_reaching_{THRESHOLD:g}", f"seeds_measured_{THRESHOLD:g}"


def time_to_threshold(
    steps: np.ndarray,
    returns: np.ndarray,
    random_return: float,
    oracle_return: float,
    train_steps: int,
    train_time_s: float,
) -> tuple[float, float]:
    """Env steps and training seconds until a training curve reaches ``THRESHOLD``.

    The curve is the centred moving average over ``THRESHOLD_WINDOW`` consecutive
    training episodes (``first_crossing``) of their returns; the level is
    ``random_return + THRESHOLD * (oracle_return - random_return)``. Seconds are
    ``train_time_s * step / train_steps``: a cell's curve has no time stamps, so
    constant throughput over its training is assumed.

    Args:
        steps: Env step at which each training episode finished (``curve.csv``).
        returns: Each training episode's return.
        random_return: The random policy's evaluation return (same seed and grid point).
        oracle_return: The oracle's.
        train_steps: The cell's training steps.
        train_time_s: The cell's training wall time.

    Returns:
        ``(step, seconds)``; ``(inf, inf)`` if never reached; ``(nan, nan)`` if it
        cannot be measured (no training, fewer episodes than the window, the oracle
        not above random).
    """
    span = oracle_return - random_return
    if not span > 0 or not train_steps > 0 or len(returns) < THRESHOLD_WINDOW:
        return math.nan, math.nan
    level = random_return + THRESHOLD * span
    step = first_crossing(steps, returns, level, THRESHOLD_WINDOW)
    if step is None:
        return math.inf, math.inf
    return step, train_time_s * step / train_steps


def agent_columns(scores: np.ndarray, seconds: np.ndarray) -> dict[str, object]:
    """An agent's IQM (with interval) and seconds to ``THRESHOLD`` columns.

    Args:
        scores: The agent's per-seed normalised scores (``nan`` ones are left out).
        seconds: Its per-seed ``SECONDS_TO`` (``nan``: not measured; ``inf``: never).

    Returns:
        ``normalised_score_iqm`` (and ``_ci_low``, ``_ci_high``); ``SECONDS_TO``, the
        median over the measured seeds, a seed that never reaches it counting as
        ``inf``; ``REACHING`` and ``MEASURED``, the seeds that reach it and that were
        measured.
    """
    row: dict[str, object] = {}
    scores = np.asarray(scores, dtype=float)
    _add_estimate(row, "normalised_score_iqm", _estimate(iqm_estimate, scores[np.isfinite(scores)]))
    seconds = np.asarray(seconds, dtype=float)
    seconds = seconds[~np.isnan(seconds)]
    row[SECONDS_TO] = float(np.median(seconds)) if len(seconds) else math.nan
    row[REACHING] = int(np.isfinite(seconds).sum())
    row[MEASURED] = len(seconds)
    return row


def _estimate(estimator: Callable[..., Estimate], *scores: np.ndarray) -> Estimate:
    """``estimator(*scores)`` with the default bootstrap; ``NO_ESTIMATE`` if one is empty."""
    if any(len(s) == 0 for s in scores):
        return NO_ESTIMATE
    return estimator(*scores)


def _add_estimate(row: dict[str, object], column: str, estimate: Estimate) -> None:
    row[column] = estimate.value
    row[f"{column}_ci_low"] = estimate.low
    row[f"{column}_ci_high"] = estimate.high


def add_improvement(
    rows: Sequence[dict[str, object]], scores: dict[str, np.ndarray], points: dict[str, object]
) -> None:
    """Add P(agent > the best linear bandit at its grid point) to each ``agent_columns`` row.

    The best bandit is the row of a ``LINEAR_BANDITS`` type with the highest IQM (the
    first in ``rows`` on a tie) among the rows at the same point; without one, the
    columns are empty. Adds ``prob_improvement_over`` (the bandit's name),
    ``prob_improvement`` and its ``_ci_low`` and ``_ci_high``.

    Args:
        rows: One per agent, with ``agent``, ``type`` and ``normalised_score_iqm``.
        scores: Each agent's per-seed normalised scores.
        points: Each agent's environment grid point (absent: the same for all).
    """
    best: dict[object, tuple[float, str]] = {}
    for row in rows:
        name = str(row["agent"])
        point, value = points.get(name, ()), _number(row["normalised_score_iqm"])
        better = point not in best or value > best[point][0]
        if row["type"] in LINEAR_BANDITS and math.isfinite(value) and better:
            best[point] = (value, name)
    for row in rows:
        name = str(row["agent"])
        baseline = best.get(points.get(name, ()), (math.nan, None))[1]
        row["prob_improvement_over"] = baseline
        estimate = NO_ESTIMATE
        if baseline is not None:
            x, y = (np.asarray(scores[n], dtype=float) for n in (name, baseline))
            x, y = x[np.isfinite(x)], y[np.isfinite(y)]
            estimate = _estimate(probability_of_improvement_estimate, x, y)
        _add_estimate(row, "prob_improvement", estimate)


def baseline_label(baselines: Sequence[object]) -> str:
    """The baseline's name in the header: the bandit's, or "best bandit" if they differ."""
    names = sorted({str(b) for b in baselines if isinstance(b, str) and b})
    return names[0] if len(names) == 1 else "best bandit"


def markdown_headers(versus: str) -> list[str]:
    """The headers of the columns ``markdown_cells`` writes."""
    return ["IQM [95% CI]", f"P(> {versus}) [95% CI]", f"Seconds to {THRESHOLD:g}"]


def markdown_cells(row: dict[str, object]) -> list[str]:
    """A summary row's IQM, probability of improvement and seconds to ``THRESHOLD``."""
    cells = []
    for column, fmt in (("normalised_score_iqm", "{:.3f}"), ("prob_improvement", "{:.2f}")):
        values = [_number(row.get(f"{column}{end}")) for end in ("", "_ci_low", "_ci_high")]
        cells.append(Estimate(*values).format(fmt))
    measured = _number(row.get(MEASURED))
    seconds = _number(row.get(SECONDS_TO))
    if not measured > 0:
        cells.append("–")
    else:
        reached = f"({_number(row.get(REACHING)):.0f}/{measured:.0f})"
        if not math.isfinite(seconds):
            cells.append(f"not reached {reached}")
        else:
            cells.append(
                f"{seconds:.1f} s {reached}" if seconds < 10 else f"{seconds:,.0f} s {reached}"
            )
    return cells


def _number(value: object) -> float:
    """A summary cell as a float; ``nan`` when empty or not a number."""
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def footnote(versus: str, per_point: bool) -> str:
    """The definitions of the columns ``markdown_cells`` writes, for under the table.

    Args:
        versus: The baseline's name in the header (``baseline_label``).
        per_point: Whether the baseline is chosen per environment grid point.
    """
    return (
        "IQM: interquartile mean of the per-seed normalised scores (the mean of the middle "
        "50%: floor(n/4) of the n seeds dropped at each end, so with fewer than 4 seeds "
        "the plain mean), with a 95% percentile-bootstrap interval over seeds "
        f"({BOOTSTRAP_REPS:,} resamples, seed {BOOTSTRAP_SEED}; each row is one task, so "
        "the stratified bootstrap of Agarwal et al. 2021 resamples its seeds). "
        f"P(> {versus}): probability of improvement over the linear bandit "
        f"({', '.join(LINEAR_BANDITS)}) with the highest IQM"
        f"{' at the same grid point' if per_point else ''}: the fraction of all (seed of "
        "the agent, seed of the bandit) pairs in which the agent's normalised score is "
        "higher, ties counting 1/2 (Mann–Whitney U / (n·m)), with its 95% "
        "percentile-bootstrap interval (both agents' seeds resampled independently); – "
        "without a linear bandit. Intervals are n/a with one seed. "
        f"Seconds to {THRESHOLD:g}: training wall time until the centred moving average, "
        f"over {THRESHOLD_WINDOW} consecutive training episodes, of the training-episode "
        f"return first reaches random + {THRESHOLD:g} × (upper reference − random) of the same "
        "seed's evaluation returns; the env step of that episode is converted to seconds "
        "as train s × step / train steps (constant throughput assumed). Median over seeds, "
        "a seed that never reaches it counting as never; (k/n): k of the n seeds reach "
        "it. Training episodes explore and meet other listeners than the evaluation: the "
        "harness runs no greedy evaluation during training. – for fixed policies and for "
        f"runs with fewer than {THRESHOLD_WINDOW} training episodes."
    )
