"""Off-policy estimators of a target policy's value from logged sessions, in NumPy.

Every estimator reads only what a real service logs (episode ids, steps, actions,
rewards, the logging policy's probability ``pscore`` of each logged action) and the
target policy's probabilities (``TargetDistribution``); never a dataset's ``truth_*``
columns. Rows are logged steps, episodes concatenated in order, steps ``0, 1, ...``.

Per-decision estimators (each logged step a bandit round; the estimand is the target's
mean expected reward over the logged states, ``(1/n) Σ_i Σ_a π_e(a|s_i) E[r|s_i,a]``),
with ``w_i = π_e(a_i|s_i) / π_b(a_i|s_i)`` and a reward model ``r̂``:

- ``ips``: ``(1/n) Σ_i w_i r_i`` (Horvitz & Thompson 1952; Precup et al. 2000).
- ``snips``: ``Σ_i w_i r_i / Σ_i w_i`` (self-normalised; Swaminathan & Joachims 2015).
- ``direct_method``: ``(1/n) Σ_i r̂(s_i, π_e)``, ``r̂(s, π) = Σ_a π(a|s) r̂(s, a)``.
- ``doubly_robust``: ``(1/n) Σ_i [r̂(s_i, π_e) + w_i (r_i − r̂(s_i, a_i))]``
  (Dudík, Langford & Li 2011).

Session-level estimators (the estimand is the target's expected session return from the
logged sessions' start states), with cumulative ratios ``ρ_{0:t} = Π_{u≤t} w_u``; an
ended session is absorbing (reward 0, ratio frozen at its last value), so every episode
counts at every ``t`` up to the longest:

- ``pdis``: ``(1/E) Σ_e Σ_t ρ_{0:t} r_t`` (per-decision IS, Precup et al. 2000).
- ``wpdis``: ``Σ_t Σ_e ρ_{0:t} r_t / Σ_e ρ_{0:t}`` (weighted per-decision IS).
- ``sequential_dr``: ``(1/E) Σ_e Σ_t [ρ_{0:t} (r_t − Q̂(s_t, a_t)) + ρ_{0:t−1} V̂(s_t)]``
  with ``ρ_{0:−1} = 1`` and ``V̂(s) = Σ_a π_e(a|s) Q̂(s, a)``: the unrolled recursion of
  Jiang & Li, "Doubly robust off-policy value evaluation for reinforcement learning",
  ICML 2016.
- ``weighted_dr``: the same with each ``ρ_{0:t}`` normalised by ``Σ_e ρ_{0:t}`` (WDR,
  Thomas & Brunskill, "Data-efficient off-policy policy evaluation", ICML 2016).

Intervals: every estimator is a sum of ratios of per-episode sums,
``Σ_k (Σ_e num[e, k]) / (Σ_e den[e, k])``, so one routine (``ratio_estimate``) gives all
of them a percentile-bootstrap 95% interval over *episodes* (steps of a session are not
independent): ``reps`` resamples of the episodes with replacement, each estimate
recomputed (the reward and Q-models are not refitted per resample: the interval holds
them fixed). A ratio whose denominator is 0 in a resample counts 0.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from musicrec_gym.errors import ConfigError, unknown_name_message

#: The per-decision estimators (estimand: the target's mean reward per logged step).
DECISION_ESTIMATORS = ("ips", "snips", "dm", "dr")
#: The session-level estimators (estimand: the target's expected session return).
SESSION_ESTIMATORS = ("pdis", "wpdis", "sdr", "wdr")
#: Every estimator, in report order.
ESTIMATORS = DECISION_ESTIMATORS + SESSION_ESTIMATORS
#: Each doubly-robust estimator and the importance-sampling one it improves on.
DR_COUNTERPARTS = {"dr": "ips", "sdr": "pdis", "wdr": "wpdis"}
#: Bootstrap resamples per interval.
DEFAULT_REPS = 1000
#: Coverage of the intervals.
CONFIDENCE = 0.95
#: Resamples evaluated at once (memory: ``_CHUNK x episodes`` counts).
_CHUNK = 50


@dataclass(frozen=True)
class OPEEstimate:
    """One estimator's estimate and its 95% bootstrap interval.

    Attributes:
        estimator: Its key (``ESTIMATORS``).
        value: The estimate.
        low: Lower end of the 95% interval.
        high: Upper end.
    """

    estimator: str
    value: float
    low: float
    high: float

    def covers(self, truth: float) -> bool:
        """Whether the interval contains ``truth``."""
        return bool(self.low <= truth <= self.high)


@dataclass(frozen=True)
class TargetDistribution:
    """A target policy's action distribution at each of ``n`` logged states.

    ``π(a | s_i) = base_weight[i] * base[a] + Σ_{j: rows[j] = i, cols[j] = a} vals[j]``:
    a shared distribution ``base`` over the catalog (uniform for ε-greedy policies) mixed
    in with a per-row weight, plus sparse per-row mass (the greedy action's ``1 − ε``;
    negative where a row takes back the base's mass from tracks it blocks).

    Attributes:
        base_weight: (n,) weight of ``base`` at each row.
        base: (n_tracks,) a distribution over the catalog.
        rows: (m,) rows of the sparse entries.
        cols: (m,) their actions.
        vals: (m,) their probability mass.
    """

    base_weight: np.ndarray
    base: np.ndarray
    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    cols: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    vals: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))

    @classmethod
    def epsilon_greedy(
        cls, greedy: np.ndarray, epsilon: float, n_tracks: int
    ) -> TargetDistribution:
        """``ε / n_tracks`` on every track plus ``1 − ε`` on ``greedy[i]`` (ε = 1: uniform)."""
        greedy = np.asarray(greedy, dtype=np.int64)
        n = len(greedy)
        base = np.full(n_tracks, 1.0 / n_tracks)
        if epsilon >= 1.0:
            return cls(np.ones(n), base)
        return cls(
            np.full(n, float(epsilon)),
            base,
            np.arange(n, dtype=np.int64),
            greedy,
            np.full(n, 1.0 - float(epsilon)),
        )

    @property
    def n(self) -> int:
        """Number of rows (logged states)."""
        return len(self.base_weight)

    def prob(self, actions: np.ndarray) -> np.ndarray:
        """``π(actions[i] | s_i)`` for every row: (n,).

        Clipped to [0, 1]: a blocked track's ``α base − α base`` may round to −1e-18.
        """
        actions = np.asarray(actions, dtype=np.int64)
        out = self.base_weight * self.base[actions]
        hit = self.cols == actions[self.rows]
        np.add.at(out, self.rows[hit], self.vals[hit])
        return np.clip(out, 0.0, 1.0)

    def sparse_at(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """The sparse entry at each pair ``(rows[j], cols[j])``, 0 where none: (m,).

        Each (row, action) has at most one sparse entry (as every constructor here
        builds them), found by a sorted search.
        """
        rows = np.asarray(rows, dtype=np.int64)
        cols = np.asarray(cols, dtype=np.int64)
        if not len(self.rows) or not len(rows):
            return np.zeros(len(rows))
        n_tracks = len(self.base)
        keys = self.rows.astype(np.int64) * n_tracks + self.cols
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        query = rows * n_tracks + cols
        at = np.minimum(np.searchsorted(sorted_keys, query), len(keys) - 1)
        return np.where(sorted_keys[at] == query, self.vals[order[at]], 0.0)

    def prob_at(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """``π(cols[j] | s_{rows[j]})`` for any pairs of rows and actions: (m,)."""
        rows = np.asarray(rows, dtype=np.int64)
        cols = np.asarray(cols, dtype=np.int64)
        base = self.base_weight[rows] * self.base[cols]
        return np.clip(base + self.sparse_at(rows, cols), 0.0, 1.0)

    def at_rows(self, rows: np.ndarray) -> TargetDistribution:
        """The distribution at ``rows`` only, in that order (repeats allowed)."""
        rows = np.asarray(rows, dtype=np.int64)
        order = np.argsort(self.rows, kind="stable")  # sparse entries grouped by row
        counts = np.bincount(self.rows, minlength=self.n)
        first = np.r_[0, np.cumsum(counts)[:-1]]
        k = counts[rows]
        total = int(k.sum())
        within = np.arange(total) - np.repeat(np.cumsum(k) - k, k)
        pick = order[np.repeat(first[rows], k) + within]
        new_rows = np.repeat(np.arange(len(rows)), k)
        return TargetDistribution(
            self.base_weight[rows], self.base, new_rows, self.cols[pick], self.vals[pick]
        )

    @functools.cached_property
    def sparse(self) -> sp.csr_matrix:
        """The sparse entries as an (n, n_tracks) CSR matrix (repeated entries add up).

        Made once per distribution: the fitted-Q iterations take the mean of a new table
        under the same distribution many times.
        """
        return sp.csr_matrix((self.vals, (self.rows, self.cols)), shape=(self.n, len(self.base)))

    def mean_of(self, table: np.ndarray) -> np.ndarray:
        """``Σ_a π(a | s_i) table[a]`` for every row: (n, k) for a (n_tracks, k) table."""
        table = np.asarray(table, dtype=np.float64)
        flat = table.reshape(len(table), -1)
        out = self.base_weight[:, None] * (self.base @ flat)[None, :] + self.sparse @ flat
        return out.reshape((self.n, *table.shape[1:]))

    def mean_per_row(self, values: np.ndarray) -> np.ndarray:
        """``Σ_a π(a | s_i) values[i, a]`` for a (n, n_tracks) matrix: (n,)."""
        values = np.asarray(values, dtype=np.float64)
        out = self.base_weight * (values @ self.base)
        np.add.at(out, self.rows, self.vals * values[self.rows, self.cols])
        return out


# ------------------------------------------------------------------ input checks
def check_logged(
    episode: np.ndarray, reward: np.ndarray, pscore: np.ndarray, target_prob: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The estimators' common inputs as arrays, checked.

    Raises:
        ConfigError: Lengths differ, no rows, episodes not contiguous, a non-finite
            value, a ``pscore`` outside (0, 1] (naming the first bad row), a target
            probability outside [0, 1], or a target that gives every logged action
            probability 0 (no overlap: nothing to estimate from).
    """
    arrays = {
        "episode": np.asarray(episode),
        "reward": np.asarray(reward, dtype=np.float64),
        "pscore": np.asarray(pscore, dtype=np.float64),
        "target_prob": np.asarray(target_prob, dtype=np.float64),
    }
    lengths = {name: a.shape for name, a in arrays.items()}
    if any(a.ndim != 1 for a in arrays.values()) or len({a.shape for a in arrays.values()}) > 1:
        shown = ", ".join(f"{name} {shape}" for name, shape in lengths.items())
        raise ConfigError(f"the logged arrays must be 1-D of one length; got {shown}")
    n = len(arrays["reward"])
    if n == 0:
        raise ConfigError("the logged dataset has no steps: nothing to estimate from")
    ep = arrays["episode"]
    if not np.issubdtype(ep.dtype, np.integer):
        raise ConfigError(f"`episode` must hold integer episode ids, got dtype {ep.dtype}")
    starts = np.flatnonzero(np.r_[True, ep[1:] != ep[:-1]])
    if len(np.unique(ep)) != len(starts):
        raise ConfigError(
            "`episode` ids must be contiguous (each episode's steps together, in order); "
            "an episode id comes back after another episode"
        )
    for name in ("reward", "pscore", "target_prob"):
        bad = np.flatnonzero(~np.isfinite(arrays[name]))
        if bad.size:
            raise ConfigError(f"`{name}` has a non-finite value at row {bad[0]} ({bad.size} rows)")
    ps = arrays["pscore"]
    bad = np.flatnonzero((ps <= 0) | (ps > 1))
    if bad.size:
        raise ConfigError(
            f"`pscore` must be in (0, 1] (the logging policy's probability of the logged "
            f"action), got {ps[bad[0]]!r} at row {bad[0]} ({bad.size} rows): importance "
            "weights divide by it"
        )
    tp = arrays["target_prob"]
    bad = np.flatnonzero((tp < 0) | (tp > 1))
    if bad.size:
        raise ConfigError(
            f"target probabilities must be in [0, 1], got {tp[bad[0]]!r} at row {bad[0]}"
        )
    if not (tp > 0).any():
        raise ConfigError(
            "the target policy gives probability 0 to every logged action: the logs hold "
            "no action it could take, so no off-policy estimate exists (soften it, e.g. "
            "oracle:0.1, or log with a policy that overlaps it)"
        )
    return ep, arrays["reward"], ps, tp


def check_model_values(n: int, **values: np.ndarray) -> list[np.ndarray]:
    """Model predictions as float arrays of length ``n``, finite.

    Raises:
        ConfigError: Naming the array of the wrong shape or with a non-finite value.
    """
    out = []
    for name, value in values.items():
        a = np.asarray(value, dtype=np.float64)
        if a.shape != (n,):
            raise ConfigError(
                f"`{name}` must have shape ({n},) like the logged steps, got {a.shape}"
            )
        if not np.isfinite(a).all():
            raise ConfigError(f"`{name}` has a non-finite value")
        out.append(a)
    return out


# ------------------------------------------------------------------ episode layout
def episode_bounds(episode: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first row, length) of each episode of contiguous ``episode`` ids."""
    starts = np.flatnonzero(np.r_[True, episode[1:] != episode[:-1]])
    lengths = np.diff(np.r_[starts, len(episode)])
    return starts, lengths


def padded(episode: np.ndarray, values: np.ndarray, fill: str | float = 0.0) -> np.ndarray:
    """``values`` as an (episodes, longest) matrix, row e = episode e's steps in order.

    Args:
        episode: (n,) contiguous episode ids.
        values: (n,) one value per step.
        fill: The value past an episode's end, or ``"last"`` to repeat its last value.
    """
    starts, lengths = episode_bounds(episode)
    t = np.arange(len(episode)) - np.repeat(starts, lengths)
    e = np.repeat(np.arange(len(starts)), lengths)
    out = np.zeros((len(starts), int(lengths.max())))
    if fill == "last":
        last = values[starts + lengths - 1]
        out[:] = last[:, None]
    else:
        out[:] = float(fill)
    out[e, t] = values
    return out


def episode_sums(episode: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per-episode sums of ``values``: (episodes,)."""
    starts, _ = episode_bounds(episode)
    return np.add.reduceat(np.asarray(values, dtype=np.float64), starts)


def cumulative_ratios(episode: np.ndarray, ratios: np.ndarray) -> np.ndarray:
    """``ρ_{0:t} = Π_{u≤t} w_u`` along each episode, per row: (n,)."""
    starts, lengths = episode_bounds(episode)
    mat = padded(episode, ratios, fill=1.0)
    cum = np.cumprod(mat, axis=1)
    t = np.arange(len(episode)) - np.repeat(starts, lengths)
    return cum[np.repeat(np.arange(len(starts)), lengths), t]


# ------------------------------------------------------------------ the bootstrap
def ratio_estimate(
    name: str,
    num: np.ndarray,
    den: np.ndarray,
    reps: int = DEFAULT_REPS,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> OPEEstimate:
    """``Σ_k (Σ_e num[e, k]) / (Σ_e den[e, k])`` and its percentile bootstrap interval.

    Args:
        name: The estimator's key.
        num: (episodes,) or (episodes, K) per-episode numerators.
        den: The same shape: per-episode denominators.
        reps: Bootstrap resamples of the episodes (with replacement).
        seed: Seed of the resampling.
        confidence: Coverage of the interval.
    """
    num = np.asarray(num, dtype=np.float64).reshape(len(num), -1)
    den = np.asarray(den, dtype=np.float64).reshape(len(den), -1)
    value = float(_ratios(num.sum(axis=0)[None], den.sum(axis=0)[None])[0])
    episodes = len(num)
    rng = np.random.default_rng(seed)
    stats = []
    done = 0
    while done < reps:
        size = min(_CHUNK, reps - done)
        counts = rng.multinomial(episodes, np.full(episodes, 1.0 / episodes), size=size)
        stats.append(_ratios(counts @ num, counts @ den))
        done += size
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(np.concatenate(stats), [tail, 100 - tail])
    return OPEEstimate(name, value, float(low), float(high))


def _ratios(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Row sums of ``num / den`` (0 where ``den`` is 0): (rows,)."""
    safe = np.where(den == 0, 1.0, den)
    return np.where(den == 0, 0.0, num / safe).sum(axis=1)


# ------------------------------------------------------------------ per-decision
def ips(episode, reward, pscore, target_prob, reps=DEFAULT_REPS, seed=0) -> OPEEstimate:
    """Inverse propensity scoring: ``(1/n) Σ_i w_i r_i``, per logged step."""
    ep, r, ps, tp = check_logged(episode, reward, pscore, target_prob)
    w = tp / ps
    _, lengths = episode_bounds(ep)
    return ratio_estimate("ips", episode_sums(ep, w * r), lengths, reps, seed)


def snips(episode, reward, pscore, target_prob, reps=DEFAULT_REPS, seed=0) -> OPEEstimate:
    """Self-normalised IPS: ``Σ_i w_i r_i / Σ_i w_i``, per logged step."""
    ep, r, ps, tp = check_logged(episode, reward, pscore, target_prob)
    w = tp / ps
    return ratio_estimate("snips", episode_sums(ep, w * r), episode_sums(ep, w), reps, seed)


def direct_method(episode, reward, pscore, target_prob, r_target, reps=DEFAULT_REPS, seed=0):
    """Direct method: ``(1/n) Σ_i r̂(s_i, π_e)`` (``r_target[i] = Σ_a π_e(a|s_i) r̂(s_i, a)``).

    ``reward``, ``pscore`` and ``target_prob`` are only checked (the same inputs as the
    other estimators).
    """
    ep, _, _, _ = check_logged(episode, reward, pscore, target_prob)
    (rt,) = check_model_values(len(ep), r_target=r_target)
    _, lengths = episode_bounds(ep)
    return ratio_estimate("dm", episode_sums(ep, rt), lengths, reps, seed)


def doubly_robust(
    episode, reward, pscore, target_prob, r_logged, r_target, reps=DEFAULT_REPS, seed=0
) -> OPEEstimate:
    """Doubly robust: ``(1/n) Σ_i [r̂(s_i, π_e) + w_i (r_i − r̂(s_i, a_i))]``."""
    ep, r, ps, tp = check_logged(episode, reward, pscore, target_prob)
    rl, rt = check_model_values(len(ep), r_logged=r_logged, r_target=r_target)
    terms = rt + tp / ps * (r - rl)
    _, lengths = episode_bounds(ep)
    return ratio_estimate("dr", episode_sums(ep, terms), lengths, reps, seed)


# ------------------------------------------------------------------ session-level
def pdis(episode, reward, pscore, target_prob, reps=DEFAULT_REPS, seed=0) -> OPEEstimate:
    """Per-decision importance sampling: ``(1/E) Σ_e Σ_t ρ_{0:t} r_t``."""
    ep, r, ps, tp = check_logged(episode, reward, pscore, target_prob)
    rho = cumulative_ratios(ep, tp / ps)
    sums = episode_sums(ep, rho * r)
    return ratio_estimate("pdis", sums, np.ones(len(sums)), reps, seed)


def wpdis(episode, reward, pscore, target_prob, reps=DEFAULT_REPS, seed=0) -> OPEEstimate:
    """Weighted PDIS: ``Σ_t Σ_e ρ_{0:t} r_t / Σ_e ρ_{0:t}`` (ended sessions absorbing)."""
    ep, r, ps, tp = check_logged(episode, reward, pscore, target_prob)
    rho = cumulative_ratios(ep, tp / ps)
    num = padded(ep, rho * r)
    den = padded(ep, rho, fill="last")
    return ratio_estimate("wpdis", num, den, reps, seed)


def sequential_dr(
    episode, reward, pscore, target_prob, q_logged, v_target, reps=DEFAULT_REPS, seed=0
) -> OPEEstimate:
    """Sequential doubly robust (Jiang & Li 2016), unrolled.

    ``(1/E) Σ_e Σ_t [ρ_{0:t} (r_t − Q̂(s_t, a_t)) + ρ_{0:t−1} V̂(s_t)]``, with
    ``q_logged[i] = Q̂(s_i, a_i)`` and ``v_target[i] = Σ_a π_e(a|s_i) Q̂(s_i, a)``.
    """
    ep, r, ps, tp = check_logged(episode, reward, pscore, target_prob)
    q, v = check_model_values(len(ep), q_logged=q_logged, v_target=v_target)
    rho = cumulative_ratios(ep, tp / ps)
    prev = _previous(ep, rho)
    sums = episode_sums(ep, rho * (r - q) + prev * v)
    return ratio_estimate("sdr", sums, np.ones(len(sums)), reps, seed)


def weighted_dr(
    episode, reward, pscore, target_prob, q_logged, v_target, reps=DEFAULT_REPS, seed=0
) -> OPEEstimate:
    """Weighted doubly robust (Thomas & Brunskill 2016): sequential DR, ratios normalised.

    ``Σ_t [Σ_e ρ_{0:t} (r_t − Q̂_t) / Σ_e ρ_{0:t} + Σ_e ρ_{0:t−1} V̂_t / Σ_e ρ_{0:t−1}]``.
    """
    ep, r, ps, tp = check_logged(episode, reward, pscore, target_prob)
    q, v = check_model_values(len(ep), q_logged=q_logged, v_target=v_target)
    rho = cumulative_ratios(ep, tp / ps)
    prev = _previous(ep, rho)
    num = np.concatenate([padded(ep, rho * (r - q)), padded(ep, prev * v)], axis=1)
    den_rho = padded(ep, rho, fill="last")
    # ρ_{0:t−1}: 1 at t = 0, then ρ_{0:t} shifted (an ended episode's frozen at its last)
    den_prev = np.concatenate([np.ones((len(den_rho), 1)), den_rho[:, :-1]], axis=1)
    den = np.concatenate([den_rho, den_prev], axis=1)
    return ratio_estimate("wdr", num, den, reps, seed)


def _previous(episode: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """``ρ_{0:t−1}`` per row (1 at each episode's first step)."""
    starts, _ = episode_bounds(episode)
    prev = np.r_[1.0, rho[:-1]]
    prev[starts] = 1.0
    return prev


def estimate(
    name: str,
    episode: np.ndarray,
    reward: np.ndarray,
    pscore: np.ndarray,
    target_prob: np.ndarray,
    models: dict[str, np.ndarray] | None = None,
    reps: int = DEFAULT_REPS,
    seed: int = 0,
) -> OPEEstimate:
    """Run estimator ``name`` (``ESTIMATORS``) with the model values it needs.

    Args:
        name: The estimator's key.
        episode: (n,) episode ids, each episode's steps together and in order.
        reward: (n,) logged rewards.
        pscore: (n,) the logging policy's probabilities of the logged actions.
        target_prob: (n,) the target's probabilities of the logged actions.
        models: ``r_logged``, ``r_target`` (``dm``, ``dr``), ``q_logged``, ``v_target``
            (``sdr``, ``wdr``): see ``experiments.ope_models.fit_models``.
        reps: Bootstrap resamples.
        seed: Seed of the resampling.

    Raises:
        ConfigError: An unknown estimator, a missing model value, or bad input.
    """
    base = (episode, reward, pscore, target_prob)
    m = models or {}

    def need(*keys: str) -> list[np.ndarray]:
        missing = [k for k in keys if k not in m]
        if missing:
            raise ConfigError(f"estimator {name!r} needs model values {', '.join(missing)}")
        return [m[k] for k in keys]

    if name == "ips":
        return ips(*base, reps=reps, seed=seed)
    if name == "snips":
        return snips(*base, reps=reps, seed=seed)
    if name == "dm":
        return direct_method(*base, *need("r_target"), reps=reps, seed=seed)
    if name == "dr":
        return doubly_robust(*base, *need("r_logged", "r_target"), reps=reps, seed=seed)
    if name == "pdis":
        return pdis(*base, reps=reps, seed=seed)
    if name == "wpdis":
        return wpdis(*base, reps=reps, seed=seed)
    if name == "sdr":
        return sequential_dr(*base, *need("q_logged", "v_target"), reps=reps, seed=seed)
    if name == "wdr":
        return weighted_dr(*base, *need("q_logged", "v_target"), reps=reps, seed=seed)
    raise ConfigError(unknown_name_message("estimator", str(name), ESTIMATORS))


def rmse(errors: np.ndarray) -> float:
    """Root mean squared error of estimates minus truths (``nan`` for none)."""
    errors = np.asarray(errors, dtype=np.float64)
    return math.sqrt(float(np.mean(errors**2))) if errors.size else math.nan
