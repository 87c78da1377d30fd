"""The fitted world's listener models, fitted from plays: response calibration, repeats, leave.

The two towers themselves are trained by
:func:`musicrec_gym.sim.response_training.train_response`; here are their state inputs,
their Platt recalibration, the repeat table and the logistic leave hazard.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from musicrec_gym.plays import Plays
from musicrec_gym.sim.fitted import WINDOW, FittedLeave
from musicrec_gym.sim.fitted_response import REPEAT_CELLS, TwoTowerResponse, repeat_cell

__all__ = ["fit_leave", "fit_repeats", "recalibrate"]

_LEAVE_C = 100.0  # weak L2 penalty of the leave model's logistic regression
REPEAT_PRIOR = 20.0
"""Pseudo-plays at the pooled repeat listen rate added to each repeat-table cell."""


def recalibrate(
    weights: dict[str, np.ndarray],
    code_dim: int,
    max_length: int,
    codes: np.ndarray,
    positions: np.ndarray,
    rows: np.ndarray,
    y: np.ndarray,
    session: np.ndarray,
) -> tuple[dict[str, np.ndarray], tuple[float, float]]:
    """Platt-scale the two-tower logit on its own training plays and fold it into the weights.

    Adam's last noisy steps leave the mean prediction off by a few points of listen rate,
    and a simulator that replays its own listens compounds such a bias. ``logit' = a
    logit + b``, fitted by logistic regression on the training plays only, removes it:
    ``a`` scales the state tower's outputs and the track biases, ``b`` joins the state
    bias, so the inner-product form is kept.

    Returns:
        The corrected weights and ``(a, b)``.
    """
    from sklearn.linear_model import LogisticRegression

    table = np.zeros(REPEAT_CELLS)
    resp = TwoTowerResponse({**weights, "repeat_logit": table}, code_dim, max_length)
    logit = resp.logits(codes, positions, rows, session=session)
    lr = LogisticRegression(C=1e6, max_iter=1000).fit(logit[:, None], y)
    a, b = float(lr.coef_[0, 0]), float(lr.intercept_[0])
    out = dict(weights)
    out["state_w2"] = weights["state_w2"] * a
    out["state_b2"] = weights["state_b2"] * a
    out["state_b2"][-1] += b
    out["track_bias"] = weights["track_bias"] * a
    return out, (a, b)


def fit_repeats(
    count: np.ndarray, last_listened: np.ndarray, listened: np.ndarray, late: np.ndarray
) -> tuple[np.ndarray, dict[str, Any]]:
    """The repeat table: the logit of the listen rate of repeats, per cell, from the logs.

    Cells are (earlier plays 1, 2, 3+) x (last play listened); each cell's rate is its
    listens plus :data:`REPEAT_PRIOR` pseudo-plays at the pooled repeat rate, over its
    plays plus the same, so a cell with few plays leans on the pool.

    Args:
        count: Earlier plays of each play's track this session (``plays.repeat_features``).
        last_listened: Whether that track's last earlier play was listened.
        listened: Each play's listen flag.
        late: Whether each play is at position 6 or later (for the report's
            ``late_share``, which the realism replay's stand-in logging policy repeats at).

    Returns:
        ``(3, 2)`` logits, and a report (plays, listen rate per cell and pooled).
    """
    rep = np.asarray(count) > 0
    y = np.asarray(listened, np.float64)[rep]
    pooled = float(y.mean()) if y.size else 0.5
    idx = repeat_cell(np.asarray(count)[rep], np.asarray(last_listened)[rep])
    plays = np.zeros(REPEAT_CELLS)
    listens = np.zeros(REPEAT_CELLS)
    np.add.at(plays, idx, 1.0)
    np.add.at(listens, idx, y)
    rate = (listens + REPEAT_PRIOR * pooled) / (plays + REPEAT_PRIOR)
    rate = np.clip(rate, 1e-4, 1 - 1e-4)
    report = {
        "repeat_plays": int(rep.sum()),
        "repeat_share": float(rep.mean()) if rep.size else 0.0,
        "late_share": float(rep[late].mean()) if late.any() else 0.0,
        "pooled_listen_rate": pooled,
        "cell_plays": plays.astype(int).tolist(),
        "cell_listen_rate": rate.tolist(),
        "cells": "rows: 1, 2, 3+ earlier plays; columns: last play skipped, listened",
    }
    return np.log(rate / (1 - rate)), report


def fit_leave(plays: Plays, max_length: int, skip_window: int) -> tuple[FittedLeave, dict]:
    """Fit the leave hazard on session lengths (positions 6 .. max_length - 1).

    A session that reached position ``p`` ended there with probability
    ``sigmoid(a_p + per_skip * skips)``; sessions of ``max_length`` plays were cut by
    the cap, not ended, so they count as survivors. Positions with no ending in the logs
    get hazard 0. The skip term is kept only when its fitted coefficient is positive
    (skips drive listeners away); otherwise the model is refitted on position alone.

    Returns:
        The model and a report (the skip coefficient as fitted, and what was kept).
    """
    from sklearn.linear_model import LogisticRegression

    length = np.repeat(plays.lengths, plays.lengths)
    at = np.flatnonzero((plays.position > WINDOW) & (plays.position < max_length))
    pos = plays.position[at]
    ended = (pos == length[at]).astype(np.int64)
    win = at[:, None] + np.arange(-skip_window + 1, 1)
    skips = skip_window - plays.listened[win].sum(axis=1).astype(np.float64)
    positions = np.arange(WINDOW + 1, max_length)
    events = np.array([ended[pos == p].sum() for p in positions])
    active = positions[events > 0]
    logit = np.full(max_length + 1, -np.inf)
    report: dict[str, Any] = {"rows": len(at), "endings": int(ended.sum())}
    if len(active) == 0:
        report.update(per_skip_fitted=0.0, per_skip=0.0)
        return FittedLeave(logit, 0.0, skip_window), report
    rows = np.isin(pos, active)
    onehot = (pos[rows, None] == active[None, :]).astype(np.float64)
    y = ended[rows]

    def fit(x: np.ndarray) -> np.ndarray:
        if y.min() == y.max():  # every row ended (or none did): no regression possible
            return np.append(np.full(len(active), 30.0 if y[0] else -30.0), 0.0)[: x.shape[1]]
        lr = LogisticRegression(C=_LEAVE_C, fit_intercept=False, max_iter=1000)
        return lr.fit(x, y).coef_[0]

    coef = fit(np.concatenate([onehot, skips[rows, None]], axis=1))
    per_skip = float(coef[-1])
    report["per_skip_fitted"] = per_skip
    if per_skip <= 0:
        coef = np.append(fit(onehot), 0.0)
        per_skip = 0.0
    report["per_skip"] = per_skip
    logit[active] = coef[:-1]
    return FittedLeave(logit, per_skip, skip_window), report
