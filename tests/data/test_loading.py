"""What every loader shares: the report, and the same clear error for unreadable files."""

import gzip

import pytest

from musicrec_gym.data.events import read_event_log
from musicrec_gym.data.lastfm import read_lastfm_history, read_lastfm_profiles
from musicrec_gym.data.loading import LoadReport
from musicrec_gym.data.mssd import read_mssd_log, read_mssd_track_features
from musicrec_gym.data.playlists import read_carousel_playlists, read_carousel_users
from musicrec_gym.errors import DataFormatError

MSSD_ROW = "s1,1,1,t1,False,False,False,True,2018-07-15"
TF_ROW = "t1,180.5," + ",".join(["0.1"] * 8)
DIMS = ",".join(f"dim_{i}" for i in range(3))

# loader, file suffix, header line (None: no header), one valid data line
LOADERS = {
    "mssd_log": (read_mssd_log, ".csv",
                 "session_id,session_position,session_length,track_id_clean,skip_1,skip_2,"
                 "skip_3,not_skipped,date", MSSD_ROW),
    "mssd_tracks": (read_mssd_track_features, ".csv",
                    "track_id,duration," + ",".join(f"acoustic_vector_{i}" for i in range(8)),
                    TF_ROW),
    "lastfm_history": (read_lastfm_history, ".tsv", None,
                       "u1\t2009-05-04T23:08:57Z\ta\tArtist\tt\tTitle"),
    "lastfm_profiles": (read_lastfm_profiles, ".tsv", "#id\tgender\tage\tcountry\tregistered",
                        "u1\tm\t22\tJapan\tAug 13, 2006"),
    "carousel_playlists": (read_carousel_playlists, ".csv", DIMS + ",3", "0.1,0.2,0.3,-5"),
    "carousel_users": (read_carousel_users, ".csv", "segment," + DIMS, "1,0.1,0.2,0.3"),
    "events": (read_event_log, ".csv",
               "user_id,item_id,listening_time_in_scale_0-5,title,duration,event_type",
               "u1,i1,5,Song,210,Like"),
}  # fmt: skip


def _text(header, row, n):
    return "\n".join(([header] if header else []) + [row] * n) + "\n"


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_every_loader_reads_plain_and_gzip_alike(tmp_path, name):
    loader, suffix, header, row = LOADERS[name]
    plain = tmp_path / f"f{suffix}"
    plain.write_text(_text(header, row, 1))
    packed = tmp_path / f"f{suffix}.gz"
    packed.write_bytes(gzip.compress(_text(header, row, 1).encode()))
    a, b = loader(plain), loader(packed)
    assert len(a.frame) == len(b.frame) == 1
    assert a.frame.equals(b.frame)
    assert a.report.rows_read == 1 and a.report.rows_kept == 1


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_every_loader_rejects_missing_empty_and_truncated_files(tmp_path, name):
    loader, suffix, header, row = LOADERS[name]
    with pytest.raises(DataFormatError, match=rf"absent{suffix}: file not found"):
        loader(tmp_path / f"absent{suffix}")
    (tmp_path / f"empty{suffix}").write_text("")
    with pytest.raises(DataFormatError, match=rf"empty{suffix}: the file is empty"):
        loader(tmp_path / f"empty{suffix}")
    data = gzip.compress(_text(header, row, 2000).encode())
    (tmp_path / f"cut{suffix}.gz").write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(DataFormatError, match=r"the gzip file is truncated or corrupt"):
        loader(tmp_path / f"cut{suffix}.gz")
    (tmp_path / f"bytes{suffix}").write_bytes(b"\xff\xfe\x00garbage\x00\n")
    with pytest.raises(DataFormatError, match=rf"bytes{suffix}: not UTF-8 text"):
        loader(tmp_path / f"bytes{suffix}")


def test_report_summary():
    report = LoadReport("/data/log.csv.gz", 70_030, 70_000, {"exact duplicate row": 30})
    assert (
        report.summary() == "log.csv.gz: 70,030 rows, kept 70,000; dropped 30 (exact duplicate row)"
    )
    assert LoadReport("x.tsv", 3, 3, {}).summary() == "x.tsv: 3 rows, kept 3; nothing dropped"
