"""Bad input to the session-length grid: every config key, and training that diverges.

Every case of the standing table is a ``ConfigError`` naming the key at fault; a model
whose training loss is not finite is never reported as the best cell.
"""

from __future__ import annotations

import copy
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from musicrec_gym.errors import ConfigError
from musicrec_gym.session_length import grid as grid_module
from musicrec_gym.session_length.clusters import ClusterSpec
from musicrec_gym.session_length.grid import run_grid
from musicrec_gym.session_length.grid_config import load_config
from musicrec_gym.session_length.leave import expected_tracks
from musicrec_gym.session_length.models import TrainConfig, feature_frame, train_model
from musicrec_gym.session_length.synthetic import SyntheticHistoryConfig

BASE = textwrap.dedent(
    """\
    name: tiny
    data:
      synthetic:
        world: w
        n_listeners: 30
        sessions_per_listener: 14
        max_tracks: 60
        per_skip: 0.0
    seed: 1
    train: {hidden: 8, epochs: 3, batch_size: 8, chunk: 16}
    clustering: {columns: [age, gender], k_range: [2, 3]}
    grid:
      method: [gru, lstm2]
      dropout: [0.0]
      clusters: [none, "kmeans:2"]
      standardisation: ["off", mixed]
    """
)
SYNTHETIC = (
    "  synthetic:\n    world: w\n    n_listeners: 30\n    sessions_per_listener: 14\n"
    "    max_tracks: 60\n    per_skip: 0.0\n"
)


def ed(old: str, new: str) -> str:
    assert old in BASE, old
    return BASE.replace(old, new, 1)


def train(extra: str) -> str:
    return ed("chunk: 16}", f"chunk: 16, {extra}}}")


