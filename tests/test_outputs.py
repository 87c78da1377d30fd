"""Where ``build``/``fit`` write, CSV-injection-safe worlds, and the CLI's bad arguments.

* ``--out`` (``out_dir``): a new or empty directory is written; a world of the same kind
  is replaced only with ``--force``; any other non-empty directory, a file, or a path in
  the installed package is refused; the world is staged in a sibling and renamed, so an
  interrupted run leaves nothing and the manifest hashes only the run's own files.
* Track and session ids that a spreadsheet would run as formulas are stored quoted.
* A standing table of nonsense command-line arguments: exit status 2 and one line on
  stderr naming the argument.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from musicrec_gym.artifacts import default_world_dir
from musicrec_gym.build import build_world
from musicrec_gym.cli import main
from musicrec_gym.csv_safety import csv_safe
from musicrec_gym.errors import ArtifactError, ConfigError, DataFormatError
from musicrec_gym.fit import fit_world
from musicrec_gym.realism import _rows, realism_report
from musicrec_gym.world import load_world
from musicrec_gym.world_output import PACKAGE_DIR
from tests.conftest import TINY as TINY_BUILD
from tests.conftest import build_tiny
from tests.test_fit import QUIET, TINY, make_log

FITTED_FILES = {
    "catalog.csv", "embeddings.csv", "encoder.npz", "encoder.pt", "fitted.json",
    "heldout.csv.gz", "listeners.csv", "response.npz", "simulator.json", "starts.npz",
}  # fmt: skip


@pytest.fixture(scope="module")
def log_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("outputs") / "log.csv"
    make_log(40).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, log_csv) -> Path:
    out = tmp_path_factory.mktemp("outputs_world") / "world"
    fit_world(log_csv, out, TINY, **QUIET)
    return out


def fit(log: Path, out: Path, **kwargs) -> dict:
    return fit_world(log, out, TINY, **QUIET, **kwargs)


def listing(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def siblings(path: Path) -> list[str]:
    """Leftover staging directories next to ``path``."""
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}."))


# ----------------------------------------------------------------------------- fit --out


def test_fit_refuses_a_directory_of_someone_elses_files(tmp_path, log_csv):
    """A user's catalog.csv was once overwritten and notes.txt hashed."""
    out = tmp_path / "mine"
    out.mkdir()
    (out / "catalog.csv").write_text("my,own\n1,2\n")
    (out / "notes.txt").write_text("do not lose me\n")
    before = listing(out)
    for force in (False, True):
        with pytest.raises(ConfigError, match=r"--out .*mine: the directory is not empty"):
            fit(log_csv, out, force=force)
        assert listing(out) == before
    assert siblings(out) == []


def test_fit_writes_a_new_or_empty_directory_and_hashes_only_its_files(tmp_path, log_csv):
    empty = tmp_path / "empty"
    empty.mkdir()
    manifest = fit(log_csv, empty)
    assert set(manifest["files"]) == FITTED_FILES
    assert set(listing(empty)) == FITTED_FILES | {"manifest.json"}
    nested = tmp_path / "a" / "b" / "world"
    assert set(fit(log_csv, nested)["files"]) == FITTED_FILES
    assert siblings(empty) == [] and siblings(nested) == []


def test_fit_replaces_its_own_world_only_with_force(tmp_path, log_csv, fitted):
    out = tmp_path / "world"
    shutil.copytree(fitted, out)
    (out / "realism").mkdir()  # musicrec realism's default report directory
    (out / "realism" / "realism.md").write_text("old report\n")
    with pytest.raises(ConfigError, match=r"holds a fitted world already; pass --force"):
        fit(log_csv, out)
    manifest = fit(log_csv, out, force=True)
    assert set(manifest["files"]) == FITTED_FILES
    assert not (out / "realism").exists()
    assert load_world(out).fitted is not None
    assert siblings(out) == []


def test_fit_keeps_a_world_holding_foreign_files_even_with_force(tmp_path, log_csv, fitted):
    out = tmp_path / "world"
    shutil.copytree(fitted, out)
    (out / "notes.txt").write_text("mine\n")
    with pytest.raises(ConfigError, match=r"also holds files its manifest\.json does not list "
                       r"\(notes\.txt\)"):  # fmt: skip
        fit(log_csv, out, force=True)
    assert (out / "notes.txt").read_text() == "mine\n"


