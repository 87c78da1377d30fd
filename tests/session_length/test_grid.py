"""The YAML grid: validation with file/line/key messages, a tiny end-to-end run, the CLI."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from musicrec_gym.errors import ConfigError
from musicrec_gym.session_length.grid import run_grid
from musicrec_gym.session_length.grid_config import load_config

from ..conftest import SHARED_DATA

ROOT = Path(__file__).resolve().parents[2]


def tiny_config(world: Path, extra: str = "") -> str:
    return (
        textwrap.dedent(
            f"""\
        name: tiny
        data:
          synthetic:
            world: {world}
            n_listeners: 30
            sessions_per_listener: 14
            max_tracks: 60
            per_skip: 0.0
        seed: 1
        train: {{hidden: 8, epochs: 3, batch_size: 8, chunk: 16}}
        clustering: {{columns: [age, gender], k_range: [2, 3]}}
        grid:
          method: [gru, lstm2]
          dropout: [0.0]
          clusters: [none, "kmeans:2"]
          standardisation: ["off", mixed]
        """
        )
        + extra
    )


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "grid.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (("  method: [gru, lstm2]", "  method: [gru, lstmm]"), r"line 13: grid.method\[1\]: "
         r"unknown method 'lstmm'. Did you mean 'lstm'"),
        (("seed: 1", "seed: 1\nsede: 2"),
         r"line 10: sede: unknown key 'sede'. Did you mean 'seed'"),
        (("  clusters: [none", "  clusters: [nne"), r"grid.clusters\[0\]: clusters must be"),
        (("standardisation: [\"off\", mixed]", "standardisation: [sometimes]"),
         r"unknown standardisation 'sometimes'"),
        (("    per_skip: 0.0", "    per_skip: 0.0\n    patience: 3"),
         r"line 9: data.synthetic.patience: unknown key"),
        (("train: {hidden: 8", "train: {hidden: 0"), r"train.hidden: `hidden` must be an int > 0"),
        (("dropout: [0.0]", "dropout: [1.5]"), r"grid.dropout\[0\]: dropout must be"),
    ],
)  # fmt: skip
def test_config_errors_name_the_place(tmp_path, edit, match):
    text = tiny_config(Path("w")).replace(*edit)
    assert text != tiny_config(Path("w"))
    with pytest.raises(ConfigError, match=match):
        load_config(write(tmp_path, text))


def test_baseline_must_be_a_grid_cell(tmp_path):
    extra = 'baseline: {method: lstm, dropout: 0.0, clusters: none, standardisation: "off"}\n'
    with pytest.raises(ConfigError, match=r"baseline.*not in the grid"):
        load_config(write(tmp_path, tiny_config(Path("w"), extra)))


def test_shipped_configs_are_valid():
    for name in ("session_length_synthetic.yaml", "session_length_lastfm.yaml"):
        config = load_config(ROOT / "experiments" / "configs" / name)
        assert len(config.cells) == 54 and config.baseline in config.cells


def test_tiny_grid_end_to_end(tmp_path, tiny_world):
    config = load_config(write(tmp_path, tiny_config(tiny_world)))
    result = run_grid(config, out=tmp_path / "run", progress=False, log=lambda *_: None)
    table = pd.read_csv(tmp_path / "run" / "results.csv")
    assert len(table) == 2 + 8
    mean_row = table[table["method"] == "mean"].iloc[0]
    assert mean_row["norm_mae"] == pytest.approx(1.0)
    assert (table["norm_mae"] > 0).all() and table["best"].sum() == 1
    assert table["baseline"].sum() == 1
    for name in ("results.md", "summary.csv", "elbow.png", "silhouette.png", "config.yaml"):
        assert (tmp_path / "run" / name).is_file()
    assert "| gru | 0 | none | off |" in result.markdown
    again = run_grid(config, out=tmp_path / "run2", progress=False, log=lambda *_: None)
    pd.testing.assert_frame_equal(result.table, again.table)


def test_cli_smoke(tmp_path, tiny_world):
    text = tiny_config(tiny_world).replace("[gru, lstm2]", "[gru]").replace(', "kmeans:2"', "")
    config = write(tmp_path, text)
    proc = subprocess.run(
        [sys.executable, "-m", "musicrec_gym.cli", "session-length", str(config),
         "--out", str(tmp_path / "run"), "--quiet"],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "baseline GRU" in proc.stdout and "normalised MAE" in proc.stdout
    bad = write(tmp_path, text.replace("seed: 1", "seeds: 1"))
    proc = subprocess.run(
        [sys.executable, "-m", "musicrec_gym.cli", "session-length", str(bad)],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2 and "unknown key 'seeds'" in proc.stderr


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"real data samples absent: {SHARED_DATA}")
def test_real_lastfm_sample_end_to_end(tmp_path):
    pytest.importorskip("musicrec_gym.data.lastfm", reason="Last.fm loader not available")
    lastfm = SHARED_DATA / "lastfm1k"
    text = textwrap.dedent(
        f"""\
        name: lastfm-tiny
        data:
          lastfm:
            plays: [{lastfm / "plays_user_000001.tsv"}, {lastfm / "plays_small.tsv"}]
            profiles: {lastfm / "userid-profile.tsv"}
        train: {{hidden: 8, epochs: 2, chunk: 64}}
        grid: {{method: [gru], dropout: [0.0], clusters: [none], standardisation: ["off"]}}
        """
    )
    lines = []
    result = run_grid(
        load_config(write(tmp_path, text)), out=tmp_path / "run", progress=False,
        log=lines.append,
    )  # fmt: skip
    assert result.summary.duplicates_dropped >= 1  # user_000001's first play is in both files
    assert result.summary.rows["user_id"].nunique() == 6
    assert (result.summary.rows["split"] == "test").sum() > 100
    assert any("median gap between plays" in line for line in lines)
    assert result.table["norm_mae"].notna().all()