# The standing table: (config text, the key the message must name).
BAD = [
    pytest.param(train("lr: .inf"), r"train\.lr: `lr` must be a finite number", id="lr-inf"),
    pytest.param(train("lr: .nan"), r"train\.lr", id="lr-nan"),
    pytest.param(train("lr: -0.1"), r"train\.lr", id="lr-negative"),
    pytest.param(train("lr: 1.0e+30"), r"train\.lr", id="lr-huge"),
    pytest.param(train("lr: true"), r"train\.lr", id="lr-bool"),
    pytest.param(train("lr: fast"), r"train\.lr", id="lr-text"),
    pytest.param(ed("hidden: 8", "hidden: 100000000"), r"train\.hidden: `hidden` must be an int <=",
                 id="hidden-huge"),
    pytest.param(ed("hidden: 8", "hidden: true"), r"train\.hidden", id="hidden-bool"),
    pytest.param(ed("epochs: 3", "epochs: 1000000000000"), r"train\.epochs", id="epochs-huge"),
    pytest.param(ed("epochs: 3", "epochs: 2.5"), r"train\.epochs", id="epochs-float"),
    pytest.param(ed("batch_size: 8", "batch_size: -8"), r"train\.batch_size",
                 id="batch-size-negative"),
    pytest.param(train("patience: 0"), r"train\.patience", id="patience-zero"),
    pytest.param(ed("train: {hidden: 8, epochs: 3, batch_size: 8, chunk: 16}", "train: [8]"),
                 r"train: train must be a mapping", id="train-list"),
    pytest.param(ed("name: tiny", "name: " + "n" * 5000), r"name: must be a name of at most 64",
                 id="name-too-long"),
    pytest.param(ed("name: tiny", "name: ../up"), r"name: must be a name", id="name-path"),
    pytest.param(ed("seed: 1", "seed: 100000000000000000000"), r"seed: must be an int <=",
                 id="seed-huge"),
    pytest.param(ed("seed: 1", "seed: false"), r"seed: must be an int", id="seed-bool"),
    pytest.param(ed("seed: 1", "seed: 1\ngap_minutes: .inf"), r"gap_minutes", id="gap-inf"),
    pytest.param(ed("seed: 1", "seed: 1\ngap_minutes: 0"), r"gap_minutes", id="gap-zero"),
    pytest.param(ed("seed: 1", "seed: 1\nsplit: [.nan, 0.5, 0.5]"), r"split", id="split-nan"),
    pytest.param(ed("seed: 1", "seed: 1\nsplit: [0.5, 0.5]"), r"split", id="split-two"),
    pytest.param(ed("n_listeners: 30", "n_listeners: true"),
                 r"data\.synthetic\.n_listeners: `n_listeners` must be an int",
                 id="listeners-bool"),
    pytest.param(ed("n_listeners: 30", "n_listeners: 1000000000000"),
                 r"data\.synthetic\.n_listeners", id="listeners-huge"),
    pytest.param(ed("sessions_per_listener: 14", "sessions_per_listener: 1"),
                 r"data\.synthetic\.sessions_per_listener", id="sessions-one"),
    pytest.param(ed("max_tracks: 60", "max_tracks: 6.5"), r"data\.synthetic\.max_tracks",
                 id="max-tracks-float"),
    pytest.param(ed("max_tracks: 60", "max_tracks: 10000\n    n_listeners: 100000")
                 .replace("    n_listeners: 30\n", "")
                 .replace("sessions_per_listener: 14", "sessions_per_listener: 1000"),
                 r"data\.synthetic.*`n_listeners` x `sessions_per_listener` x `max_tracks`",
                 id="too-many-plays"),
    pytest.param(ed("per_skip: 0.0", "per_skip: .inf"), r"data\.synthetic\.per_skip",
                 id="per-skip-inf"),
    pytest.param(ed("per_skip: 0.0", "per_skip: abc"), r"data\.synthetic\.per_skip",
                 id="per-skip-text"),
    pytest.param(ed("per_skip: 0.0", "per_skip: 0.0\n    mood_sigma: .inf"),
                 r"data\.synthetic\.mood_sigma", id="mood-sigma-inf"),
    pytest.param(ed("per_skip: 0.0", "per_skip: 0.0\n    mood_rho: [0.5]"),
                 r"data\.synthetic\.mood_rho", id="mood-rho-list"),
    pytest.param(ed("world: w", "world: 5"), r"data\.synthetic\.world", id="world-int"),
    pytest.param(ed("world: w", "world: " + "w" * 5000), r"data\.synthetic\.world",
                 id="world-too-long"),
    pytest.param(ed(SYNTHETIC, "  lastfm: {plays: [a.tsv, a.tsv]}\n"),
                 r"data\.lastfm\.plays\[1\]: 'a\.tsv' is listed twice", id="plays-duplicate"),
    pytest.param(ed(SYNTHETIC, "  lastfm: {plays: []}\n"), r"data\.lastfm\.plays",
                 id="plays-empty"),
    pytest.param(ed(SYNTHETIC, "  lastfm: {plays: a.tsv, profiles: [p]}\n"),
                 r"data\.lastfm\.profiles", id="profiles-list"),
    pytest.param(ed("columns: [age, gender]", "columns: [age, age]"),
                 r"clustering\.columns\[1\]: profile column 'age' is listed twice",
                 id="columns-duplicate"),
    pytest.param(ed("columns: [age, gender]", "columns: []"), r"clustering\.columns",
                 id="columns-empty"),
    pytest.param(ed("k_range: [2, 3]", "k_range: [2, 100000000]"), r"clustering\.k_range",
                 id="k-range-huge"),
    pytest.param(ed("k_range: [2, 3]", "k_range: [2, 3], mixed_threshold: true"),
                 r"clustering\.mixed_threshold", id="mixed-threshold-bool"),
    pytest.param(ed("method: [gru, lstm2]", "method: [gru, gru]"),
                 r"grid\.method\[1\]: value 'gru' is listed twice", id="method-duplicate"),
    pytest.param(ed("method: [gru, lstm2]", "method: []"), r"grid\.method: must be a non-empty",
                 id="method-empty"),
    pytest.param(ed("dropout: [0.0]", "dropout: [.nan]"), r"grid\.dropout\[0\]",
                 id="dropout-nan"),
    pytest.param(ed("dropout: [0.0]", "dropout: [0.0, 0]"), r"grid\.dropout\[1\]",
                 id="dropout-duplicate"),
    pytest.param(ed('clusters: [none, "kmeans:2"]', 'clusters: [none, "kmeans:100000000000"]'),
                 r"grid\.clusters\[1\]: clusters 'kmeans:100000000000': K must be in \[2, 100\]",
                 id="clusters-huge"),
    pytest.param(ed('clusters: [none, "kmeans:2"]', "clusters: [none, 3]"),
                 r"grid\.clusters\[1\]", id="clusters-int"),
    pytest.param(ed("dropout: [0.0]", "dropout: [" + ", ".join(f"0.{i:03d}" for i in range(101))
                    + "]"),
                 r"grid\.dropout: lists 101 values; the limit is 100", id="grid-key-too-long"),
    pytest.param(ed("dropout: [0.0]", "dropout: [" + ", ".join(f"0.{i:03d}" for i in range(100))
                    + "]").replace("standardisation: [\"off\", mixed]",
                               "standardisation: [\"off\", mixed, \"on\"]"),
                 r"grid: this grid has 1,200 cells .*the limit is 1,000", id="grid-too-large"),
    pytest.param("name: &a [*a]\n", r"line 1: an alias .* recursive", id="recursive-alias"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "match"), BAD)
