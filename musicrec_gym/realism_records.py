"""The typed records of ``musicrec realism``: the replay, the policy groups, the summary.

Shared by :mod:`musicrec_gym.realism` (which fills them), :mod:`musicrec_gym.realism_policy`
and :mod:`musicrec_gym.realism_plots` (which read them), so none of those imports another.
Positions are 0-based in the arrays: column 5 is position 6, the first simulated play.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["GroupFigures", "Grouping", "PolicyFidelity", "RealismSummary", "Replay"]


@dataclass(frozen=True)
class Replay:
    """Real and simulated held-out sessions.

    Attributes:
        real_lengths: (S,) logged session lengths.
        sim_lengths: (S,) simulated session lengths (warm-up included).
        real_skip: (max_length,) real skip rate by position (NaN where no play).
        sim_skip: (max_length,) simulated skip rate by position.
        real_plays: (max_length,) real plays by position.
        sim_plays: (max_length,) simulated plays by position.
        track_real: Per logged play from position 6: real listen flag.
        track_sim: Per logged play from position 6 the simulation reached: simulated flag
            (NaN where the simulated session had ended).
        real_flags: (S, max_length) real listen flag of each session's play at each
            position, NaN where the session had no play there.
        sim_flags: (S, max_length) the same for the simulated sessions.
        real_repeat: (S, max_length) the real play's track was played earlier in the
            same session (False where there is no play).
        sim_repeat: (S, max_length) the same for the simulated plays: the logged tracks
            while the logged session lasts, then the filler draws (a draw of the shared
            rare-track row never counts as a repeat).
    """

    real_lengths: np.ndarray
    sim_lengths: np.ndarray
    real_skip: np.ndarray
    sim_skip: np.ndarray
    real_plays: np.ndarray
    sim_plays: np.ndarray
    track_real: np.ndarray
    track_sim: np.ndarray
    real_flags: np.ndarray
    sim_flags: np.ndarray
    real_repeat: np.ndarray
    sim_repeat: np.ndarray


@dataclass(frozen=True)
class GroupFigures:
    """One group of held-out sessions (one logging policy), real against simulated.

    Rates and listens count the plays from position 6, the ones the simulator samples.

    Attributes:
        name: The group's value, e.g. ``"radio"`` or ``"shuffle"``.
        sessions: Replayed sessions in the group.
        included: ``sessions >= min_group_sessions``: the group is in the Kendall tau.
        real_skip_rate: Real skip rate (NaN if the group has no play from position 6).
        sim_skip_rate: Simulated skip rate.
        skip_rate_gap: ``sim_skip_rate - real_skip_rate``.
        gap_low: 2.5th percentile of the gap over the bootstrap (the group's sessions
            resampled with replacement, their real and simulated plays together).
        gap_high: 97.5th percentile.
        predicted_skip_rate: 1 - the response model's mean listen probability of the real
            plays given their true histories (teacher forced: no replay noise).
        real_listens: Real listens per session.
        sim_listens: Simulated listens per session.
        train_skip_rate: The group's real skip rate in the *training* sessions (what the
            fit saw; ``fitted.json``'s ``group_skip_rates``), NaN if unknown.
    """

    name: str
    sessions: int
    included: bool
    real_skip_rate: float
    sim_skip_rate: float
    skip_rate_gap: float
    gap_low: float
    gap_high: float
    predicted_skip_rate: float
    real_listens: float
    sim_listens: float
    train_skip_rate: float = math.nan


@dataclass(frozen=True)
class Grouping:
    """The held-out sessions split by one column of the log, and the rank agreement.

    Attributes:
        name: ``"context_type"`` or ``"shuffle"``.
        column: The log column the groups come from (a session's value is its first
            play's).
        groups: Every group found, the too-small ones included (``included`` False),
            the included ones first, each part ordered by real skip rate, then name.
        unlabelled_sessions: Sessions whose first play has no (valid) value; in no group.
        tau_skip: Kendall's tau between the real and simulated skip rates of the included
            groups (``None`` with fewer than 2 included groups, or a constant side).
        tau_skip_low: 2.5th percentile of ``tau_skip`` over the bootstrap.
        tau_skip_high: 97.5th percentile.
        tau_listens: The same for listens per session.
        tau_predicted: Kendall's tau between the real and the teacher-forced predicted
            skip rates (how the response model ranks the groups, without replay noise).
        order_agrees: Whether the real and simulated skip-rate orders of the included groups
            agree for every pair (``tau_skip == 1``); ``None`` where ``tau_skip`` is.
        max_abs_gap: Largest ``|skip_rate_gap|`` over the included groups.
        target_met: ``tau_skip >= 0.8`` and ``max_abs_gap <= 0.03`` (``None`` if not
            computed).
        note: Why the tau or the whole grouping could not be computed, else ``None``.
        tau_train: Kendall's tau between the training and the held-out sessions' real
            skip rates of the included groups: how well two real samples of the same
            logs agree, the most a simulator fitted on the training sessions can be
            expected to reach (``None`` if unknown).
        tau_sim_train: Kendall's tau between the training sessions' real skip rates and
            the simulated ones: whether the simulator ranks the groups as the logs it was
            fitted on do (``None`` if unknown).
    """

    name: str
    column: str
    groups: tuple[GroupFigures, ...]
    unlabelled_sessions: int
    tau_skip: float | None
    tau_skip_low: float | None
    tau_skip_high: float | None
    tau_listens: float | None
    tau_predicted: float | None
    order_agrees: bool | None
    max_abs_gap: float | None
    target_met: bool | None
    note: str | None
    tau_train: float | None = None
    tau_sim_train: float | None = None


@dataclass(frozen=True)
class PolicyFidelity:
    """Policy-level fidelity: each grouping of the held-out sessions by logging policy.

    Attributes:
        min_group_sessions: Sessions a group needs to enter the Kendall tau.
        tau_target: The target on ``tau_skip`` (0.8).
        gap_target: The target on every included group's ``|skip_rate_gap|`` (0.03).
        bootstrap: Bootstrap resamples behind the intervals.
        groupings: One per grouping column (``context_type``, then shuffle).
    """

    min_group_sessions: int
    tau_target: float
    gap_target: float
    bootstrap: int
    groupings: tuple[Grouping, ...]


@dataclass(frozen=True)
class RealismSummary:
    """The figures of the realism report (all measured on the held-out sessions).

    Attributes:
        sessions: Held-out sessions replayed (those with more than 5 plays).
        real_skip_rate: Real skip rate, positions 6 and later.
        sim_skip_rate: Simulated skip rate, positions 6 and later.
        skip_rate_gap: ``sim_skip_rate - real_skip_rate``.
        real_mean_length: Mean real session length.
        sim_mean_length: Mean simulated session length.
        length_ks: Two-sample KS statistic of the session lengths.
        auc: Response model's AUC on held-out plays from position 6 (teacher forced).
        popularity_auc: The popularity-only model's AUC, as measured by ``musicrec fit``
            on the same held-out sessions (``None`` if the manifest lacks it).
        calibration_error: Mean |observed - predicted| over the reliability bins
            (weighted by plays).
        track_corr: Pearson correlation of per-track listen rates, real vs simulated.
        track_corr_predicted: The same against the mean predicted listen probability.
        tracks_compared: Tracks in the correlation.
        real_repeat_rate: Share of the real plays from position 6 whose track was played
            earlier in the same session.
        sim_repeat_rate: The same over the simulated plays from position 6.
        repeat_rate_gap: ``sim_repeat_rate - real_repeat_rate`` (target within ±0.02).
        real_repeat_listen_rate: Listen rate of the real repeats (NaN if none).
        sim_repeat_listen_rate: Listen rate of the simulated repeats (NaN if none).
        real_repeats: Real repeat plays from position 6.
        sim_repeats: Simulated repeat plays from position 6.
        sim_filler_plays: Simulated plays past the end of their logged session (the
            tracks drawn by training play share), from position 6.
        sim_filler_repeats: Repeats among them.
        policy_groups: Policy-level fidelity (the groups by ``context_type`` and by
            shuffle).
    """

    sessions: int
    real_skip_rate: float
    sim_skip_rate: float
    skip_rate_gap: float
    real_mean_length: float
    sim_mean_length: float
    length_ks: float
    auc: float
    popularity_auc: float | None
    calibration_error: float
    track_corr: float
    track_corr_predicted: float
    tracks_compared: int
    real_repeat_rate: float
    sim_repeat_rate: float
    repeat_rate_gap: float
    real_repeat_listen_rate: float
    sim_repeat_listen_rate: float
    real_repeats: int
    sim_repeats: int
    sim_filler_plays: int
    sim_filler_repeats: int
    policy_groups: PolicyFidelity
