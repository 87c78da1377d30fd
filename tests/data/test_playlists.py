"""Deezer playlist arrays and Deezer carousel features: shared samples and bad inputs."""

import csv

import numpy as np
import pytest

from musicrec_gym.data.playlists import (
    playlist_tokens,
    read_carousel_playlists,
    read_carousel_users,
    read_playlist_array,
)
from musicrec_gym.errors import ConfigError, DataFormatError
from tests.data.shared_samples import shared_file


def object_array(playlists):
    array = np.empty(len(playlists), dtype=object)
    for i, p in enumerate(playlists):
        array[i] = p
    return array


PLAYLISTS = [
    ["track_1", "artist_9", "track_2", "artist_9", "track_3", "artist_8"],
    [],
    ["artist_9", "artist_8"],
    ("track_3", "artist_8", "track_1", "artist_9"),
]


def test_object_array_needs_allow_pickle_and_keeps_track_order(tmp_path):
    path = tmp_path / "music.npy"
    np.save(path, object_array(PLAYLISTS), allow_pickle=True)
    with pytest.raises(
        DataFormatError, match=r"music\.npy: the array holds Python objects.*allow_pickle=True"
    ):
        read_playlist_array(path)
    loaded = read_playlist_array(path, allow_pickle=True)
    f = loaded.frame
    assert f["playlist"].tolist() == [0, 3]  # indices in the file
    assert f["n_tracks"].tolist() == [3, 2]
    assert playlist_tokens(f) == [["track_1", "track_2", "track_3"], ["track_3", "track_1"]]
    assert playlist_tokens(f, "artist") == [
        ["artist_9", "artist_9", "artist_8"],
        ["artist_8", "artist_9"],
    ]
    assert loaded.report.rows_read == 4 and loaded.report.rows_kept == 2
    assert loaded.report.dropped == {"empty playlist": 1, "no track token": 1}
    with pytest.raises(ConfigError, match=r"unknown token kind 'tracks'\. Did you mean 'track'\?"):
        playlist_tokens(f, "tracks")


def test_string_matrix_and_npz_need_no_pickle(tmp_path):
    matrix = np.array([["track_1", "artist_1", "track_2"], ["track_2", "artist_1", "track_1"]])
    np.save(tmp_path / "m.npy", matrix)
    np.savez(tmp_path / "m.npz", playlists=matrix, other=np.arange(3))
    for name in ("m.npy", "m.npz"):
        f = read_playlist_array(tmp_path / name).frame
        assert playlist_tokens(f) == [["track_1", "track_2"], ["track_2", "track_1"]]
        assert all(type(t) is str for t in f["tracks"][0])
    np.savez(tmp_path / "two.npz", a=matrix, b=matrix)
    with pytest.raises(
        DataFormatError, match=r"holds 2 arrays \(a, b\); name the playlist array 'playlists'"
    ):
        read_playlist_array(tmp_path / "two.npz")


@pytest.mark.parametrize(
    ("playlists", "match"),
    [
        ([["track_1", "track_2"], ["track_1", "song_7"]],
         r"playlist 1 \(0-based\), token 2: expected a string 'track_<id>' or 'artist_<id>', "
         r"got 'song_7'"),
        ([["track_1", 42]], r"playlist 0 \(0-based\), token 2: .*got 42"),
        ([["track_1"], "track_2"], r"playlist 1 \(0-based\): expected a sequence of tokens, got s"),
        ([["track_1", "track_"]], r"token 2: .*got 'track_'"),
    ],
)  # fmt: skip
def test_bad_tokens_are_named(tmp_path, playlists, match):
    path = tmp_path / "bad.npy"
    np.save(path, object_array(playlists), allow_pickle=True)
    with pytest.raises(DataFormatError, match=match):
        read_playlist_array(path, allow_pickle=True)


