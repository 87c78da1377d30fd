"""Last.fm-1K histories and profiles: the shared samples, drops, and every bad input."""

import gzip

import numpy as np
import pandas as pd
import pytest

from musicrec_gym.data.lastfm import read_lastfm_history, read_lastfm_profiles
from musicrec_gym.errors import DataFormatError
from tests.data.shared_samples import shared_file

MBID = "c4633ab1-e715-477f-8685-afa5f2058e42"
ARTIST = "09a114d9-7723-4e14-b524-379697f6d2b5"


def play(user="u1", ts="2009-05-04T23:08:57Z", artist_id=ARTIST, artist="Plaid", track=MBID,
         name="Big Face"):  # fmt: skip
    return "\t".join([user, ts, artist_id, artist, track, name])


def write(tmp_path, lines, name="plays.tsv"):
    path = tmp_path / name
    text = "\n".join(lines) + "\n"
    path.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    return path


def test_history_is_typed_sorted_and_keyed(tmp_path):
    lines = [
        play("u2", "2009-05-04T10:00:00Z"),
        play("u1", "2009-05-04T12:00:00Z", track="", name='Say "Hi"'),  # stray quotes kept
        play("u1", "2009-05-04T11:00:00Z", artist_id=""),
    ]
    loaded = read_lastfm_history(write(tmp_path, lines))
    f = loaded.frame
    assert list(f.columns) == [
        "user_id", "timestamp", "artist_id", "artist_name", "track_id", "track_name", "track_key",
    ]  # fmt: skip
    assert str(f["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert f["user_id"].tolist() == ["u1", "u1", "u2"]
    assert f["timestamp"].dt.hour.tolist() == [11, 12, 10]
    assert f["track_key"].tolist() == [MBID, 'Plaid - Say "Hi"', MBID]
    assert f["artist_id"].tolist() == ["", ARTIST, ARTIST]
    assert loaded.report.summary() == "plays.tsv: 3 rows, kept 3; nothing dropped"


def test_history_drops_are_counted(tmp_path):
    lines = [
        "user_id\ttimestamp\tartist_id\tartist_name\ttrack_id\ttrack_name",
        play(),
        play(),  # scrobbled twice
        play(ts="2009-05-05T00:00:00Z", track="", name=""),  # nothing names the track
        "",
        play(ts="2009-05-06T00:00:00Z"),
    ]
    loaded = read_lastfm_history(write(tmp_path, lines, "plays.tsv.gz"))
    assert len(loaded.frame) == 2
    assert loaded.report.rows_read == 6
    assert loaded.report.dropped == {
        "blank line": 1,
        "header line": 1,
        "exact duplicate row": 1,
        "no track mbid and no track name": 1,
    }


@pytest.mark.parametrize(
    ("line", "match"),
    [
        (play(ts="2009-05-04 25:99"), r"plays\.tsv: line 2: column 'timestamp' must be an ISO"),
        (play(ts=""), r"line 2: column 'timestamp' must be .*got ''"),
        (play(user=""), r"line 2: column 'user_id' must be a non-empty id"),
        (play() + "\textra", r"line 2: expected 6 fields separated by '\\t', got 7"),
        ("u1\t2009-05-04T23:08:57Z\tPlaid\tBig Face", r"line 2: expected 6 fields .*got 4"),
    ],
)  # fmt: skip
def test_history_bad_lines_are_named(tmp_path, line, match):
    with pytest.raises(DataFormatError, match=match):
        read_lastfm_history(write(tmp_path, [play(), line, play(ts="2009-05-06T00:00:00Z")]))


def test_history_missing_empty_and_truncated(tmp_path):
    with pytest.raises(DataFormatError, match=r"none\.tsv: file not found"):
        read_lastfm_history(tmp_path / "none.tsv")
    (tmp_path / "empty.tsv").write_text("")
    with pytest.raises(DataFormatError, match=r"empty\.tsv: the file is empty"):
        read_lastfm_history(tmp_path / "empty.tsv")
    data = gzip.compress(
        ("\n".join([play(ts=f"2009-05-04T10:{m:02d}:00Z") for m in range(60)])).encode()
    )
    (tmp_path / "cut.tsv.gz").write_bytes(data[:-30])
    with pytest.raises(
        DataFormatError, match=r"cut\.tsv\.gz: the gzip file is truncated or corrupt"
    ):
        read_lastfm_history(tmp_path / "cut.tsv.gz")


def _raw_fields(path):
    """The file split by hand (tabs, no quoting), to check the loader against."""
    text = path.read_text(encoding="utf-8")
    return [line.split("\t") for line in text.splitlines() if line]


def test_shared_history_of_one_user():
    path = shared_file("lastfm1k/plays_user_000001.tsv")
    loaded = read_lastfm_history(path)
    f = loaded.frame
    raw = _raw_fields(path)
    assert len(raw) == 16_685 and loaded.report.rows_kept == 16_685
    assert loaded.report.dropped == {}
    assert f["user_id"].unique().tolist() == ["user_000001"]
    assert f["timestamp"].is_monotonic_increasing
    assert f["timestamp"].min().year == 2006 and f["timestamp"].max().year == 2009
    no_mbid = sum(1 for r in raw if r[4] == "")
    assert (f["track_id"] == "").sum() == no_mbid > 1000  # many rows have no track mbid
    named = f["track_id"] == ""
    assert (f.loc[~named, "track_key"] == f.loc[~named, "track_id"]).all()
    expected = f.loc[named, "artist_name"] + " - " + f.loc[named, "track_name"]
    assert (f.loc[named, "track_key"] == expected).all()
    # the loaded multiset of (timestamp, track name) is the file's
    pairs = sorted((r[1], r[5]) for r in raw)
    loaded_pairs = sorted(
        zip(f["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"), f["track_name"], strict=True)
    )
    assert loaded_pairs == pairs


def test_shared_small_history():
    loaded = read_lastfm_history(shared_file("lastfm1k/plays_small.tsv"))
    f = loaded.frame
    assert loaded.report.rows_kept == 16
    assert f["user_id"].nunique() == 6
    assert f.groupby("user_id")["timestamp"].apply(lambda s: s.is_monotonic_increasing).all()
    assert (f["track_id"] == "").all() and f["track_key"].str.contains(" - ").all()


def test_shared_profiles():
    path = shared_file("lastfm1k/userid-profile.tsv")
    loaded = read_lastfm_profiles(path)
    f = loaded.frame
    raw = _raw_fields(path)[1:]
    assert len(f) == len(raw) == 992 and loaded.report.dropped == {}
    assert list(f.columns) == ["user_id", "gender", "age", "country", "registered"]
    assert f["user_id"].is_unique and f["user_id"].str.fullmatch(r"user_\d{6}").all()
    assert set(f["gender"]) == {"m", "f", ""}
    assert (f["gender"] == "").sum() == sum(1 for r in raw if r[1] == "")
    assert f["age"].isna().sum() == sum(1 for r in raw if r[2] == "")
    assert f["age"].dropna().between(1, 120).all()
    assert f["registered"].isna().sum() == sum(1 for r in raw if r[4] == "")
    assert f["registered"].dropna().dt.year.between(2002, 2009).all()
    assert f.loc[0, "registered"] == pd.Timestamp(raw[0][4])
    assert (f["country"] == "").sum() == sum(1 for r in raw if r[3] == "")


def test_profile_errors_and_drops(tmp_path):
    header = "#id\tgender\tage\tcountry\tregistered"
    good = "user_000001\tm\t22\tJapan\tAug 13, 2006"
    path = write(tmp_path, [header, good, good, "user_000002\tF\t\t\t"], "p.tsv")
    loaded = read_lastfm_profiles(path)
    assert loaded.frame["gender"].tolist() == ["m", "f"]
    assert np.isnan(loaded.frame["age"].iloc[1]) and pd.isna(loaded.frame["registered"].iloc[1])
    assert loaded.report.dropped == {"duplicate user_id": 1}
    cases = [
        (good.replace("\tm\t", "\tx\t"), r"p\.tsv: line 2: column 'gender' must be 'm', 'f' or em"),
        (good.replace("22", "twenty"), r"line 2: column 'age' must be a finite number or empty"),
        (good.replace("Aug 13, 2006", "13/08/2006"), r"line 2: column 'registered' .*'13/08/2006'"),
    ]  # fmt: skip
    for line, match in cases:
        with pytest.raises(DataFormatError, match=match):
            read_lastfm_profiles(write(tmp_path, [header, line], "p.tsv"))
    with pytest.raises(DataFormatError, match=r"missing column\(s\) 'age'.*user_id, gender, age"):
        read_lastfm_profiles(
            write(tmp_path, ["#id\tgender\tcountry\tregistered", "u\tm\tX\t"], "p.tsv")
        )
