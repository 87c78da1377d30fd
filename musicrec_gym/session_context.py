"""What a logged session was played from, as the fitted response model's session inputs.

MSSD logs say where each session was played from (``context_type``: the listener's own
collection, an editorial playlist, radio, charts, ...) and whether shuffle was on
(``hist_user_behavior_is_shuffle``). Listeners skip at different rates in each (0.45 on
radio against 0.59 in their own collection on the shared sample), so the fitted world's
state tower reads them: a one-hot of the session's context type and the shuffle flag,
each taken from the session's first play. A fitted world's session keeps the context of
the logged session it starts from. A log without these columns gives no session inputs;
a context type the training logs never showed gives all zeros.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CONTEXT_COLUMN = "context_type"
SHUFFLE_COLUMN = "hist_user_behavior_is_shuffle"
SHUFFLE_NAME = "shuffle"


def context_names(frame: pd.DataFrame) -> list[str]:
    """The session inputs a (training) log supports: ``context_type=<value>``..., ``shuffle``."""
    names = []
    if CONTEXT_COLUMN in frame.columns:
        values = sorted(frame[CONTEXT_COLUMN].astype(str).unique())
        names += [f"{CONTEXT_COLUMN}={v}" for v in values]
    if SHUFFLE_COLUMN in frame.columns:
        names.append(SHUFFLE_NAME)
    return names


def session_features(frame: pd.DataFrame, names: list[str], session_ids: np.ndarray) -> np.ndarray:
    """``(len(session_ids), len(names))`` session inputs from each session's first play.

    Args:
        frame: A loaded log (``session_id`` and the context columns, where ``names`` has
            them).
        names: The inputs, as :func:`context_names` gave them for the training log.
        session_ids: The sessions, in the order wanted.
    """
    out = np.zeros((len(session_ids), len(names)), np.float64)
    if not names:
        return out
    first = frame.groupby(frame["session_id"].astype(str), sort=False).first()
    first = first.reindex(pd.Index(np.asarray(session_ids, dtype=object).astype(str)))
    for j, name in enumerate(names):
        if name == SHUFFLE_NAME and SHUFFLE_COLUMN in first.columns:
            out[:, j] = first[SHUFFLE_COLUMN].fillna(False).astype(bool).to_numpy(np.float64)
        elif name.startswith(f"{CONTEXT_COLUMN}=") and CONTEXT_COLUMN in first.columns:
            value = name.split("=", 1)[1]
            out[:, j] = (first[CONTEXT_COLUMN].astype(str) == value).to_numpy(np.float64)
    return out