def test_fit_does_not_replace_a_synthetic_world(tmp_path, log_csv, tiny_world):
    out = tmp_path / "synthetic"
    shutil.copytree(tiny_world, out)
    with pytest.raises(ConfigError, match=r"holds a synthetic world, not a fitted one"):
        fit(log_csv, out, force=True)
    assert json.loads((out / "manifest.json").read_text())["kind"] == "synthetic"


def test_an_interrupted_fit_leaves_nothing_and_keeps_the_old_world(
    tmp_path, log_csv, fitted, monkeypatch
):
    import musicrec_gym.fit as fit_module

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(fit_module, "fit_leave", interrupt)  # the last stage
    new = tmp_path / "new"
    with pytest.raises(KeyboardInterrupt):
        fit(log_csv, new)
    assert not new.exists() and siblings(new) == []
    old = tmp_path / "old"
    shutil.copytree(fitted, old)
    before = listing(old)
    with pytest.raises(KeyboardInterrupt):
        fit(log_csv, old, force=True)
    assert listing(old) == before and siblings(old) == []


def test_a_failed_fit_leaves_nothing(tmp_path):
    bad = tmp_path / "short.csv"
    make_log(4).assign(session_length=3).query("session_position <= 3").to_csv(bad, index=False)
    out = tmp_path / "world"
    with pytest.raises(DataFormatError, match=r"short\.csv"):
        fit(bad, out)
    assert not out.exists() and siblings(out) == []


# ----------------------------------------------------------------------------- build --out


def test_build_replaces_its_own_world_only_with_force(tmp_path, tiny_world):
    out = tmp_path / "world"
    shutil.copytree(tiny_world, out)
    with pytest.raises(ConfigError, match=r"holds a synthetic world already; pass --force"):
        build_tiny(out)
    manifest = build_world(TINY_BUILD, out, progress=False, log=lambda *_: None, force=True)
    assert manifest["files"] == json.loads((tiny_world / "manifest.json").read_text())["files"]
    assert siblings(out) == []


def test_an_interrupted_build_leaves_nothing(tmp_path, monkeypatch):
    import musicrec_gym.build as build_module

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(build_module, "train_embeddings", interrupt)
    out = tmp_path / "world"
    with pytest.raises(KeyboardInterrupt):
        build_tiny(out)
    assert not out.exists() and siblings(out) == []


# Each case: the Python API's own bad-input table for out_dir (and the side directories).
def _package_paths():
    return [
        ("default-world", default_world_dir()),
        ("new-dir-in-package", PACKAGE_DIR / "assets" / "another_world"),
        ("package", PACKAGE_DIR),
        ("package-parent", PACKAGE_DIR.parent),
    ]


@pytest.mark.parametrize("force", [False, True], ids=["plain", "force"])
@pytest.mark.parametrize(("name", "path"), _package_paths(), ids=[n for n, _ in _package_paths()])
def test_out_in_the_installed_package_is_always_refused(name, path, force, log_csv):
    shipped = (default_world_dir() / "manifest.json").read_bytes()
    match = r"--out .*(inside the installed musicrec_gym package|holds the installed)"
    with pytest.raises(ConfigError, match=match):
        build_world(TINY_BUILD, path, progress=False, log=lambda *_: None, force=force)
    with pytest.raises(ConfigError, match=match):
        fit(log_csv, path, force=force)
    assert (default_world_dir() / "manifest.json").read_bytes() == shipped
    assert not (PACKAGE_DIR / "assets" / "another_world").exists()


