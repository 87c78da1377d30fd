"""Policy-level fidelity: does the fitted world rank logging policies as the logs do?

Each MSSD session was logged under some policy: the ``context_type`` it was played from
(editorial playlist, the listener's own collection, the catalog, radio, charts, a
personalised playlist) and whether shuffle was on (``hist_user_behavior_is_shuffle``). A
session's group is its first play's value. The held-out sessions of each group were
replayed with the rest (:func:`musicrec_gym.realism.replay`: warm-up = the first 5
logged plays, actions = the logged next tracks, the same seeds), and the group's real
and simulated skip rates and listens per session (plays from position 6, the simulated
ones) are compared. A world that tells policies apart ranks the groups as the logs do:
Kendall's tau between the real and the simulated ranking (``scipy.stats.kendalltau``,
tau-b) is the figure, target ``>= 0.8`` with every group's skip-rate gap within 0.03.

Groups with fewer than ``min_group_sessions`` sessions are listed as "too few sessions"
and left out of the tau (their rates are too noisy to rank). A log without the column
gets a note instead of figures, and the rest of the report runs.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from musicrec_gym.plays import Plays
from musicrec_gym.realism_records import GroupFigures, Grouping, PolicyFidelity, Replay
from musicrec_gym.sim.fitted import WINDOW

__all__ = [
    "BOOTSTRAP",
    "GAP_TARGET",
    "GROUPINGS",
    "TAU_TARGET",
    "policy_fidelity",
    "policy_lines",
    "policy_markdown",
    "rank_agreement",
    "session_labels",
    "training_group_rates",
]

#: (name, log column) of each grouping of the sessions by logging policy.
GROUPINGS = (("context_type", "context_type"), ("shuffle", "hist_user_behavior_is_shuffle"))
TAU_TARGET = 0.8
GAP_TARGET = 0.03
#: Bootstrap resamples of the sessions (within each group) for the intervals.
BOOTSTRAP = 500
_TRUE = {"true", "t", "1", "yes", "y"}
_FALSE = {"false", "f", "0", "no", "n"}


def training_group_rates(frame: pd.DataFrame, plays: Plays) -> dict[str, dict[str, list]]:
    """Per grouping and group: ``[sessions, skip rate from position 6]`` of logged sessions.

    What ``musicrec fit`` stores (``fitted.json``, ``group_skip_rates``) for its training
    sessions, so the realism report can show how far the training and the held-out
    sessions agree. A grouping whose column the log lacks is left out.
    """
    out: dict[str, dict[str, list]] = {}
    session = np.repeat(np.arange(len(plays.lengths)), plays.lengths)
    late = plays.position > WINDOW
    for name, column in GROUPINGS:
        if column not in frame.columns:
            continue
        labels = session_labels(frame, plays.session_ids, column)
        groups: dict[str, list] = {}
        for group in sorted({x for x in labels if x is not None}):
            members = labels == group
            plays_in = late & members[session]
            rate = 1.0 - float(plays.listened[plays_in].mean()) if plays_in.any() else None
            groups[group] = [int(members.sum()), rate]
        out[name] = groups
    return out


def session_labels(frame: pd.DataFrame, session_ids: np.ndarray, column: str) -> np.ndarray:
    """Each session's group: the value of ``column`` at its first play.

    Args:
        frame: Loaded MSSD rows, sorted by session and position.
        session_ids: (S,) the sessions, in the replay's order.
        column: ``context_type`` (labels as written) or ``hist_user_behavior_is_shuffle``
            (a boolean: labels ``"shuffle"`` and ``"no shuffle"``).

    Returns:
        (S,) labels (object array); ``None`` where the first play has no valid value.
    """
    first = frame.drop_duplicates("session_id")
    values = pd.Series(first[column].to_numpy(), index=first["session_id"].astype(str))
    out = np.empty(len(session_ids), dtype=object)
    for i, value in enumerate(values.reindex(pd.Index(session_ids, dtype=object)).to_numpy()):
        out[i] = _label(value, column)
    return out


def _label(value: object, column: str) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    if column != "hist_user_behavior_is_shuffle":
        text = str(value).strip()
        return text or None
    if isinstance(value, bool | np.bool_):
        flag: bool | None = bool(value)
    else:
        text = str(value).strip().lower()
        flag = True if text in _TRUE else False if text in _FALSE else None
    return None if flag is None else ("shuffle" if flag else "no shuffle")


def rank_agreement(real: np.ndarray, sim: np.ndarray) -> float | None:
    """Kendall's tau-b between two rankings of the same groups.

    Args:
        real: One figure per group (e.g. the real skip rates).
        sim: The same groups' simulated figures.

    Returns:
        Tau in [-1, 1]; ``None`` with fewer than 2 groups or when a side is constant
        (tau is undefined then).

    Example:
        >>> rank_agreement(np.array([0.1, 0.2, 0.3]), np.array([0.2, 0.25, 0.4]))
        1.0
    """
    from scipy.stats import kendalltau

    if len(real) < 2:
        return None
    tau = float(kendalltau(real, sim).statistic)
    return None if math.isnan(tau) else tau


def _session_totals(rep: Replay, predicted: np.ndarray, more: Sequence[Replay] = ()) -> np.ndarray:
    """Per session, positions 6 on: (S, 6) sums to pool into group rates.

    Columns: real listens, real plays, simulated listens, simulated plays (each the mean
    over ``rep`` and ``more``, replays of the same sessions), predicted listen
    probability, predicted plays.
    """

    def sums(flags: np.ndarray) -> list[np.ndarray]:
        late = flags[:, WINDOW:]
        return [np.nansum(late, axis=1), (~np.isnan(late)).sum(axis=1).astype(np.float64)]

    sim = np.mean([sums(r.sim_flags) for r in (rep, *more)], axis=0)
    cols = [*sums(rep.real_flags), sim[0], sim[1], *sums(predicted)]
    return np.stack(cols, axis=1).astype(np.float64)


def _rates(t: np.ndarray, n: int | np.ndarray) -> tuple[Any, Any, Any, Any, Any]:
    """Summed totals (..., 6) -> real skip, simulated skip, predicted skip, listens/session."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return (
            1 - t[..., 0] / t[..., 1],
            1 - t[..., 2] / t[..., 3],
            1 - t[..., 4] / t[..., 5],
            t[..., 0] / n,
            t[..., 2] / n,
        )


