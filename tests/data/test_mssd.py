"""MSSD session log and track features: the shared sample, drops, and every bad input."""

import gzip

import numpy as np
import pandas as pd
import pytest

from musicrec_gym.data.loading import LoadReport
from musicrec_gym.data.mssd import LOG_COLUMNS, read_mssd_log, read_mssd_track_features
from musicrec_gym.errors import DataFormatError
from tests.data.shared_samples import shared_file

HEADER = ",".join(LOG_COLUMNS) + ",context_type,hour_of_day"


def row(
    session="s1", pos=1, length=3, track="t1", skips="False,False,False,True", date="2018-07-15"
):
    return f"{session},{pos},{length},{track},{skips},{date},radio,16"


def write_log(tmp_path, lines, name="log.csv", header=HEADER):
    path = tmp_path / name
    text = "\n".join([header, *lines]) + "\n"
    if name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


GOOD = [
    row("s2", 1, 2, "tA"),
    row("s1", 2, 3, "tB", "True,True,True,False"),
    row("s1", 1, 3, "tA"),
    row("s1", 3, 3, "tC", "False,True,True,False"),
    row("s2", 2, 2, "tB", "False,False,True,False"),
]


def test_small_log_is_typed_and_sorted(tmp_path):
    loaded = read_mssd_log(write_log(tmp_path, GOOD))
    f = loaded.frame
    assert list(f.columns[:10]) == [
        "session_id", "session_position", "session_length", "track_id",
        "skip_1", "skip_2", "skip_3", "not_skipped", "listened", "date",
    ]  # fmt: skip
    assert list(f.columns[10:]) == ["context_type", "hour_of_day"]  # others kept, file order
    assert f["session_id"].tolist() == ["s1", "s1", "s1", "s2", "s2"]
    assert f["session_position"].tolist() == [1, 2, 3, 1, 2]
    assert f["track_id"].tolist() == ["tA", "tB", "tC", "tA", "tB"]
    assert f["listened"].tolist() == [True, False, False, True, True]  # not skip_2
    assert f["not_skipped"].tolist() == [True, False, False, True, False]
    assert f["date"].dtype == np.dtype("datetime64[ns]")
    assert f["session_position"].dtype == np.int64 and f["skip_1"].dtype == bool
    assert f["hour_of_day"].tolist() == [16] * 5
    assert loaded.report == LoadReport(str(tmp_path / "log.csv"), 5, 5, {})
    assert loaded.report.summary() == "log.csv: 5 rows, kept 5; nothing dropped"


def test_integral_floats_are_integers(tmp_path):
    # a writer that went through float64 (e.g. pandas with a NaN) writes 2 as "2.0"
    f = read_mssd_log(write_log(tmp_path, [row(pos="1", length="2.0"), row(pos="2.0", length="2")]))
    assert f.frame["session_position"].tolist() == [1, 2]
    assert f.frame["session_length"].tolist() == [2, 2]
    with pytest.raises(DataFormatError, match=r"line 2: column 'session_position' .*'1" + "0" * 19):
        read_mssd_log(write_log(tmp_path, [row(pos="1" + "0" * 19)]))


def test_gzip_log_reads_like_plain(tmp_path):
    plain = read_mssd_log(write_log(tmp_path, GOOD)).frame
    packed = read_mssd_log(write_log(tmp_path, GOOD, name="log.csv.gz")).frame
    pd.testing.assert_frame_equal(plain, packed)


def test_dropped_rows_are_counted_by_reason(tmp_path):
    lines = [
        *GOOD,
        GOOD[0],  # exact duplicate
        row("s3", 1, 1, ""),  # empty track id
        row("s1", 1, 3, "tZ"),  # same (session, position) as a kept row, other track
        "",  # blank line
    ]
    loaded = read_mssd_log(write_log(tmp_path, lines))
    assert len(loaded.frame) == 5
    assert "tZ" not in set(loaded.frame["track_id"])
    assert loaded.report.rows_read == 9 and loaded.report.rows_kept == 5
    assert loaded.report.dropped == {
        "blank line": 1,
        "exact duplicate row": 1,
        "empty track_id_clean": 1,
        "duplicate (session_id, session_position)": 1,
    }
    assert loaded.report.summary() == (
        "log.csv: 9 rows, kept 5; dropped 1 (blank line), 1 (exact duplicate row), "
        "1 (empty track_id_clean), 1 (duplicate (session_id, session_position))"
    )


@pytest.mark.parametrize(
    ("line", "match"),
    [
        (row(pos="x"), r"log\.csv: line 3: column 'session_position' must be an int.*got 'x'"),
        (row(pos="0"), r"line 3: column 'session_position' must be an integer >= 1, got '0'"),
        (row(length="2.5"), r"line 3: column 'session_length' must be an integer.*'2.5'"),
        (row(skips="False,maybe,False,True"), r"line 3: column 'skip_2' must be a bool.*'maybe'"),
        (row(date="2018-13-45"), r"line 3: column 'date' must be a date like 2018-07-15.*'2018-13"),
        (row(date="yesterday"), r"line 3: column 'date' must be a date.*'yesterday'"),
        (row(session=""), r"line 3: column 'session_id' must be a non-empty id"),
        (row() + ",extra", r"line 3: expected 11 fields separated by ',', got 12"),
    ],
)  # fmt: skip
def test_bad_values_name_file_line_column_value(tmp_path, line, match):
    path = write_log(tmp_path, [GOOD[0], line, GOOD[1]])
    with pytest.raises(DataFormatError, match=match):
        read_mssd_log(path)


