"""``musicrec build``: seeded, hash-reproducible worlds."""

import dataclasses
import json
import subprocess
import sys

import pytest

from musicrec_gym.artifacts import default_world_dir
from musicrec_gym.world import REQUIRED_FILES, load_world
from tests.conftest import TINY, build_tiny


def test_same_seed_same_hashes_and_other_seed_differs(tiny_world, tmp_path):
    first = json.loads((tiny_world / "manifest.json").read_text())
    again = build_tiny(tmp_path / "again")
    assert again["files"] == first["files"]
    other = build_tiny(tmp_path / "other", TINY.with_seed(2))
    assert other["files"]["truth.npz"] != first["files"]["truth.npz"]
    assert other["files"]["encoder.npz"] != first["files"]["encoder.npz"]


def test_manifest_covers_every_required_file(tiny_world):
    manifest = json.loads((tiny_world / "manifest.json").read_text())
    assert set(REQUIRED_FILES) <= set(manifest["files"])
    assert manifest["seed"] == 1 and manifest["kind"] == "synthetic"
    assert manifest["reports"]["encoder"]["n_train"] > 0
    world = load_world(tiny_world)
    assert world.n_tracks == 60 and world.obs_dim == 9
    assert world.catalog["plays"].sum() == manifest["reports"]["logs"]["plays"]


def test_shipped_world_reports_its_quality():
    """The shipped world's embeddings beat popularity and its encoder beats the mean."""
    reports = json.loads((default_world_dir() / "manifest.json").read_text())["reports"]
    assert reports["embeddings"]["hit"] > reports["embeddings"]["pop_hit"]
    assert reports["embeddings"]["ndcg"] > reports["embeddings"]["pop_ndcg"]
    assert reports["encoder"]["heldout_mse"] < 0.5 * reports["encoder"]["mean_baseline_mse"]
    assert reports["encoder"]["n_train"] + reports["encoder"]["n_heldout"] >= 1_000_000


def test_build_config_validation():
    with pytest.raises(ValueError, match="n_sessions"):
        dataclasses.replace(TINY, n_sessions=0)


@pytest.mark.slow
def test_musicrec_build_reproduces_the_shipped_world(tmp_path):
    """The full default build (about 5 minutes on one core) gives the shipped hashes."""
    out = tmp_path / "world"
    cmd = [sys.executable, "-m", "musicrec_gym.cli", "build", "--out", str(out), "--quiet"]
    subprocess.run([*cmd, "--no-eval", "--check"], check=True, capture_output=True)
    built = json.loads((out / "manifest.json").read_text())["files"]
    shipped = json.loads((default_world_dir() / "manifest.json").read_text())["files"]
    assert built == shipped


def test_check_needs_the_default_settings(tmp_path, capsys):
    """``--check`` with other settings is refused before anything is built."""
    from musicrec_gym.cli import main

    out = tmp_path / "world"
    assert main(["build", "--check", "--seed", "3", "--out", str(out), "--quiet"]) == 2
    assert "--check compares the build with the shipped default world" in capsys.readouterr().err
    assert not out.exists()