@pytest.mark.parametrize(
    ("setup", "kwargs", "match"),
    [
        ("file", {}, r"--out .*out: is a file, not a directory"),
        ("dir-with-file", {}, r"--out .*out: the directory is not empty \(x\.txt\)"),
        ("empty", {"logs_dir": "out/logs"}, r"--logs .*: must be outside the world directory"),
        ("empty", {"logs_dir": "logfile"}, r"--logs .*logfile is a file"),
        ("empty", {"logs_dir": "logfile/logs"}, r"--logs .*logfile is a file"),
        ("empty", {"logs_dir": "logs"}, r"--logs .*logs: already holds sessions_mssd\.csv"),
        ("empty", {"tensorboard_dir": "out"}, r"--tensorboard .*: must be outside the world"),
        ("empty", {"logs_dir": str(PACKAGE_DIR / "logs")}, r"--logs .*inside the installed"),
    ],
    ids=["out-file", "out-foreign", "logs-in-out", "logs-file", "logs-under-file", "logs-taken",
         "tb-is-out",
         "logs-in-package"],
)  # fmt: skip
def test_build_out_bad_input(tmp_path, monkeypatch, setup, kwargs, match):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    if setup == "file":
        out.write_text("x")
    else:
        out.mkdir()
        if setup == "dir-with-file":
            (out / "x.txt").write_text("x")
    (tmp_path / "logfile").write_text("x")
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "sessions_mssd.csv").write_text("mine\n")
    with pytest.raises(ConfigError, match=match):
        build_world(TINY_BUILD, out, progress=False, log=lambda *_: None, **kwargs)
    assert (tmp_path / "logs" / "sessions_mssd.csv").read_text() == "mine\n"
    assert not (PACKAGE_DIR / "logs").exists()


def test_realism_report_bad_input(tmp_path, fitted):
    heldout = fitted / "heldout.csv.gz"
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match=r"--out .*file: is a file"):
        realism_report(fitted, heldout, tmp_path / "file")
    with pytest.raises(ConfigError, match=r"--out .*inside the installed"):
        realism_report(fitted, heldout, PACKAGE_DIR / "realism")
    with pytest.raises(ConfigError, match=r"`seed` must be an int >= 0"):
        realism_report(fitted, heldout, tmp_path / "r", seed=-1)
    with pytest.raises(ConfigError, match=r"`min_track_plays` must be an int >= 1"):
        realism_report(fitted, heldout, tmp_path / "r", min_track_plays=0)
    assert not (PACKAGE_DIR / "realism").exists()


# ----------------------------------------------------------------------------- CSV injection

HOSTILE = ['=HYPERLINK("http://evil.example","x")', "@SUM(1+1)", "+cmd|' /C calc'!A0", "-2+3"]


def test_csv_safe_quotes_formulas_only():
    assert [csv_safe(v) for v in HOSTILE] == ["'" + v for v in HOSTILE]
    for value in ("\tx", "\rx"):
        assert csv_safe(value) == "'" + value
    for value in ("t_001", "-1", "+2.5", "-3e5", "", "'=quoted", 7, None):
        assert csv_safe(value) == value
    assert csv_safe(csv_safe("=1+1")) == "'=1+1"


@pytest.fixture(scope="module")
def hostile_world(tmp_path_factory) -> tuple[Path, Path]:
    log = make_log(40)
    popular = log["track_id_clean"].value_counts().index[: len(HOSTILE)]
    log["track_id_clean"] = log["track_id_clean"].replace(dict(zip(popular, HOSTILE, strict=True)))
    log["session_id"] = log["session_id"].replace({"s0001": "=1+1", "s0002": "@me"})
    log["context_type"] = "=cmd()"
    root = tmp_path_factory.mktemp("hostile")
    log.to_csv(root / "log.csv", index=False)
    fit_world(root / "log.csv", root / "world", TINY, **QUIET)
    return root / "log.csv", root / "world"


def cells(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="") as fh:
        return [cell for row in csv.reader(fh) for cell in row]


def test_formula_ids_are_quoted_in_every_csv_of_the_world(hostile_world):
    log, world = hostile_world
    for name in ("catalog.csv", "embeddings.csv", "listeners.csv", "heldout.csv.gz"):
        bad = [c for c in cells(world / name) if c[:1] in ("=", "+", "@", "\t", "\r")]
        bad += [c for c in cells(world / name) if c[:1] == "-" and csv_safe(c) != c]
        assert bad == [], name
    catalog = load_world(world).catalog["track_id"].tolist()
    assert {"'" + h for h in HOSTILE} <= set(catalog)
    manifest = json.loads((world / "manifest.json").read_text())
    assert manifest["reports"]["logs"]["ids_quoted"] >= len(HOSTILE)