def test_bad_session_length_config_names_the_key(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "grid.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=match):
        load_config(path)


def test_the_table_is_large() -> None:
    assert len(BAD) >= 40


def test_a_config_that_is_not_text(tmp_path: Path) -> None:
    path = tmp_path / "grid.yaml"
    path.write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(ConfigError, match=r"grid\.yaml: the config file is not UTF-8"):
        load_config(path)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: TrainConfig(lr=float("inf")), r"`lr` must be a finite number in \(0, 1\]"),
        (lambda: TrainConfig(chunk=True), r"`chunk` must be an int > 0"),
        (lambda: SyntheticHistoryConfig(mood_sigma=float("nan")), r"`mood_sigma`"),
        (lambda: SyntheticHistoryConfig(seed=-1), r"`seed` must be an int"),
        (lambda: ClusterSpec.parse(["kmeans:2"]), r"clusters must be 'none'"),
        (lambda: ClusterSpec.parse("spectral:1"), r"K must be in \[2, 100\]"),
        (lambda: expected_tracks(np.array([600.0]), np.nan), r"`seconds_per_play` must be"),
    ],
    ids=[
        "lr-inf",
        "chunk-bool",
        "mood-nan",
        "seed-negative",
        "clusters-list",
        "clusters-one",
        "seconds-per-play-nan",
    ],
)
def test_records_check_their_fields(make, match) -> None:
    with pytest.raises(ConfigError, match=match):
        make()


# ------------------------------------------------------------------- divergence


def _diverging(config: TrainConfig) -> TrainConfig:
    """``config`` with an infinite learning rate (which a config can no longer ask for)."""
    bad = copy.copy(config)
    object.__setattr__(bad, "lr", float("inf"))
    return bad


def test_a_non_finite_loss_marks_the_model_diverged(toy_summary) -> None:
    rows = toy_summary.rows
    features = feature_frame(rows, 30.0)
    config = TrainConfig(hidden=4, epochs=3, batch_size=4, chunk=8)
    fine = train_model(rows, features, "gru", 0.0, True, config, seed=0)
    assert not fine.diverged
    model = train_model(rows, features, "gru", 0.0, True, _diverging(config), seed=0)
    assert model.diverged
    assert model.epochs_run == 1  # stopped at the first non-finite loss


def _tiny_grid(world: Path, tmp_path: Path) -> Path:
    text = textwrap.dedent(
        f"""\
        name: diverge
        data:
          synthetic: {{world: {world}, n_listeners: 20, sessions_per_listener: 12,
                       max_tracks: 40, per_skip: 0.0}}
        seed: 1
        train: {{hidden: 4, epochs: 2, batch_size: 8, chunk: 16}}
        clustering: {{columns: [age], k_range: [2, 2]}}
        grid: {{method: [gru], dropout: [0.0, 0.2], clusters: [none], standardisation: ["off"]}}
        """
    )
    path = tmp_path / "grid.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_diverged_cell_is_never_the_best(tmp_path, tiny_world, monkeypatch) -> None:
    real = grid_module.train_model

    def diverge_without_dropout(rows, features, method, dropout, standardise, config, seed):
        if dropout == 0.0:
            config = _diverging(config)
        return real(rows, features, method, dropout, standardise, config, seed)

    monkeypatch.setattr(grid_module, "train_model", diverge_without_dropout)
    config = load_config(_tiny_grid(tiny_world, tmp_path))
    result = run_grid(config, out=tmp_path / "run", progress=False, log=lambda *_: None)
    table = pd.read_csv(tmp_path / "run" / "results.csv")
    cells = table[table["clusters"] != "-"].set_index("dropout")
    assert bool(cells.loc[0.0, "diverged"]) and np.isnan(cells.loc[0.0, "mae_s"])
    assert not bool(cells.loc[0.0, "best"])
    assert bool(cells.loc[0.2, "best"]) and result.best.cell.dropout == 0.2
    assert "| – | – | baseline, diverged |" in result.markdown


def test_a_grid_where_every_cell_diverged_is_an_error(tmp_path, tiny_world, monkeypatch) -> None:
    real = grid_module.train_model

    def always_diverge(rows, features, method, dropout, standardise, config, seed):
        return real(rows, features, method, dropout, standardise, _diverging(config), seed)

    monkeypatch.setattr(grid_module, "train_model", always_diverge)
    config = load_config(_tiny_grid(tiny_world, tmp_path))
    with pytest.raises(ConfigError, match=r"grid\.yaml: train\.lr: no cell of the grid has a "):
        run_grid(config, out=tmp_path / "run", progress=False, log=lambda *_: None)
    assert "diverged" in (tmp_path / "run" / "results.md").read_text()