def test_missing_column_is_named_with_the_expected_ones(tmp_path):
    header = HEADER.replace("skip_2,", "")
    path = write_log(tmp_path, ["s1,1,1,t1,False,False,True,2018-07-15,radio,16"], header=header)
    with pytest.raises(
        DataFormatError,
        match=r"log\.csv: line 1: missing column\(s\) 'skip_2'.*expected the columns "
        r"session_id, session_position, .*skip_2.*date",
    ):
        read_mssd_log(path)


def test_missing_empty_headeronly_truncated_and_corrupt_files(tmp_path):
    with pytest.raises(DataFormatError, match=r"nope\.csv: file not found"):
        read_mssd_log(tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataFormatError, match=r"empty\.csv: the file is empty"):
        read_mssd_log(tmp_path / "empty.csv")
    with pytest.raises(DataFormatError, match=r"header but no data rows"):
        read_mssd_log(write_log(tmp_path, [], name="header.csv"))
    whole = gzip.compress(("\n".join([HEADER, *GOOD * 200]) + "\n").encode())
    (tmp_path / "cut.csv.gz").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(
        DataFormatError, match=r"cut\.csv\.gz: the gzip file is truncated or corrupt"
    ):
        read_mssd_log(tmp_path / "cut.csv.gz")
    (tmp_path / "fake.csv.gz").write_bytes(b"this is not gzip data at all\n")
    with pytest.raises(
        DataFormatError, match=r"fake\.csv\.gz: the gzip file is truncated or corrupt"
    ):
        read_mssd_log(tmp_path / "fake.csv.gz")
    with pytest.raises(DataFormatError, match=r"not a file"):
        read_mssd_log(tmp_path)


def test_shared_mssd_sample_matches_its_readme():
    loaded = read_mssd_log(shared_file("mssd/log_sample.csv.gz"))
    f = loaded.frame
    assert loaded.report.rows_read == 70_030
    assert loaded.report.rows_kept == 70_030 and loaded.report.dropped == {}
    sizes = f.groupby("session_id").size()
    assert len(sizes) == 4_168
    assert sizes.between(10, 20).all()
    assert sizes.mean() == pytest.approx(16.8, abs=0.05)
    # whole sessions: positions 1..n, n equal to the logged session_length
    first = f.groupby("session_id")["session_length"].first()
    assert (first == sizes).all()
    expected_pos = f.groupby("session_id").cumcount().to_numpy() + 1
    assert np.array_equal(f["session_position"].to_numpy(), expected_pos)
    assert f["not_skipped"].mean() == pytest.approx(0.33, abs=0.01)
    assert f["skip_2"].mean() == pytest.approx(0.52, abs=0.01)
    assert np.array_equal(f["listened"].to_numpy(), ~f["skip_2"].to_numpy())
    # the flags are nested (a very early skip is an early skip; a listen to the end is no
    # skip); the real log breaks skip_2 => skip_3 on one row only, and we keep it as read
    assert not (f["skip_1"] & ~f["skip_2"]).any()
    assert not (f["not_skipped"] & f["skip_2"]).any()
    assert (f["skip_2"] & ~f["skip_3"]).sum() <= 1
    assert f["date"].min() >= pd.Timestamp("2018-01-01") and f["date"].isna().sum() == 0
    assert {"context_type", "premium", "hist_user_behavior_reason_end"} <= set(f.columns)


def test_shared_track_features_schema_example():
    loaded = read_mssd_track_features(shared_file("mssd/track_features_schema_example.csv"))
    f = loaded.frame
    assert len(f) == 10 and loaded.report.dropped == {}
    assert f.columns[0] == "track_id"  # the file's UTF-8 byte-order mark is not in the name
    assert f["track_id"].is_unique and f["track_id"].str.startswith("t").all()
    assert f["duration"].dtype == np.float64 and f["duration"].between(30, 1200).all()
    vectors = f[[f"acoustic_vector_{i}" for i in range(8)]].to_numpy()
    assert vectors.dtype == np.float64 and np.isfinite(vectors).all()
    assert np.abs(vectors).max() <= 1.5
    assert {"track_name", "artist", "tempo"} <= set(f.columns)


def test_track_features_errors_and_drops(tmp_path):
    cols = ["track_id", "duration", *(f"acoustic_vector_{i}" for i in range(8)), "tempo"]
    good = "t1,180.5," + ",".join(["0.1"] * 8) + ",120"
    path = tmp_path / "tf.csv"
    path.write_text("\n".join([",".join(cols), good, good, "," + good[3:]]) + "\n")
    loaded = read_mssd_track_features(path)
    assert loaded.frame["track_id"].tolist() == ["t1"]
    assert loaded.report.dropped == {"empty track_id": 1, "duplicate track_id": 1}
    path.write_text("\n".join([",".join(cols), good, good.replace("180.5", "3min")]) + "\n")
    with pytest.raises(
        DataFormatError, match=r"tf\.csv: line 3: column 'duration' must be a finite .*'3min'"
    ):
        read_mssd_track_features(path)
    path.write_text("\n".join([",".join(c for c in cols if c != "acoustic_vector_3"), "t1"]) + "\n")
    with pytest.raises(DataFormatError, match=r"missing column\(s\) 'acoustic_vector_3'"):
        read_mssd_track_features(path)