def test_quoted_ids_round_trip_through_realism(hostile_world):
    """The original log's ids and the world's heldout.csv.gz name the same catalog rows."""
    log, world_dir = hostile_world
    world = load_world(world_dir)
    rows = _rows(world, pd.Series(HOSTILE).to_numpy(dtype=object))
    assert (rows < world.n_tracks).all()
    assert rows.tolist() == _rows(world, pd.Series(["'" + h for h in HOSTILE])).tolist()


def test_ids_that_collide_once_quoted_are_refused(tmp_path):
    log = make_log(20)
    log.loc[log.index[:40], "track_id_clean"] = "=x"
    log.loc[log.index[40:80], "track_id_clean"] = "'=x"
    log.to_csv(tmp_path / "log.csv", index=False)
    with pytest.raises(DataFormatError, match=r"log\.csv: column 'track_id_clean': the ids"):
        fit(tmp_path / "log.csv", tmp_path / "world")
    assert not (tmp_path / "world").exists()


# ----------------------------------------------------------------------------- CLI table


@pytest.fixture(scope="module")
def broken_world(tmp_path_factory, tiny_world) -> Path:
    out = tmp_path_factory.mktemp("broken") / "world"
    shutil.copytree(tiny_world, out)
    (out / "catalog.csv").unlink()
    return out


