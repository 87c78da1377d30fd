"""Token sequences of every source, and the ``musicrec embeddings`` sweep on a small log."""

import itertools

import numpy as np
import pandas as pd
import pytest

from musicrec_gym.cli import main
from musicrec_gym.data.lastfm import read_lastfm_history
from musicrec_gym.data.mssd import LOG_COLUMNS, read_mssd_log
from musicrec_gym.data.sources import SWEEP_COLUMNS, load_token_sessions, token_sessions
from musicrec_gym.errors import ConfigError, DataFormatError
from tests.data.shared_samples import shared_file


def write_cyclic_mssd(path, n_sessions=300, n_tracks=40, seed=0):
    """Sessions that walk a cycle of tracks: t_k is always followed by t_(k+1)."""
    rng = np.random.default_rng(seed)
    lines = [",".join(LOG_COLUMNS)]
    for s in range(n_sessions):
        start, length = int(rng.integers(n_tracks)), int(rng.integers(5, 9))
        for pos in range(length):
            skipped = bool(rng.random() < 0.3)
            flags = f"{skipped},{skipped},{skipped},{not skipped}"
            track = f"t{(start + pos) % n_tracks}"
            lines.append(f"s{s:04d},{pos + 1},{length},{track},{flags},2018-07-15")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_mssd_sessions_follow_the_log(tmp_path):
    path = write_cyclic_mssd(tmp_path / "log.csv", n_sessions=20)
    sessions = token_sessions("mssd", path)
    frame = read_mssd_log(path).frame
    assert len(sessions) == 20
    assert sessions == frame.groupby("session_id")["track_id"].agg(list).tolist()
    for s in sessions:  # the cycle, in play order
        k = [int(t[1:]) for t in s]
        assert all((b - a) % 40 == 1 for a, b in itertools.pairwise(k))


def test_shared_mssd_sessions():
    sessions = token_sessions("mssd", shared_file("mssd/log_sample.csv.gz"))
    assert len(sessions) == 4_168
    assert sum(len(s) for s in sessions) == 70_030
    assert all(10 <= len(s) <= 20 for s in sessions)
    assert all(t.startswith("t_") for t in sessions[0])


def test_shared_lastfm_sessions_are_cut_at_the_gap():
    path = shared_file("lastfm1k/plays_user_000001.tsv")
    history = read_lastfm_history(path).frame  # one user, sorted by time
    gaps = history["timestamp"].diff().dt.total_seconds().to_numpy()[1:]
    for minutes in (20.0, 60.0):
        loaded = load_token_sessions("lastfm", path, gap_minutes=minutes)
        sessions = loaded.sessions
        assert len(sessions) == 1 + int((gaps > minutes * 60).sum())
        assert sum(len(s) for s in sessions) == 16_685
        assert [t for s in sessions for t in s] == history["track_key"].tolist()
        assert loaded.note == f"Last.fm sessions ({minutes:g}-minute gap)"
    small = token_sessions("lastfm", shared_file("lastfm1k/plays_small.tsv"))
    assert sum(len(s) for s in small) == 16 and len(small) >= 6  # at least one per user


def test_playlist_and_event_sequences(tmp_path):
    array = np.empty(2, dtype=object)
    array[0] = ["track_1", "artist_1", "track_2", "artist_1"]
    array[1] = ["track_2", "artist_1", "track_3", "artist_2", "track_1", "artist_1"]
    np.save(tmp_path / "p.npy", array, allow_pickle=True)
    assert token_sessions("playlists", tmp_path / "p.npy", allow_pickle=True) == [
        ["track_1", "track_2"],
        ["track_2", "track_3", "track_1"],
    ]
    with pytest.raises(DataFormatError, match=r"allow_pickle=True"):
        token_sessions("playlists", tmp_path / "p.npy")
    events = tmp_path / "e.csv"
    events.write_text(
        "user_id,item_id,listening_time_in_scale_0-5,title,duration,event_type\n"
        "u2,i9,5,a,1,Like\nu1,i3,5,a,1,Skip it\nu2,i1,5,a,1,Download\nu1,i3,5,a,1,Like\n"
    )
    assert token_sessions("events", events) == [["i9", "i1"], ["i3", "i3"]]


def test_unknown_kind_and_option(tmp_path):
    path = write_cyclic_mssd(tmp_path / "log.csv", n_sessions=3)
    with pytest.raises(ConfigError, match=r"unknown source format 'msd'\. Did you mean 'mssd'\?"):
        token_sessions("msd", path)
    with pytest.raises(ConfigError, match=r"'mssd' sources take no option 'gap_minutes'"):
        token_sessions("mssd", path, gap_minutes=5)
    with pytest.raises(ConfigError, match=r"Did you mean 'gap_minutes'\?"):
        token_sessions("lastfm", path, gap_minute=5)


def test_embeddings_command_writes_and_prints_the_sweep(tmp_path, capsys):
    log = write_cyclic_mssd(tmp_path / "log.csv", n_sessions=600, n_tracks=100)
    out = tmp_path / "sweep"
    argv = ["embeddings", str(log), "--format", "mssd", "--ns-exponent", "-0.5", "1",
            "--epochs", "20", "--seed", "1", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    table = pd.read_csv(out / "embedding_sweep.csv")
    assert tuple(table.columns) == SWEEP_COLUMNS
    assert table["ns_exponent"].tolist() == [-0.5, 1.0]
    assert (table["n_sessions"] == 600).all() and (table["n_tracks"] == 100).all()
    assert (table["n_queries"] == 600).all()
    assert (
        table[["hit", "ndcg", "pop_hit", "pop_ndcg"]].apply(lambda c: c.between(0, 1)).all().all()
    )
    assert (table["ndcg"] <= table["hit"]).all()
    # every next track is the cycle's successor: the embeddings must beat popularity
    assert (table["hit"] > table["pop_hit"] + 0.3).all()
    markdown = (out / "embedding_sweep.md").read_text()
    assert "| ns_exponent | Hit@10 | NDCG@10 | popular Hit@10 | popular NDCG@10 |" in markdown
    rows = [
        line
        for line in markdown.splitlines()
        if line.startswith("| -0.5 ") or line.startswith("| 1 ")
    ]
    assert len(rows) == 2 and all(row in printed for row in rows)
    assert f"| -0.5 | {table['hit'][0]:.4f} | {table['ndcg'][0]:.4f} |" in markdown
    n_rows = len(log.read_text().splitlines()) - 1
    assert f"log.csv: {n_rows:,} rows, kept {n_rows:,}; nothing dropped" in printed
    # same seed, same table
    assert main([*argv[:-1], str(tmp_path / "again")]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "again" / "embedding_sweep.csv"), table)


def test_embeddings_command_reports_bad_input(tmp_path, capsys):
    assert (
        main(["embeddings", str(tmp_path / "no.csv"), "--format", "mssd", "--out", str(tmp_path)])
        == 2
    )
    assert "musicrec embeddings: error:" in capsys.readouterr().err
    log = write_cyclic_mssd(tmp_path / "log.csv", n_sessions=5)
    with pytest.raises(SystemExit):
        main(["embeddings", str(log), "--format", "spotify"])