def _figures(totals: np.ndarray, name: str, included: bool, boot: np.ndarray) -> GroupFigures:
    n = len(totals)
    real, sim, pred, real_listens, sim_listens = _rates(totals.sum(axis=0), n)
    gaps = boot[:, 1] - boot[:, 0]
    gaps = gaps[~np.isnan(gaps)]
    low, high = np.quantile(gaps, [0.025, 0.975]) if len(gaps) else (math.nan, math.nan)
    return GroupFigures(
        name=name,
        sessions=n,
        included=included,
        real_skip_rate=float(real),
        sim_skip_rate=float(sim),
        skip_rate_gap=float(sim - real),
        gap_low=float(low),
        gap_high=float(high),
        predicted_skip_rate=float(pred),
        real_listens=float(real_listens),
        sim_listens=float(sim_listens),
    )


def _bootstrap(totals: np.ndarray, rng: np.random.Generator, n_boot: int) -> np.ndarray:
    """(n_boot, 5) rates of the group's sessions resampled with replacement."""
    pick = rng.integers(0, len(totals), size=(n_boot, len(totals)))
    return np.stack(_rates(totals[pick].sum(axis=1), len(totals)), axis=1)


def _unranked(
    name: str, column: str, groups: tuple[GroupFigures, ...], unlabelled: int, note: str | None
) -> Grouping:
    """A grouping without a tau (missing column, or fewer than 2 groups large enough)."""
    return Grouping(
        name=name,
        column=column,
        groups=groups,
        unlabelled_sessions=unlabelled,
        tau_skip=None,
        tau_skip_low=None,
        tau_skip_high=None,
        tau_listens=None,
        tau_predicted=None,
        order_agrees=None,
        max_abs_gap=None,
        target_met=None,
        note=note,
    )


