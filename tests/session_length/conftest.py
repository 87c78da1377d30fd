"""Tiny session histories shared by the session-length tests."""

import numpy as np
import pandas as pd
import pytest

from musicrec_gym.session_length.summary import summarise

T0 = pd.Timestamp("2009-01-01", tz="UTC")


def toy_plays(n_users: int = 12, n_sessions: int = 14, seed: int = 0) -> pd.DataFrame:
    """Plays of users whose sessions have a user-specific number of 4-minute tracks.

    User ``u`` plays ``2 + 3 * (u % 4)`` tracks per session, plus or minus one, so the
    user's history predicts the next session well and the global mean does not.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        t = T0 + pd.Timedelta(hours=u)
        for _ in range(n_sessions):
            n_tracks = 2 + 3 * (u % 4) + int(rng.integers(-1, 2))
            for _ in range(max(n_tracks, 1)):
                rows.append((f"user{u:02d}", t, f"t{int(rng.integers(0, 50))}"))
                t += pd.Timedelta(minutes=4)
            t += pd.Timedelta(days=1)
    return pd.DataFrame(rows, columns=["user_id", "timestamp", "track_id"])


def toy_profiles(n_users: int = 12) -> pd.DataFrame:
    """Profiles with two clear age groups."""
    return pd.DataFrame(
        {
            "user_id": [f"user{u:02d}" for u in range(n_users)],
            "gender": ["m" if u % 2 else "f" for u in range(n_users)],
            "age": [20 + (u % 2) * 30 for u in range(n_users)],
            "country": ["SE" if u % 3 else "JP" for u in range(n_users)],
            "registered": ["Aug 13, 2006" if u % 2 else "2005-02-01" for u in range(n_users)],
        }
    )


@pytest.fixture
def toy_summary():
    """Summary rows of ``toy_plays`` with 240-second tracks."""
    durations = pd.Series(240.0, index=[f"t{i}" for i in range(50)])
    return summarise(toy_plays(), toy_profiles(), durations)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One thread: the numbers the grid gets, and fair to the shared machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
