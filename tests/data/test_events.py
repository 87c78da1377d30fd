"""Implicit-feedback event logs: strengths, drops and every bad input."""

import gzip

import numpy as np
import pytest

from musicrec_gym.data.events import EVENT_COLUMNS, EVENT_STRENGTHS, read_event_log
from musicrec_gym.errors import DataFormatError

HEADER = ",".join(EVENT_COLUMNS)


def write(tmp_path, lines, name="events.csv", header=HEADER):
    path = tmp_path / name
    text = "\n".join([header, *lines]) + "\n"
    path.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    return path


def event(user="u1", item="i1", listening="5", title="Song", duration="210", kind="Like"):
    return ",".join([user, item, listening, title, duration, kind])


def test_design_strength_table():
    # DESIGN.md §1, verbatim
    assert EVENT_STRENGTHS == {
        "Listen it frequently": 3, "Have listened it completely": 1, "Like": 1,
        "View Song Information": 1, "Download": 3, "Add it to your music": 2, "Skip it": -1,
        "Skip it frequently": -3, "Not recommend it anymore": -2,
    }  # fmt: skip


def test_every_event_type_gets_its_strength_in_file_order(tmp_path):
    kinds = list(EVENT_STRENGTHS)
    lines = [event(user=f"u{i % 2}", item=f"i{i}", kind=k) for i, k in enumerate(kinds)]
    loaded = read_event_log(write(tmp_path, lines))
    f = loaded.frame
    assert f["event_type"].tolist() == kinds
    assert f["strength"].tolist() == [EVENT_STRENGTHS[k] for k in kinds]
    assert f["item_id"].tolist() == [f"i{i}" for i in range(len(kinds))]
    assert f["strength"].dtype == np.int64
    assert list(f.columns) == [*EVENT_COLUMNS, "strength"]
    assert loaded.report.summary() == "events.csv: 9 rows, kept 9; nothing dropped"


def test_spelling_variants_titles_and_drops(tmp_path):
    lines = [
        event(kind="skip IT  frequently", title='"Hello, World"'),
        event(kind="Like", duration=""),
        event(kind="Like", duration=""),  # the same event twice: kept (no timestamps)
        event(item="", kind="Download"),
    ]
    loaded = read_event_log(write(tmp_path, lines, "events.csv.gz"))
    f = loaded.frame
    assert f["event_type"].tolist() == ["Skip it frequently", "Like", "Like"]
    assert f["strength"].tolist() == [-3, 1, 1]
    assert f["title"].iloc[0] == "Hello, World"
    assert np.isnan(f["duration"].iloc[1]) and f["duration"].iloc[0] == 210.0
    assert loaded.report.dropped == {"empty item_id": 1}


def test_unknown_event_type_names_line_hint_and_allowed(tmp_path):
    path = write(tmp_path, [event(), event(kind="Downlaod")])
    with pytest.raises(DataFormatError) as info:
        read_event_log(path)
    message = str(info.value)
    assert "events.csv: line 3: column 'event_type': unknown event type 'Downlaod'." in message
    assert "Did you mean 'Download'?" in message
    assert all(kind in message for kind in EVENT_STRENGTHS)


@pytest.mark.parametrize(
    ("line", "match"),
    [
        (event(listening="7"),
         r"line 3: column 'listening_time_in_scale_0-5' must be a number from 0 to 5, got '7"),
        (event(listening="high"),
         r"line 3: column 'listening_time_in_scale_0-5' must be a number, got 'high'"),
        (event(duration="3:30"),
         r"line 3: column 'duration' must be a finite number >= 0 or empty, got '3:30'"),
        (event(user=""), r"line 3: column 'user_id' must be a non-empty id"),
    ],
)  # fmt: skip
def test_bad_values(tmp_path, line, match):
    with pytest.raises(DataFormatError, match=match):
        read_event_log(write(tmp_path, [event(), line]))


def test_missing_column_empty_and_truncated(tmp_path):
    header = HEADER.replace(",event_type", "")
    with pytest.raises(
        DataFormatError, match=r"missing column\(s\) 'event_type'.*user_id, item_id"
    ):
        read_event_log(write(tmp_path, ["u1,i1,5,Song,210"], header=header))
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataFormatError, match=r"empty\.csv: the file is empty"):
        read_event_log(tmp_path / "empty.csv")
    data = gzip.compress(("\n".join([HEADER, *[event(item=f"i{i}") for i in range(300)]])).encode())
    (tmp_path / "cut.csv.gz").write_bytes(data[:-25])
    with pytest.raises(
        DataFormatError, match=r"cut\.csv\.gz: the gzip file is truncated or corrupt"
    ):
        read_event_log(tmp_path / "cut.csv.gz")
    with pytest.raises(DataFormatError, match=r"gone\.csv: file not found"):
        read_event_log(tmp_path / "gone.csv")
