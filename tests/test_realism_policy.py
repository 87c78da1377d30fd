"""``musicrec realism``: repeats and the policy groups (context type, shuffle).

The hand-made cases build a :class:`Replay` directly (no world, no fit); the others reuse
the session-wide world fitted to the shared MSSD sample and skip when it is absent. The
full report on the sample is checked in ``test_realism.py`` (its module-wide report).
"""

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy.stats import kendalltau

from musicrec_gym import realism
from musicrec_gym.data.mssd import read_mssd_log, write_mssd
from musicrec_gym.errors import ConfigError
from musicrec_gym.realism import realism_report
from musicrec_gym.realism_policy import (
    policy_fidelity,
    policy_markdown,
    rank_agreement,
    session_labels,
)
from musicrec_gym.realism_records import Replay

L = 10  # positions in the hand-made replays


def hand_replay(real: list[list[float]], sim: list[list[float]]) -> Replay:
    """A replay of sessions whose plays from position 6 are ``real`` / ``sim`` flags."""

    def pad(rows: list[list[float]]) -> np.ndarray:
        out = np.full((len(rows), L), np.nan)
        out[:, :5] = 1.0
        for i, r in enumerate(rows):
            out[i, 5 : 5 + len(r)] = r
        return out

    real_flags, sim_flags = pad(real), pad(sim)
    none = np.zeros(real_flags.shape, dtype=bool)
    return Replay(
        real_lengths=(~np.isnan(real_flags)).sum(axis=1),
        sim_lengths=(~np.isnan(sim_flags)).sum(axis=1),
        real_skip=np.zeros(L),
        sim_skip=np.zeros(L),
        real_plays=np.zeros(L),
        sim_plays=np.zeros(L),
        track_real=np.zeros(0),
        track_sim=np.zeros(0),
        real_flags=real_flags,
        sim_flags=sim_flags,
        real_repeat=none,
        sim_repeat=none,
    )


def log_frame(context: list[object], shuffle: list[object]) -> tuple[pd.DataFrame, np.ndarray]:
    """Two rows per session; only the first row's value decides the group."""
    ids = np.array([f"s{i}" for i in range(len(context))], dtype=object)
    frame = pd.DataFrame(
        {
            "session_id": np.repeat(ids, 2),
            "context_type": [v for c in context for v in (c, "other")],
            "hist_user_behavior_is_shuffle": [v for s in shuffle for v in (s, "garbage")],
        }
    )
    return frame, ids


def test_rank_agreement_is_kendalls_tau_on_a_hand_made_case():
    real = np.array([0.40, 0.50, 0.55, 0.60])
    # One pair of six swapped: (C - D) / 6 = (5 - 1) / 6.
    assert rank_agreement(real, np.array([0.41, 0.56, 0.52, 0.70])) == pytest.approx(4 / 6)
    assert rank_agreement(real, real[::-1]) == pytest.approx(-1.0)
    sim = np.array([0.3, 0.1, 0.2, 0.4])
    assert rank_agreement(real, sim) == pytest.approx(kendalltau(real, sim).statistic)
    assert rank_agreement(real[:1], sim[:1]) is None  # one group: no ranking
    assert rank_agreement(real, np.full(4, 0.5)) is None  # a constant side: undefined


def test_a_sessions_group_is_its_first_plays_value():
    frame, ids = log_frame(
        ["radio", " charts ", None, "", "radio"], [True, "false", "FALSE", None, "maybe"]
    )
    labels = session_labels(frame, ids, "context_type")
    assert labels.tolist() == ["radio", "charts", None, None, "radio"]
    shuffle = session_labels(frame, ids, "hist_user_behavior_is_shuffle")
    assert shuffle.tolist() == ["shuffle", "no shuffle", "no shuffle", None, None]