def cli_cases() -> list[tuple[str, list[str], str]]:
    """(id, argv with {tmp}/{log}/{world}/{broken} placeholders, regex on stderr)."""
    pkg = str(PACKAGE_DIR)
    b = ["build", "--out", "{tmp}/w", "--quiet"]
    f = ["fit", "{log}", "--out", "{tmp}/w", "--quiet"]
    e = ["embeddings", "{log}", "--format", "mssd", "--out", "{tmp}/e"]
    return [
        ("build-n-sessions-0", [*b, "--n-sessions", "0"], r"argument --n-sessions: must be an "
         r"integer >= 10, got '0'"),
        ("build-n-tracks-negative", [*b, "--n-tracks", "-5"], r"argument --n-tracks"),
        ("build-n-listeners-0", [*b, "--n-listeners", "0"], r"argument --n-listeners"),
        ("build-seed-negative", [*b, "--seed", "-1"], r"argument --seed: must be an integer "
         r"from 0 to 4294967295"),
        ("build-embedding-epochs-0", [*b, "--embedding-epochs", "0"],
         r"argument --embedding-epochs"),
        ("build-encoder-epochs-word", [*b, "--encoder-epochs", "many"],
         r"argument --encoder-epochs: must be an integer >= 1, got 'many'"),
        ("build-out-default-world", ["build", "--out", str(default_world_dir()), "--force"],
         r"--out .*inside the installed musicrec_gym package"),
        ("build-out-in-package", ["build", "--out", pkg + "/assets/x"], r"--out .*inside"),
        ("build-out-file", ["build", "--out", "{log}"], r"--out .*log\.csv: is a file"),
        ("build-out-foreign-dir", ["build", "--out", "{tmp}", "--force"],
         r"--out .*: the directory is not empty"),
        ("build-logs-in-out", [*b, "--logs", "{tmp}/w/logs"], r"--logs .*must be outside"),
        ("fit-heldout-1.5", [*f, "--heldout-fraction", "1.5"],
         r"argument --heldout-fraction: must be a number between 0 and 1 \(exclusive\), "
         r"got '1\.5'"),
        ("fit-heldout-0", [*f, "--heldout-fraction", "0"], r"argument --heldout-fraction"),
        ("fit-heldout-nan", [*f, "--heldout-fraction", "nan"], r"argument --heldout-fraction"),
        ("fit-min-track-count-0", [*f, "--min-track-count", "0"], r"argument --min-track-count"),
        ("fit-dim-0", [*f, "--dim", "0"], r"argument --dim"),
        ("fit-epochs-negative", [*f, "--epochs", "-1"], r"argument --epochs"),
        ("fit-encoder-epochs-0", [*f, "--encoder-epochs", "0"], r"argument --encoder-epochs"),
        ("fit-seed-too-big", [*f, "--seed", str(2**32)], r"argument --seed"),
        ("fit-out-default-world", ["fit", "{log}", "--out", str(default_world_dir()),
                                   "--force"], r"--out .*inside the installed"),
        ("fit-out-foreign-dir", ["fit", "{log}", "--out", "{tmp}"], r"--out .*not empty"),
        ("fit-out-synthetic-world", ["fit", "{log}", "--out", "{world}", "--force"],
         r"--out .*holds a synthetic world, not a fitted one"),
        ("fit-log-missing", ["fit", "{tmp}/nope.csv", "--out", "{tmp}/w"],
         r"nope\.csv: file not found"),
        ("fit-log-is-directory", ["fit", "{tmp}", "--out", "{tmp}/w"], r"not a file"),
        ("realism-no-world", ["realism", "{tmp}/nowhere"], r"argument world: .*nowhere: no such "
         r"directory"),
        ("realism-world-is-file", ["realism", "{log}"], r"argument world: .*log\.csv: is a file"),
        ("realism-synthetic-world", ["realism", "{world}"], r"argument world: .* has no "
         r"heldout\.csv\.gz"),
        ("realism-heldout-missing", ["realism", "{world}", "--heldout", "{tmp}/h.csv"],
         r"argument --heldout: .*h\.csv: file not found"),
        ("realism-min-plays-0", ["realism", "{world}", "--min-plays", "0"],
         r"argument --min-plays"),
        ("realism-seed-negative", ["realism", "{world}", "--seed", "-3"], r"argument --seed"),
        ("realism-broken-world", ["realism", "{broken}", "--heldout", "{log}"],
         r"catalog\.csv: missing artifact"),
        ("info-no-world", ["info", "{tmp}/nowhere"], r"argument world: .*nowhere: no such dir"),
        ("info-world-is-file", ["info", "{log}"], r"argument world: .*: is a file"),
        ("info-world-missing-file", ["info", "{broken}"], r"catalog\.csv: missing artifact"),
        ("info-not-a-world", ["info", "{tmp}"], r"manifest\.json: file not found"),
        ("embeddings-dim-0", [*e, "--dim", "0"], r"argument --dim"),
        ("embeddings-k-0", [*e, "--k", "0"], r"argument --k"),
        ("embeddings-epochs-0", [*e, "--epochs", "0"], r"argument --epochs"),
        ("embeddings-gap-negative", [*e, "--gap-minutes", "-1"], r"argument --gap-minutes"),
        ("embeddings-ns-nan", [*e, "--ns-exponent", "0.5", "nan"], r"argument --ns-exponent"),
        ("embeddings-format-unknown", ["embeddings", "{log}", "--format", "csv"],
         r"argument --format: invalid choice"),
        ("embeddings-out-file", ["embeddings", "{log}", "--format", "mssd", "--out", "{log}"],
         r"argument --out: .*log\.csv is a file, not a directory"),
        ("embeddings-out-under-file", [*e[:4], "--out", "{log}/sweep"],
         r"argument --out: .*log\.csv is a file, not a directory"),
        ("embeddings-out-in-package", [*e[:4], "--out", pkg + "/sweep"], r"--out .*inside"),
        ("embeddings-source-missing", ["embeddings", "{tmp}/x.csv", "--format", "mssd",
                                       "--out", "{tmp}/e"], r"x\.csv: file not found"),
    ]  # fmt: skip


@pytest.mark.parametrize(("argv", "match"), [c[1:] for c in cli_cases()],
                         ids=[c[0] for c in cli_cases()])  # fmt: skip
def test_cli_bad_argument_exits_2_naming_it(
    tmp_path, capsys, log_csv, tiny_world, broken_world, argv, match
):
    values = {"tmp": str(tmp_path), "log": str(log_csv), "world": str(tiny_world),
              "broken": str(broken_world)}  # fmt: skip
    (tmp_path / "someone.txt").write_text("mine\n")
    argv = [a.format(**values) for a in argv]
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()  # argparse prints its usage first, then the one error line
    assert lines[-1].startswith(f"musicrec {argv[0]}: error: "), err
    assert re.search(match, lines[-1]), (match, lines[-1])
    assert (tmp_path / "someone.txt").read_text() == "mine\n"
    assert not (PACKAGE_DIR / "assets" / "x").exists()


def test_load_world_of_a_half_world_names_the_missing_file(broken_world):
    with pytest.raises(ArtifactError, match=r"catalog\.csv"):
        load_world(broken_world)