def test_unreadable_playlist_files(tmp_path):
    with pytest.raises(DataFormatError, match=r"none\.npy: file not found"):
        read_playlist_array(tmp_path / "none.npy")
    (tmp_path / "text.npy").write_text("track_1 track_2\n")
    with pytest.raises(DataFormatError, match=r"text\.npy: not a NumPy \.npy or \.npz file"):
        read_playlist_array(tmp_path / "text.npy", allow_pickle=True)
    np.save(tmp_path / "full.npy", object_array(PLAYLISTS * 50), allow_pickle=True)
    data = (tmp_path / "full.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(data[: len(data) - 40])
    with pytest.raises(DataFormatError, match=r"cut\.npy: .*truncated/corrupt"):
        read_playlist_array(tmp_path / "cut.npy", allow_pickle=True)
    np.save(tmp_path / "cube.npy", np.full((2, 2, 2), "track_1"))
    with pytest.raises(DataFormatError, match=r"got shape \(2, 2, 2\)"):
        read_playlist_array(tmp_path / "cube.npy")
    np.save(tmp_path / "none0.npy", np.empty(0, dtype=object), allow_pickle=True)
    with pytest.raises(DataFormatError, match=r"holds no playlist"):
        read_playlist_array(tmp_path / "none0.npy", allow_pickle=True)


def _raw_floats(path):
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    return rows[0], np.array([[float(x) for x in r] for r in rows[1:]])


def test_shared_carousel_playlists():
    path = shared_file("deezer_carousel/playlist_features.csv")
    loaded = read_carousel_playlists(path)
    f = loaded.frame
    header, raw = _raw_floats(path)
    assert len(f) == 862 and loaded.report.dropped == {}
    assert list(f.columns) == ["playlist", *(f"dim_{i}" for i in range(96)), "bias"]
    assert f["playlist"].tolist() == list(range(862))
    assert np.array_equal(f.iloc[:, 1:].to_numpy(), raw)  # exact floats, bias last
    # carousel playlists are rarely streamed from a display: every bias is negative
    assert (f["bias"] < 0).all()
    assert np.abs(f[[f"dim_{i}" for i in range(96)]].to_numpy()).mean() < np.abs(f["bias"]).mean()


def test_shared_carousel_users():
    path = shared_file("deezer_carousel/user_features_small.csv")
    loaded = read_carousel_users(path)
    f = loaded.frame
    header, raw = _raw_floats(path)
    assert len(f) == 9 and list(f.columns) == header
    assert f["segment"].dtype == np.int64 and (f["segment"] >= 0).all()
    assert np.array_equal(f.iloc[:, 1:].to_numpy(), raw[:, 1:])


def test_carousel_errors(tmp_path):
    head = ",".join(f"dim_{i}" for i in range(3))
    path = tmp_path / "pf.csv"
    path.write_text(f"{head},3\n0.1,0.2,0.3,-5\n0.1,x,0.3,-5\n")
    with pytest.raises(
        DataFormatError, match=r"pf\.csv: line 3: column 'dim_1' must be a finite number, got 'x'"
    ):
        read_carousel_playlists(path)
    path.write_text(f"{head}\n0.1,0.2,0.3\n")
    with pytest.raises(DataFormatError, match=r"missing the bias column after dim_2"):
        read_carousel_playlists(path)
    path.write_text("dim_0,dim_2,3\n0.1,0.2,-5\n")
    with pytest.raises(DataFormatError, match=r"line 1: expected the columns dim_0, dim_1, \.\.\."):
        read_carousel_playlists(path)
    path.write_text("")
    with pytest.raises(DataFormatError, match=r"pf\.csv: the file is empty"):
        read_carousel_playlists(path)
    users = tmp_path / "uf.csv"
    users.write_text(f"{head}\n0.1,0.2,0.3\n")
    with pytest.raises(DataFormatError, match=r"missing column\(s\) 'segment'"):
        read_carousel_users(users)
    users.write_text(f"segment,{head}\n1,0.1,0.2,0.3\n-1,0.1,0.2,0.3\n")
    with pytest.raises(
        DataFormatError,
        match=r"uf\.csv: line 3: column 'segment' must be an integer >= 0, got '-1'",
    ):
        read_carousel_users(users)
