"""``musicrec realism``: the held-out replay, its figures, report and PNGs."""

import json
import subprocess
import sys

import numpy as np
import pytest
from scipy.stats import kendalltau

from musicrec_gym.data.mssd import read_mssd_log
from musicrec_gym.errors import ArtifactError, ConfigError, DataFormatError
from musicrec_gym.fit import fit_world
from musicrec_gym.plays import Plays
from musicrec_gym.realism import PNG_FILES, realism_report, replay
from musicrec_gym.world import load_world

from .test_fit import QUIET, TINY, make_log

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def report(fitted_mssd_world, tmp_path_factory):
    out = tmp_path_factory.mktemp("realism")
    summary = realism_report(fitted_mssd_world, fitted_mssd_world / "heldout.csv.gz", out)
    return summary, out


def test_report_writes_markdown_json_and_pngs(report):
    summary, out = report
    for name in PNG_FILES:
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
    text = (out / "realism.md").read_text()
    assert f"{summary.sim_skip_rate:.3f}" in text and f"{summary.length_ks:.3f}" in text
    for name in PNG_FILES:
        assert f"]({name})" in text
    saved = json.loads((out / "realism.json").read_text())
    assert saved["sessions"] == summary.sessions == 834  # 20% of the sample's 4,168
    assert 0 <= summary.length_ks <= 1 and 0.5 < summary.auc <= 1
    assert summary.popularity_auc is not None and summary.tracks_compared > 0


def test_report_has_repeats_and_policy_groups(report):
    s, out = report
    context, shuffle = s.policy_groups.groupings
    assert {g.name for g in context.groups} == {
        "editorial_playlist", "user_collection", "catalog", "radio", "charts",
        "personalized_playlist",
    }  # fmt: skip
    assert sum(g.sessions for g in context.groups) == s.sessions == 834
    small = [g for g in context.groups if not g.included]
    assert small and all(g.sessions < 30 for g in small)  # charts, personalized_playlist
    ranked = [g for g in context.groups if g.included]
    tau = kendalltau([g.real_skip_rate for g in ranked], [g.sim_skip_rate for g in ranked])
    assert context.tau_skip == pytest.approx(tau.statistic)
    assert {g.name for g in shuffle.groups} == {"shuffle", "no shuffle"}
    # Repeats: both sides play the logged tracks; the filler draws rarely repeat.
    assert 0.05 < s.real_repeat_rate < 0.3 and 0 < s.sim_repeat_rate < s.real_repeat_rate + 0.05
    assert 0 <= s.sim_filler_repeats <= s.sim_filler_plays
    assert s.repeat_rate_gap == pytest.approx(s.sim_repeat_rate - s.real_repeat_rate)
    saved = json.loads((out / "realism.json").read_text())
    assert saved["policy_groups"]["groupings"][0]["column"] == "context_type"
    assert saved["real_repeat_rate"] == pytest.approx(s.real_repeat_rate)
    text = (out / "realism.md").read_text()
    assert "## Policy groups" in text and "too few sessions (" in text
    assert f"{s.sim_repeat_rate:.3f}" in text
    assert context.tau_skip is None or f"**{context.tau_skip:.2f}**" in text


def test_replay_opens_with_the_logged_warm_up_and_is_seeded(fitted_mssd_world):
    world = load_world(fitted_mssd_world)
    frame = read_mssd_log(fitted_mssd_world / "heldout.csv.gz").frame
    plays, _ = Plays.from_frame(frame, 20)
    a, b = replay(world, plays, seed=3), replay(world, plays, seed=3)
    assert np.array_equal(a.sim_lengths, b.sim_lengths)
    assert np.array_equal(a.sim_skip, b.sim_skip, equal_nan=True)
    # Positions 1-5 are the logged plays in both.
    assert np.allclose(a.sim_skip[:5], a.real_skip[:5])
    assert np.all(a.sim_plays[:5] == len(plays.lengths))
    # Sessions never exceed the cap, and every one outlives its warm-up.
    assert a.sim_lengths.max() <= 20 and a.sim_lengths.min() >= 6
    assert not np.array_equal(a.sim_lengths, replay(world, plays, seed=4).sim_lengths)


def test_realism_needs_a_fitted_world(tmp_path, tiny_world):
    log = tmp_path / "log.csv"
    make_log(10).to_csv(log, index=False)
    with pytest.raises(ArtifactError, match="fitted"):
        realism_report(tiny_world, log, tmp_path / "out")


def test_heldout_without_replayable_sessions_is_a_clear_error(tmp_path):
    log = tmp_path / "log.csv"
    make_log(40).to_csv(log, index=False)
    world = tmp_path / "world"
    fit_world(log, world, TINY, **QUIET)
    short = tmp_path / "short.csv"
    frame = make_log(5)
    frame[frame["session_position"] <= 4].assign(session_length=4).to_csv(short, index=False)
    with pytest.raises(DataFormatError, match="more than 5 plays"):
        realism_report(world, short, tmp_path / "out")


def test_cli_realism_prints_the_figures(fitted_mssd_world, tmp_path):
    out = tmp_path / "report"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "musicrec_gym.cli",
            "realism",
            str(fitted_mssd_world),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert "skip rate" in run.stdout and "KS" in run.stdout
    assert "repeat rate" in run.stdout and "policy groups by context_type" in run.stdout
    assert (out / "realism.md").is_file()


def test_policy_groups_know_the_training_sessions_rates(report, fitted_mssd_world):
    """The fit stores each group's training skip rate; the report ranks them too."""
    s, out = report
    info = json.loads((fitted_mssd_world / "fitted.json").read_text())
    stored = info["group_skip_rates"]["context_type"]
    assert sum(n for n, _ in stored.values()) > 3000  # the training sessions, not held out
    context, _ = s.policy_groups.groupings
    for g in context.groups:
        assert g.train_skip_rate == pytest.approx(stored[g.name][1])
    ranked = [g for g in context.groups if g.included]
    real = kendalltau([g.train_skip_rate for g in ranked], [g.real_skip_rate for g in ranked])
    sim = kendalltau([g.train_skip_rate for g in ranked], [g.sim_skip_rate for g in ranked])
    assert context.tau_train == pytest.approx(real.statistic)
    assert context.tau_sim_train == pytest.approx(sim.statistic)
    assert "real, training sessions" in (out / "realism.md").read_text()


def test_the_filler_repeats_at_the_logs_late_repeat_share(report, fitted_mssd_world):
    s, _ = report
    manifest = json.loads((fitted_mssd_world / "manifest.json").read_text())
    share = manifest["reports"]["response"]["repeats"]["late_share"]
    assert 0.05 < share < 0.3
    assert s.sim_filler_plays > 300
    assert s.sim_filler_repeats / s.sim_filler_plays == pytest.approx(share, abs=0.04)


@pytest.mark.parametrize(("bad", "match"), [(0, ">= 1"), (101, "<= 100"), (True, ">= 1")])
def test_bad_group_replays_is_a_config_error(tmp_path, bad, match):
    with pytest.raises(ConfigError, match=rf"`group_replays` must be an int {match}"):
        realism_report(tmp_path, tmp_path / "h.csv", tmp_path / "out", group_replays=bad)
