"""The standing bad-input table of the data loaders: every hostile file is one clear error.

Each case writes a small hostile file and checks that the loader raises our error (never a
raw pandas/NumPy/csv traceback) with a message that names the file and, where there is
one, the line and the field. Fast and deterministic: no shared data, no training.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from musicrec_gym.data.events import EVENT_COLUMNS, read_event_log
from musicrec_gym.data.lastfm import read_lastfm_history, read_lastfm_profiles
from musicrec_gym.data.mssd import LOG_COLUMNS, TRACK_FEATURE_COLUMNS, read_mssd_log
from musicrec_gym.data.mssd import read_mssd_track_features as read_features
from musicrec_gym.data.playlists import (
    read_carousel_playlists,
    read_carousel_users,
    read_playlist_array,
)
from musicrec_gym.data.sessionize import sessionise
from musicrec_gym.data.sources import load_token_sessions
from musicrec_gym.errors import ConfigError, DataFormatError

MSSD_HEADER = ",".join(LOG_COLUMNS)
MSSD_ROW = "s1,1,2,t1,False,False,False,True,2018-07-15"
FEAT_HEADER = ",".join(TRACK_FEATURE_COLUMNS)
FEAT_ROW = "t1,210.5," + ",".join(["0.1"] * 8)
LASTFM_TIME = "2009-05-04T23:08:57Z"
LASTFM_ROW = f"u1\t{LASTFM_TIME}\ta1\tPlaid\tm1\tBig Face"
PROFILE_HEADER = "#id\tgender\tage\tcountry\tregistered"
PROFILE_ROW = "u1\tm\t22\tUK\tAug 13, 2006"
EVENT_HEADER = ",".join(EVENT_COLUMNS)
EVENT_ROW = "u1,i1,5,Song,210,Like"
GARBAGE = bytes(range(256)) * 8


def lines(*rows: str) -> bytes:
    return ("\n".join(rows) + "\n").encode()


def mssd(row: str) -> bytes:
    return lines(MSSD_HEADER, MSSD_ROW, row)


def lastfm_time(value: str) -> bytes:
    return lines(LASTFM_ROW, LASTFM_ROW.replace(LASTFM_TIME, value))


def features(row: str) -> bytes:
    return lines(FEAT_HEADER, FEAT_ROW, row)


def events(row: str) -> bytes:
    return lines(EVENT_HEADER, EVENT_ROW, row)


LOADERS: dict[str, tuple[Callable, str]] = {
    "mssd": (read_mssd_log, "log.csv"),
    "mssd.gz": (read_mssd_log, "log.csv.gz"),
    "features": (read_features, "tf.csv"),
    "lastfm": (read_lastfm_history, "plays.tsv"),
    "lastfm.gz": (read_lastfm_history, "plays.tsv.gz"),
    "profiles": (read_lastfm_profiles, "profiles.tsv"),
    "events": (read_event_log, "events.csv"),
    "carousel": (read_carousel_playlists, "pf.csv"),
    "users": (read_carousel_users, "uf.csv"),
}

# (case id, loader, file bytes, regex the message must match)
CASES = [
    # --- Last.fm placeholder times (9999-12-31) and other out-of-range / unparsable times
    ("lastfm-9999", "lastfm", lastfm_time("9999-12-31T00:00:00Z"),
     r"plays\.tsv: line 2: column 'timestamp' .* between 1677-09-22 and 2262-04-11, "
     r"got '9999-12-31T00:00:00Z'"),
    ("lastfm-9999-date", "lastfm", lastfm_time("9999-12-31"),
     r"plays\.tsv: line 2: column 'timestamp'"),
    ("lastfm-year-1", "lastfm", lastfm_time("0001-01-01T00:00:00Z"),
     r"line 2: column 'timestamp' .* between"),
    ("lastfm-2262", "lastfm", lastfm_time("2262-04-12T00:00:00Z"),
     r"line 2: column 'timestamp' .* between"),
    ("lastfm-year-99999", "lastfm", lastfm_time("99999-01-01T00:00:00Z"),
     r"line 2: column 'timestamp'"),
    ("lastfm-words", "lastfm", lastfm_time("yesterday"),
     r"line 2: column 'timestamp'.*'yesterday'"),
    ("lastfm-epoch", "lastfm", lastfm_time("1241478537"), r"line 2: column 'timestamp'"),
    ("lastfm-nan-time", "lastfm", lastfm_time("NaN"), r"line 2: column 'timestamp'.*'NaN'"),
    ("mssd-date-9999", "mssd", mssd(MSSD_ROW.replace("2018-07-15", "9999-12-31")),
     r"log\.csv: line 3: column 'date' .* between 1677-09-22 and 2262-04-11"),
    ("mssd-date-1000", "mssd", mssd(MSSD_ROW.replace("2018-07-15", "1000-01-01")),
     r"line 3: column 'date'"),
    ("profile-registered-9999", "profiles",
     lines(PROFILE_HEADER, PROFILE_ROW.replace("2006", "9999")),
     r"profiles\.tsv: line 2: column 'registered' .* between"),
    # --- empty, binary, not gzip, directory-like content
    ("mssd-empty", "mssd", b"", r"log\.csv: the file is empty"),
    ("mssd-header-only", "mssd", lines(MSSD_HEADER), r"log\.csv: the file has a header but no"),
    ("mssd-binary", "mssd", GARBAGE, r"log\.csv: not UTF-8 text"),
    ("mssd-latin1", "mssd", mssd("s2,1,1,t\xe9,False,False,False,True,2018-07-15").decode()
     .encode("latin-1"), r"log\.csv: not UTF-8 text"),
    ("mssd-gz-not-gzip", "mssd.gz", mssd(MSSD_ROW), r"log\.csv\.gz: the gzip file is truncated"),
    ("mssd-gz-truncated", "mssd.gz", gzip.compress(mssd(MSSD_ROW) * 200)[:-40],
     r"log\.csv\.gz: the gzip file is truncated or corrupt"),
    ("mssd-gz-of-binary", "mssd.gz", gzip.compress(GARBAGE), r"log\.csv\.gz: not UTF-8"),
    ("lastfm-empty", "lastfm", b"", r"plays\.tsv: the file is empty"),
    ("lastfm-binary", "lastfm", GARBAGE, r"plays\.tsv: not UTF-8"),
    ("lastfm-gz-not-gzip", "lastfm.gz", lines(LASTFM_ROW), r"plays\.tsv\.gz: the gzip file"),
    ("events-empty", "events", b"", r"events\.csv: the file is empty"),
    ("events-binary", "events", GARBAGE, r"events\.csv: not UTF-8"),
    ("features-empty", "features", b"", r"tf\.csv: the file is empty"),
    # --- missing columns, duplicated header, wrong delimiter, wrong number of fields
    ("mssd-missing-column", "mssd",
     lines(MSSD_HEADER.replace(",skip_2", ""), MSSD_ROW.replace(",False", "", 1)),
     r"log\.csv: line 1: missing column\(s\) 'skip_2'"),
    ("mssd-duplicated-column", "mssd", lines(MSSD_HEADER + ",date", MSSD_ROW + ",2018-07-16"),
     r"log\.csv: line 1: column\(s\) 'date' appear more than once"),
    ("events-duplicated-column", "events", lines(EVENT_HEADER + ",user_id", EVENT_ROW + ",u9"),
     r"events\.csv: line 1: column\(s\) 'user_id' appear more than once"),
    ("profiles-duplicated-column", "profiles",
     lines(PROFILE_HEADER + "\tgender", PROFILE_ROW + "\tf"),
     r"profiles\.tsv: line 1: column\(s\) 'gender' appear more than once"),
    ("mssd-semicolons", "mssd", lines(MSSD_HEADER.replace(",", ";"), MSSD_ROW.replace(",", ";")),
     r"log\.csv: line 1: missing column.*separated by semicolons"),
    ("lastfm-commas", "lastfm", lines(LASTFM_ROW.replace("\t", ",")),
     r"plays\.tsv: line 1: expected 6 fields separated by '\\t'.*got 1.*separated by commas"),
    ("mssd-extra-fields", "mssd", mssd(MSSD_ROW.replace("s1", "s2") + ",x,y"),
     r"log\.csv: line 3: expected 9 fields separated by ',', got 11"),
    ("mssd-extra-fields-first-row", "mssd", lines(MSSD_HEADER, MSSD_ROW + ",x,y"),
     r"log\.csv: line 2: expected 9 fields separated by ',', got 11"),  # pandas dropped them
    ("mssd-short-row", "mssd", mssd("s2,1,2"), r"log\.csv: line 3: expected 9 fields"),
    ("lastfm-7-fields", "lastfm", lines(LASTFM_ROW, LASTFM_ROW + "\textra"),
     r"plays\.tsv: line 2: expected 6 fields separated by '\\t', got 7"),
    ("lastfm-7-fields-first-row", "lastfm", lines(LASTFM_ROW + "\textra", LASTFM_ROW),
     r"plays\.tsv: line 1: expected 6 fields separated by '\\t', got 7"),
    ("lastfm-5-fields", "lastfm", lines(LASTFM_ROW, LASTFM_ROW.rsplit("\t", 1)[0]),
     r"plays\.tsv: line 2: expected 6 fields"),
    ("events-extra-fields", "events", events(EVENT_ROW + ",x"),
     r"events\.csv: line 3: expected 6 fields"),
    ("mssd-unclosed-quote", "mssd", mssd('s2,1,2,"t2,False,False,False,True,2018-07-15'),
     r"log\.csv: not a readable MSSD session log"),
    # --- wrong types, NaN, negative numbers, huge fields
    ("mssd-position-nan", "mssd", mssd("s2,nan,2,t1,False,False,False,True,2018-07-15"),
     r"line 3: column 'session_position' must be an integer >= 1, got 'nan'"),
    ("mssd-negative-length", "mssd", mssd("s2,1,-2,t1,False,False,False,True,2018-07-15"),
     r"line 3: column 'session_length' must be an integer >= 1, got '-2'"),
    ("mssd-flag-word", "mssd", mssd("s2,1,2,t1,maybe,False,False,True,2018-07-15"),
     r"line 3: column 'skip_1' must be a boolean"),
    ("mssd-huge-session-id", "mssd", mssd("s" * 100_000 + ",1,2,t1,False,False,False,True,"
                                          "2018-07-15"),
     r"line 3: column 'session_id' must be an id of at most 1,000 characters, got 'sss+\.\.\. "
     r"\(100,000 characters\)"),
    ("mssd-huge-track-id", "mssd", mssd("s2,1,2," + "t" * 5000 + ",False,False,False,True,"
                                        "2018-07-15"),
     r"line 3: column 'track_id_clean' must be an id of at most 1,000 characters"),
    ("lastfm-huge-mbid", "lastfm", lines(LASTFM_ROW.replace("\tm1\t", "\t" + "m" * 2000 + "\t")),
     r"line 1: column 'track_id' must be an id of at most"),
    ("events-huge-item", "events", events("u2," + "i" * 2000 + ",5,Song,210,Like"),
     r"line 3: column 'item_id' must be an id of at most"),
    ("features-negative-duration", "features", features(FEAT_ROW.replace("t1,210.5", "t2,-3")),
     r"tf\.csv: line 3: column 'duration' must be a finite number >= 0, got '-3'"),
    ("features-nan-duration", "features", features(FEAT_ROW.replace("t1,210.5", "t2,nan")),
     r"line 3: column 'duration' must be a finite number >= 0, got 'nan'"),
    ("features-inf-vector", "features", features("t2,3," + ",".join(["inf"] + ["0"] * 7)),
     r"line 3: column 'acoustic_vector_0' must be a finite number, got 'inf'"),
    ("events-negative-duration", "events", events("u2,i2,5,Song,-210,Like"),
     r"events\.csv: line 3: column 'duration' must be a finite number >= 0 or empty, got '-210'"),
    ("events-nan-duration", "events", events("u2,i2,5,Song,NaN,Like"),
     r"line 3: column 'duration' must be a finite number >= 0 or empty, got 'NaN'"),
    ("events-nan-listening", "events", events("u2,i2,nan,Song,210,Like"),
     r"line 3: column 'listening_time_in_scale_0-5' must be a number from 0 to 5"),
    ("profiles-inf-age", "profiles", lines(PROFILE_HEADER, PROFILE_ROW.replace("22", "inf")),
     r"profiles\.tsv: line 2: column 'age' must be a finite number or empty, got 'inf'"),
    ("carousel-nan", "carousel", lines("dim_0,dim_1,2", "0.1,nan,1"),
     r"pf\.csv: line 2: column 'dim_1' must be a finite number, got 'nan'"),
    ("users-negative-segment", "users", lines("segment,dim_0", "-1,0.5"),
     r"uf\.csv: line 2: column 'segment' must be an integer >= 0, got '-1'"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "data", "match"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_hostile_file_is_one_clear_error(tmp_path, kind, data, match):
    read, name = LOADERS[kind]
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(DataFormatError, match=match):
        read(path)


@pytest.mark.parametrize("kind", sorted(LOADERS))
def test_nonexistent_path_and_directory(tmp_path, kind):
    read, name = LOADERS[kind]
    with pytest.raises(DataFormatError, match=re.escape(name) + ": file not found"):
        read(tmp_path / name)
    (tmp_path / name).mkdir()
    with pytest.raises(DataFormatError, match=r"not a file \(a directory\?\)"):
        read(tmp_path / name)


@pytest.mark.parametrize("path", [None, 5, b"log.csv"], ids=["none", "int", "bytes"])
def test_path_of_the_wrong_type_is_a_config_error(path):
    with pytest.raises(ConfigError, match=r"`path` must be a file path"):
        read_mssd_log(path)


def test_lastfm_timestamp_9999_is_a_clear_error(tmp_path):
    """A placeholder year (9999) once gave pandas' OutOfBoundsDatetime traceback."""
    path = tmp_path / "plays.tsv"
    path.write_bytes(lastfm_time("9999-12-31T00:00:00Z"))
    with pytest.raises(DataFormatError) as info:
        read_lastfm_history(path)
    message = str(info.value)
    assert message.startswith(f"{path}: line 2: column 'timestamp'")
    assert "9999-12-31T00:00:00Z" in message