def _grouping(
    frame: pd.DataFrame,
    session_ids: np.ndarray,
    totals: np.ndarray,
    name: str,
    column: str,
    min_sessions: int,
    rng: np.random.Generator,
    train: dict[str, list],
) -> Grouping:
    if column not in frame.columns:
        note = f"cannot be computed: the held-out log has no `{column}` column"
        return _unranked(name, column, (), 0, note)
    labels = session_labels(frame, session_ids, column)
    unlabelled = int(sum(label is None for label in labels))
    names = sorted({label for label in labels if label is not None})
    groups, boots = [], {}
    for group in names:
        members = totals[labels == group]
        boots[group] = _bootstrap(members, rng, BOOTSTRAP)
        figures = _figures(members, group, len(members) >= min_sessions, boots[group])
        rate = train.get(group, [0, None])[1]
        if rate is not None:
            figures = dataclasses.replace(figures, train_skip_rate=float(rate))
        groups.append(figures)
    groups.sort(key=lambda g: (not g.included, g.real_skip_rate, g.name))
    ranked = [g for g in groups if g.included and not math.isnan(g.sim_skip_rate)]
    note = None
    if not names:
        note = f"cannot be computed: no session has a value in `{column}`"
    elif len(ranked) < 2:
        note = (
            f"no Kendall tau: {len(ranked)} group(s) with >= {min_sessions} sessions, "
            "2 needed (lower --min-group-sessions or replay a larger held-out log)"
        )
    if len(ranked) < 2:
        return _unranked(name, column, tuple(groups), unlabelled, note)
    table = np.array([[g.real_skip_rate, g.sim_skip_rate, g.predicted_skip_rate,
                       g.real_listens, g.sim_listens] for g in ranked])  # fmt: skip
    tau_skip = rank_agreement(table[:, 0], table[:, 1])
    spread = np.stack([boots[g.name] for g in ranked], axis=1)  # (n_boot, groups, 5)
    taus = np.array([rank_agreement(b[:, 0], b[:, 1]) for b in spread], dtype=np.float64)
    taus = taus[~np.isnan(taus)]
    low, high = np.quantile(taus, [0.025, 0.975]) if len(taus) else (None, None)
    gap = max(abs(g.skip_rate_gap) for g in ranked)
    met = tau_skip is not None and tau_skip >= TAU_TARGET and gap <= GAP_TARGET
    return Grouping(
        name=name,
        column=column,
        groups=tuple(groups),
        unlabelled_sessions=unlabelled,
        tau_skip=tau_skip,
        tau_skip_low=None if low is None else float(low),
        tau_skip_high=None if high is None else float(high),
        tau_listens=rank_agreement(table[:, 3], table[:, 4]),
        tau_predicted=rank_agreement(table[:, 0], table[:, 2]),
        order_agrees=None if tau_skip is None else bool(tau_skip > 1 - 1e-9),
        max_abs_gap=gap,
        target_met=met,
        note=None,
        tau_train=_train_tau(ranked, "real_skip_rate"),
        tau_sim_train=_train_tau(ranked, "sim_skip_rate"),
    )


def _train_tau(ranked: list[GroupFigures], field: str) -> float | None:
    """Kendall's tau of the training sessions' real skip rates against ``field``'s."""
    known = [g for g in ranked if not math.isnan(g.train_skip_rate)]
    if len(known) < 2:
        return None
    return rank_agreement(
        np.array([g.train_skip_rate for g in known]), np.array([getattr(g, field) for g in known])
    )


def policy_fidelity(
    frame: pd.DataFrame,
    session_ids: np.ndarray,
    rep: Replay,
    predicted: np.ndarray,
    min_group_sessions: int,
    seed: int = 0,
    more: Sequence[Replay] = (),
    train_rates: dict[str, dict[str, list]] | None = None,
) -> PolicyFidelity:
    """Group the replayed held-out sessions by logging policy and compare real with simulated.

    Args:
        frame: The held-out rows that were replayed (loaded MSSD, sorted).
        session_ids: (S,) the replayed sessions, in the order of ``rep``'s rows.
        rep: Their replay.
        predicted: (S, max_length) the response model's listen probability of each real
            play given its true history (NaN where none), for the teacher-forced column.
        min_group_sessions: Sessions a group needs to enter the Kendall tau.
        seed: Seed of the bootstrap (sessions resampled within each group).
        more: Further replays of the same sessions: the simulated figures average them
            with ``rep`` per session.
        train_rates: The training sessions' group figures (:func:`training_group_rates`,
            as the fit stored them), for the "training" column and ``tau_train``.

    Returns:
        One :class:`Grouping` per entry of :data:`GROUPINGS`; a missing column gives a
        grouping with a note and no groups.
    """
    totals = _session_totals(rep, predicted, more)
    return PolicyFidelity(
        min_group_sessions=min_group_sessions,
        tau_target=TAU_TARGET,
        gap_target=GAP_TARGET,
        bootstrap=BOOTSTRAP,
        groupings=tuple(
            _grouping(
                frame,
                session_ids,
                totals,
                name,
                column,
                min_group_sessions,
                np.random.default_rng([seed, 15, k]),  # one stream per grouping
                (train_rates or {}).get(name, {}),
            )
            for k, (name, column) in enumerate(GROUPINGS)
        ),
    )


def _f(value: float | None, spec: str = ".3f") -> str:
    return "n/a" if value is None or math.isnan(value) else format(value, spec)