def test_groups_figures_tau_and_too_small_groups_on_a_hand_made_replay():
    # radio: real skips 1/4, simulated 2/4; charts: 3/4 and 3/4; catalog (1 session): 0.
    real = [[1, 1, 1, 0], [1, 1], [0, 0, 1, 0], [0, 0], [1, 1, 1]]
    sim = [[1, 0, 1, 0], [1], [0, 0, 1, 0], [0, 0, 1], [1, 1]]
    frame, ids = log_frame(
        ["radio", "radio", "charts", "charts", "catalog"], [True, True, False, False, True]
    )
    rep = hand_replay(real, sim)
    predicted = np.where(np.isnan(rep.real_flags), np.nan, 0.5)
    policy = policy_fidelity(frame, ids, rep, predicted, min_group_sessions=2, seed=0)
    context, shuffle = policy.groupings
    by_name = {g.name: g for g in context.groups}
    radio, charts, catalog = by_name["radio"], by_name["charts"], by_name["catalog"]
    assert (radio.sessions, radio.included) == (2, True)
    assert radio.real_skip_rate == pytest.approx(1 / 6)  # 1 skip in 6 plays
    assert radio.sim_skip_rate == pytest.approx(2 / 5)
    assert radio.real_listens == pytest.approx(5 / 2) and radio.sim_listens == pytest.approx(3 / 2)
    assert charts.real_skip_rate == pytest.approx(5 / 6)
    assert radio.predicted_skip_rate == pytest.approx(0.5)
    assert radio.gap_low <= radio.skip_rate_gap <= radio.gap_high
    assert (catalog.sessions, catalog.included) == (1, False)  # listed, not ranked
    assert [g.name for g in context.groups] == ["radio", "charts", "catalog"]
    assert context.tau_skip == pytest.approx(1.0) and context.order_agrees
    assert context.max_abs_gap == pytest.approx(max(abs(2 / 5 - 1 / 6), abs(5 / 7 - 5 / 6)))
    assert context.target_met is False and context.note is None
    assert [g.name for g in shuffle.groups] == ["shuffle", "no shuffle"]
    # Seeded: the bootstrap intervals come out the same.
    again = policy_fidelity(frame, ids, rep, predicted, min_group_sessions=2, seed=0)
    assert again == policy


def test_all_groups_too_small_and_a_missing_column_are_notes():
    frame, ids = log_frame(["radio", "charts"], [True, False])
    rep = hand_replay([[1, 0], [0, 0]], [[1, 1], [0, 1]])
    predicted = np.full(rep.real_flags.shape, np.nan)
    policy = policy_fidelity(frame, ids, rep, predicted, min_group_sessions=5)
    for g in policy.groupings:
        assert g.tau_skip is None and g.target_met is None
        assert "no Kendall tau: 0 group(s) with >= 5 sessions" in g.note
        assert all(not x.included for x in g.groups) and len(g.groups) == 2
    text = "\n".join(policy_markdown(policy))
    assert "too few sessions (1)" in text and "No Kendall tau" in text
    bare = policy_fidelity(frame.drop(columns=["context_type"]), ids, rep, predicted, 1)
    assert bare.groupings[0].groups == ()
    assert "no `context_type` column" in bare.groupings[0].note
    assert bare.groupings[1].tau_skip == pytest.approx(1.0)


@pytest.fixture(scope="module")
def small_heldout(fitted_mssd_world, tmp_path_factory):
    """The first 150 held-out sessions of the fitted sample world (a quick replay)."""
    frame = read_mssd_log(fitted_mssd_world / "heldout.csv.gz").frame
    keep = frame["session_id"].isin(frame["session_id"].drop_duplicates().iloc[:150])
    path = tmp_path_factory.mktemp("heldout") / "small.csv.gz"
    write_mssd(frame[keep], path)
    return path


def test_a_log_without_the_group_columns_still_gets_a_report(
    fitted_mssd_world, small_heldout, tmp_path
):
    bare = tmp_path / "bare.csv.gz"
    frame = read_mssd_log(small_heldout).frame
    write_mssd(frame.drop(columns=["context_type", "hist_user_behavior_is_shuffle"]), bare)
    s = realism_report(fitted_mssd_world, bare, tmp_path / "out")
    notes = [g.note for g in s.policy_groups.groupings]
    assert "no `context_type` column" in notes[0]
    assert "no `hist_user_behavior_is_shuffle` column" in notes[1]
    text = (tmp_path / "out" / "realism.md").read_text()
    assert "Cannot be computed: the held-out log has no `context_type` column" in text
    assert not math.isnan(s.sim_skip_rate)
    for name in realism.PNG_FILES:
        assert (tmp_path / "out" / name).is_file()


def test_a_failure_before_writing_leaves_no_report(
    fitted_mssd_world, small_heldout, tmp_path, monkeypatch
):
    def broken(*args, **kwargs):
        raise RuntimeError("plotting failed")

    monkeypatch.setattr(realism, "render_plots", broken)
    with pytest.raises(RuntimeError, match="plotting failed"):
        realism_report(fitted_mssd_world, small_heldout, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "30"])
def test_bad_min_group_sessions_is_a_config_error(tmp_path, bad):
    with pytest.raises(ConfigError, match=r"`min_group_sessions` must be an int >= 1"):
        realism_report(tmp_path, tmp_path / "h.csv", tmp_path / "out", min_group_sessions=bad)


@pytest.mark.parametrize("bad", ["0", "x", "1.5"])
def test_cli_refuses_a_bad_min_group_sessions(tmp_path, bad):
    run = subprocess.run(
        [sys.executable, "-m", "musicrec_gym.cli", "realism", str(tmp_path),
         "--min-group-sessions", bad],
        capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 2
    assert "argument --min-group-sessions: must be an integer >= 1" in run.stderr