def test_long_values_are_cut_in_messages(tmp_path):
    path = tmp_path / "log.csv"
    path.write_bytes(mssd("s2,1,2,t1,False,False,False,True," + "9" * 50_000))
    with pytest.raises(DataFormatError, match=r"column 'date'") as info:
        read_mssd_log(path)
    assert len(str(info.value)) < 500


# ----------------------------------------------------------------------------- playlists

NPY_CASES = [
    ("binary", GARBAGE, False, r"x\.npy: not a NumPy \.npy or \.npz file \(it starts with"),
    ("binary-pickle-allowed", GARBAGE, True, r"x\.npy: not a NumPy \.npy or \.npz file"),
    ("text-pickle-allowed", b"track_1 track_2\n", True, r"not a NumPy \.npy or \.npz file"),
    ("empty", b"", False, r"x\.npy: not a NumPy \.npy or \.npz file \(the file is empty\)"),
    ("truncated", b"\x93NUMPY\x01\x00", False, r"x\.npy: not a readable NumPy"),
    ("zip-not-npz", b"PK\x03\x04" + GARBAGE, False, r"x\.npy: not a readable NumPy"),
]


@pytest.mark.parametrize(("data", "allow", "match"), [c[1:] for c in NPY_CASES],
                         ids=[c[0] for c in NPY_CASES])  # fmt: skip