def _verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def policy_markdown(policy: PolicyFidelity) -> list[str]:
    """The report's "Policy groups" section (markdown lines)."""
    lines = [
        "## Policy groups",
        "",
        "The held-out sessions grouped by the policy that logged them (a session's value is "
        "its first play's), each group's replayed sessions compared with its real ones. Skip "
        "rates and listens per session count the plays from position 6 (the simulated ones). "
        f'Groups with fewer than {policy.min_group_sessions} sessions are marked "too few '
        "sessions\" and left out of Kendall's tau. Intervals are 95% bootstrap intervals "
        f'({policy.bootstrap} resamples of each group\'s sessions). "Predicted" is the '
        "response model's skip rate on the real plays given their true histories (no replay "
        f"noise). Targets: tau by skip rate >= {policy.tau_target} with every group's "
        f"skip-rate gap within ±{policy.gap_target}.",
        "",
        "![policy groups: real vs simulated skip rate](policy_groups.png)",
        "",
    ]
    for g in policy.groupings:
        lines += [f"### {g.name} (`{g.column}`)", ""]
        if not g.groups:
            lines += [f"{g.note[0].upper()}{g.note[1:]}." if g.note else "No groups.", ""]
            continue
        lines += [
            "| group | sessions | skip rate real | simulated | gap (95% interval) | predicted "
            "| real, training sessions | listens/session real | simulated |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for x in g.groups:
            n = str(x.sessions) if x.included else f"too few sessions ({x.sessions})"
            lines.append(
                f"| {x.name} | {n} | {_f(x.real_skip_rate)} | {_f(x.sim_skip_rate)} "
                f"| {_f(x.skip_rate_gap, '+.3f')} ({_f(x.gap_low, '+.3f')} to "
                f"{_f(x.gap_high, '+.3f')}) | {_f(x.predicted_skip_rate)} "
                f"| {_f(x.train_skip_rate)} "
                f"| {_f(x.real_listens, '.2f')} | {_f(x.sim_listens, '.2f')} |"
            )
        lines.append("")
        if g.unlabelled_sessions:
            lines += [f"{g.unlabelled_sessions} session(s) without a value are in no group.", ""]
        if g.note is not None:
            lines += [f"{g.note[0].upper()}{g.note[1:]}.", ""]
            continue
        ranked = sum(x.included for x in g.groups)
        order = "" if g.order_agrees is None else (
            f"; the real and simulated orders {'agree' if g.order_agrees else 'differ'}"
        )  # fmt: skip
        tau_ok = g.tau_skip is not None and g.tau_skip >= policy.tau_target
        gap_ok = g.max_abs_gap is not None and g.max_abs_gap <= policy.gap_target
        lines += [
            f"Kendall's tau over {ranked} groups, real vs simulated ranking by skip rate: "
            f"**{_f(g.tau_skip, '.2f')}** (95% interval {_f(g.tau_skip_low, '.2f')} to "
            f"{_f(g.tau_skip_high, '.2f')}; target >= {policy.tau_target}: {_verdict(tau_ok)}"
            f"{order}); by listens per session {_f(g.tau_listens, '.2f')}; real vs predicted "
            f"skip rate {_f(g.tau_predicted, '.2f')}. Largest |skip-rate gap| "
            f"**{_f(g.max_abs_gap)}** (target <= {policy.gap_target}: {_verdict(gap_ok)}).",
            "",
        ]
        if g.tau_train is not None:
            lines += [
                f"The training sessions' real skip rates rank these groups with tau "
                f"{_f(g.tau_train, '.2f')} against the held-out ones: two real samples of the "
                "same logs agree this far, so a simulator fitted on the training sessions "
                "cannot be expected to rank the held-out groups better. Against the "
                f"training sessions, the simulated ranking has tau {_f(g.tau_sim_train, '.2f')}.",
                "",
            ]
    return lines


def policy_lines(policy: PolicyFidelity) -> list[str]:
    """One line of text per grouping: the taus, the largest gap, the targets."""

    def tau(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.2f}"

    lines = []
    for g in policy.groupings:
        if g.note is not None:
            lines.append(f"policy groups by {g.name}: {g.note}")
            continue
        ranked = sum(x.included for x in g.groups)
        lines.append(
            f"policy groups by {g.name} ({ranked} of {len(g.groups)} with >= "
            f"{policy.min_group_sessions} sessions): Kendall tau by skip rate {tau(g.tau_skip)} "
            f"(95% interval {tau(g.tau_skip_low)} to {tau(g.tau_skip_high)}), by listens/session "
            f"{tau(g.tau_listens)}; max |skip gap| {_f(g.max_abs_gap)} (target tau >= "
            f"{policy.tau_target}, gap <= {policy.gap_target}: "
            f"{'met' if g.target_met else 'not met'}); training vs held-out real "
            f"tau {tau(g.tau_train)}, simulated vs training real tau {tau(g.tau_sim_train)}"
        )
    return lines