def test_hostile_playlist_file_is_one_clear_error(tmp_path, data, allow, match):
    path = tmp_path / "x.npy"
    path.write_bytes(data)
    with pytest.raises(DataFormatError, match=match):
        read_playlist_array(path, allow_pickle=allow)


@pytest.mark.parametrize(
    ("array", "match"),
    [
        (np.arange(3), r"playlist 0 \(0-based\): expected a sequence of tokens"),
        (np.zeros((1, 1, 1)), r"expected a 1-D array of playlists"),
        (np.zeros((2, 2)), r"playlist 0 \(0-based\), token 1: expected a string"),
        (np.array([["track_1", "album_2"]]), r"token 2: expected a string 'track_<id>'"),
    ],
    ids=["ints", "3-d", "floats", "bad-token"],
)
def test_playlist_array_of_the_wrong_shape_or_type(tmp_path, array, match):
    path = tmp_path / "p.npy"
    np.save(path, array)
    with pytest.raises(DataFormatError, match=match):
        read_playlist_array(path)


# ----------------------------------------------------------------------------- sessionise


def history(**columns) -> pd.DataFrame:
    return pd.DataFrame(
        {"user_id": ["u", "u"], "timestamp": ["2009-01-01", "2009-01-02"]} | columns
    )


@pytest.mark.parametrize(
    ("frame", "error", "match"),
    [
        ([("u", "2009-01-01")], ConfigError, r"`history` must be a pandas DataFrame, got list"),
        (history(user_id=["u", None]), DataFormatError, r"column 'user_id' has 1 missing"),
        (history(timestamp=[1, 2]), DataFormatError, r"column 'timestamp' must be datetime64"),
        (history(timestamp=["x", "y"]), DataFormatError, r"column 'timestamp'"),
        (history(tags=[["a"], ["b"]]), DataFormatError, r"not lists or dicts"),
    ],
    ids=["not-a-frame", "missing-user", "numeric-times", "words", "list-column"],
)
def test_sessionise_bad_history(frame, error, match):
    with pytest.raises(error, match=match):
        sessionise(frame)


def test_sessionise_handles_times_beyond_2262():
    times = pd.to_datetime(["9999-12-31 00:00", "9999-12-31 00:05"], utc=True)
    out = sessionise(history(timestamp=times))
    assert out["session_id"].tolist() == ["u:0", "u:0"]


# ----------------------------------------------------------------------------- sources


@pytest.mark.parametrize(
    ("kind", "options", "error", "match"),
    [
        ("lastfm", {"gap_minutes": -1}, ConfigError, r"gap_minutes"),
        ("lastfm", {"gap_minutes": True}, ConfigError, r"gap_minutes"),
        ("mssd", {"allow_pickle": True}, ConfigError, r"'mssd' sources take no option"),
        ("lastfm", {}, DataFormatError, r"plays\.tsv: line 2: column 'timestamp'"),
    ],
    ids=["negative-gap", "bool-gap", "foreign-option", "bad-time"],
)
def test_sources_bad_input(tmp_path: Path, kind, options, error, match):
    path = tmp_path / "plays.tsv"
    path.write_bytes(lastfm_time("9999-12-31T00:00:00Z"))
    with pytest.raises(error, match=match):
        load_token_sessions(kind, path, **options)
