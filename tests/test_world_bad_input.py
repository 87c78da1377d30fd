"""Bad world directories: every fault is an ``ArtifactError`` naming the file and the key.

Each case copies the tiny world (``tests/conftest.py``), breaks one thing, and loads it.
A broken file whose manifest hash was updated too (``rehash``) shows what the loader
checks beyond the hash; one whose hash was not shows the hash check.
"""

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from musicrec_gym.artifacts import sha256_file, write_manifest
from musicrec_gym.encoder import NumpyEncoder
from musicrec_gym.envs.core import SessionCore
from musicrec_gym.errors import ArtifactError, ConfigError
from musicrec_gym.sim.params import LeaveParams, ResponseParams, RewardParams, SimulatorParams
from musicrec_gym.world import load_world

Edit = Callable[[Path], None]


def rehash(world: Path, name: str) -> None:
    """Record ``name``'s current sha256 in the manifest (an edit the hash check cannot see)."""
    manifest = json.loads((world / "manifest.json").read_text())
    manifest["files"][name] = sha256_file(world / name)
    (world / "manifest.json").write_text(json.dumps(manifest))


def edit_json(name: str, change: Callable[[dict], object], hashed: bool = True) -> Edit:
    """An edit that changes a JSON file's parsed content in place (``change`` mutates it)."""

    def edit(world: Path) -> None:
        data = json.loads((world / name).read_text())
        change(data)
        (world / name).write_text(json.dumps(data))  # NaN and Infinity as JSON literals
        if hashed and name != "manifest.json":
            rehash(world, name)

    return edit


def write(name: str, content: str | bytes, hashed: bool = True) -> Edit:
    """An edit that replaces a file's bytes."""

    def edit(world: Path) -> None:
        path = world / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        if hashed and name != "manifest.json":
            rehash(world, name)

    return edit


def truncate(name: str, hashed: bool) -> Edit:
    """An edit that cuts a file in half (a crashed copy or download)."""

    def edit(world: Path) -> None:
        data = (world / name).read_bytes()
        (world / name).write_bytes(data[: len(data) // 2])
        if hashed:
            rehash(world, name)

    return edit


def sim(part: str | None, key: str, value: object) -> Edit:
    """An edit of one value of ``simulator.json`` (``part``: the nested record, or None)."""

    def change(data: dict) -> None:
        (data if part is None else data[part])[key] = value

    return edit_json("simulator.json", change)


def table(name: str, column: str, value: str) -> Edit:
    """An edit of a CSV table's first data row."""

    def edit(world: Path) -> None:
        lines = (world / name).read_text().splitlines()
        header = lines[0].split(",")
        row = lines[1].split(",")
        row[header.index(column)] = value
        lines[1] = ",".join(row)
        (world / name).write_text("\n".join(lines) + "\n")
        rehash(world, name)

    return edit


def truth(key: str, change: Callable[[np.ndarray], np.ndarray]) -> Edit:
    """An edit of one array of ``truth.npz``."""

    def edit(world: Path) -> None:
        arrays = dict(np.load(world / "truth.npz"))
        arrays[key] = change(arrays[key])
        np.savez(world / "truth.npz", **arrays)
        rehash(world, "truth.npz")

    return edit


def nan_first(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    a.flat[0] = np.nan
    return a


def manifest_key(key: str, value: object) -> Edit:
    return edit_json("manifest.json", lambda m: m.__setitem__(key, value))


# (id, edit, error type, match): the match names the file and the key, column or array.
WORLD_CASES: list[tuple[str, Edit, type[Exception], str]] = [
    # manifest.json
    ("manifest-is-a-list", write("manifest.json", "[1, 2]"), ArtifactError,
     r"manifest.json: expected a JSON object with a 'files'"),
    ("manifest-not-json", write("manifest.json", "{oops"), ArtifactError,
     r"manifest.json, line 1: not valid JSON"),
    ("manifest-not-utf8", write("manifest.json", b"\xff\xfe\x00"), ArtifactError,
     r"manifest.json.*not valid JSON"),
    ("manifest-deeply-nested", write("manifest.json", "[" * 100_000 + "]" * 100_000),
     ArtifactError, r"manifest.json: JSON nested too deeply to read"),
    ("manifest-missing-files", write("manifest.json", '{"format": 1}'), ArtifactError,
     r"manifest.json: missing key 'files'"),
    ("manifest-files-a-list", manifest_key("files", [1]), ArtifactError,
     r"manifest.json: key 'files' must be an object"),
    ("manifest-hash-not-a-string",
     edit_json("manifest.json", lambda m: m["files"].__setitem__("truth.npz", 7)),
     ArtifactError, r"manifest.json: key 'files' -> 'truth.npz' must be a sha256"),
    ("manifest-unknown-kind", manifest_key("kind", "synthtic"), ArtifactError,
     r"manifest.json: key 'kind': unknown world kind 'synthtic'.*Did you mean 'synthetic'"),
    ("manifest-kind-a-list", manifest_key("kind", [1]), ArtifactError,
     r"manifest.json: key 'kind'"),
    ("manifest-newer-format", manifest_key("format", 2), ArtifactError,
     r"manifest.json: key 'format' is 2"),
    ("manifest-no-hash-for-a-file",
     edit_json("manifest.json", lambda m: m["files"].pop("catalog.csv")),
     ArtifactError, r"manifest.json: no sha256 recorded for 'catalog.csv'"),
    # simulator.json: types and ranges, named by key
    ("sim-nan-bias", sim("response", "bias", float("nan")), ArtifactError,
     r"simulator.json: key 'response.bias' must be a finite number, got nan"),
    ("sim-inf-taste", sim("response", "taste", float("inf")), ArtifactError,
     r"simulator.json: key 'response.taste' must be a finite number"),
    ("sim-negative-repeat", sim("response", "repeat", -1.0), ArtifactError,
     r"simulator.json: key 'response.repeat' must be a finite number >= 0"),
    ("sim-bool-bias", sim("response", "bias", True), ArtifactError,
     r"simulator.json: key 'response.bias'"),
    ("sim-huge-bias", sim("response", "bias", 10**400), ArtifactError,
     r"simulator.json: key 'response.bias' must be a finite number"),
    ("sim-max-steps-0", sim("leave", "max_steps", 0), ArtifactError,
     r"simulator.json: key 'leave.max_steps' must be an int in \[1, 10000\]"),
    ("sim-max-steps-huge", sim("leave", "max_steps", 10**30), ArtifactError,
     r"simulator.json: key 'leave.max_steps'"),
    ("sim-max-steps-string", sim("leave", "max_steps", "20"), ArtifactError,
     r"simulator.json: key 'leave.max_steps'"),
    ("sim-max-steps-float", sim("leave", "max_steps", 20.0), ArtifactError,
     r"simulator.json: key 'leave.max_steps'"),
    ("sim-skip-window-9", sim("leave", "skip_window", 9), ArtifactError,
     r"simulator.json: key 'leave.skip_window' must be an int in \[1, 5\]"),
    ("sim-negative-per-skip", sim("leave", "per_skip", -0.5), ArtifactError,
     r"simulator.json: key 'leave.per_skip'"),
    ("sim-p-like-above-1", sim("reward", "p_like", 2.0), ArtifactError,
     r"simulator.json: key 'reward.p_like' must be a finite number in \[0, 1\]"),
    ("sim-time-range-one-number", sim("reward", "time_listened", [5]), ArtifactError,
     r"simulator.json: key 'reward.time_listened' must be a pair"),
    ("sim-time-range-reversed", sim("reward", "time_skipped", [1.5, 0.0]), ArtifactError,
     r"simulator.json: key 'reward.time_skipped'.*low <= high"),
    ("sim-satisfaction-weight-negative", sim("satisfaction", "weight", -0.1), ArtifactError,
     r"simulator.json: key 'satisfaction.weight' must be a finite number >= 0"),
    ("sim-satisfaction-enabled-string", sim("satisfaction", "enabled", "yes"), ArtifactError,
     r"simulator.json: key 'satisfaction.enabled' must be a bool"),
    ("sim-satisfaction-levels-0", sim("satisfaction", "levels", 0), ArtifactError,
     r"simulator.json: key 'satisfaction.levels' must be an int in \[1, 100\]"),
    ("sim-satisfaction-shares-over-1", sim("satisfaction", "popular_share", 0.8), ArtifactError,
     r"simulator.json: key 'satisfaction'.*popular_share.*discovery_share.*<= 1"),
    ("sim-warmup-0", sim(None, "warmup", 0), ArtifactError,
     r"simulator.json: key 'warmup' must be an int in \[1, 5\]"),
    ("sim-warmup-9", sim(None, "warmup", 9), ArtifactError, r"simulator.json: key 'warmup'"),
    ("sim-logging-pool-0", sim(None, "logging_pool", 0), ArtifactError,
     r"simulator.json: key 'logging_pool' must be an int >= 1"),
    ("sim-pop-share-above-1", sim(None, "logging_pop_share", 2.0), ArtifactError,
     r"simulator.json: key 'logging_pop_share'"),
    ("sim-shares-sum-above-1", sim(None, "logging_continuation_share", 0.9), ArtifactError,
     r"simulator.json: `logging_pop_share` \+ `logging_continuation_share` must be <= 1"),
    ("sim-continuation-pool-above-pool", sim(None, "continuation_pool", 60), ArtifactError,
     r"simulator.json: `continuation_pool` must be <= `logging_pool`"),
    ("sim-part-a-list", sim(None, "response", [1]), ArtifactError,
     r"simulator.json: key 'response' must be a JSON object"),
    ("sim-unknown-nested-key", sim("leave", "max_step", 30), ArtifactError,
     r"simulator.json: unknown key in 'leave' 'max_step'.*Did you mean 'max_steps'"),
    ("sim-is-a-list", write("simulator.json", "[1]"), ArtifactError,
     r"simulator.json: expected a JSON object"),
    # truncated or corrupted files
    ("truncated-npz", truncate("truth.npz", hashed=False), ArtifactError,
     r"truth.npz: sha256 does not match manifest.json; the file is truncated"),
    ("truncated-csv", truncate("catalog.csv", hashed=False), ArtifactError,
     r"catalog.csv: sha256 does not match"),
    ("corrupt-npz-rehashed", truncate("truth.npz", hashed=True), ArtifactError,
     r"truth.npz: not a readable NPZ file, truncated or corrupted"),
    ("truncated-csv-rehashed", truncate("catalog.csv", hashed=True), ArtifactError,
     r"catalog.csv, line \d+: column 'popularity' must hold finite numbers"),
    ("corrupt-json-rehashed", truncate("simulator.json", hashed=True), ArtifactError,
     r"simulator.json, line \d+: not valid JSON"),
    ("missing-file", lambda w: (w / "listeners.csv").unlink(), ArtifactError,
     r"listeners.csv: missing artifact"),
    # values in the data files
    ("truth-nan", truth("listener_bias", nan_first), ArtifactError,
     r"truth.npz: array 'listener_bias' holds NaN or infinite values"),
    ("truth-strings", truth("patience", lambda a: np.array(["x"] * len(a))), ArtifactError,
     r"truth.npz: array 'patience' holds <U1 values, expected numbers"),
    ("truth-other-world", truth("pop_z", lambda a: a[:10]), ArtifactError,
     r"truth.npz: array 'pop_z' has 10 rows but there are 60 catalog.csv tracks"),
    ("catalog-no-rows", write("catalog.csv", "track_id,title,artist_id,artist,genre,"
                             "duration_s,popularity,plays\n"), ArtifactError,
     r"catalog.csv: no rows"),
    ("catalog-popularity-text", table("catalog.csv", "popularity", "abc"), ArtifactError,
     r"catalog.csv, line 2: column 'popularity' must hold finite numbers >= 0, got 'abc'"),
    ("catalog-popularity-negative", table("catalog.csv", "popularity", "-1"), ArtifactError,
     r"catalog.csv, line 2: column 'popularity'"),
    ("catalog-missing-column", write("catalog.csv", "track_id\nt1\n"), ArtifactError,
     r"catalog.csv: missing column\(s\)"),
    ("listeners-bad-date", table("listeners.csv", "registered", "someday"), ArtifactError,
     r"listeners.csv, line 2: column 'registered' must hold a date"),
    ("listeners-bad-age", table("listeners.csv", "age", "old"), ArtifactError,
     r"listeners.csv, line 2: column 'age'"),
    ("embeddings-bad-row", write("embeddings.csv", "track_id,0\nt00000,x\n"), ArtifactError,
     r"embeddings.csv"),
]  # fmt: skip


@pytest.fixture
def copy_world(tiny_world, tmp_path) -> Callable[[], Path]:
    """A fresh copy of the tiny world per call (loads are cached per directory)."""
    count = iter(range(100))

    def copy() -> Path:
        out = tmp_path / f"world{next(count)}"
        shutil.copytree(tiny_world, out)
        return out

    return copy


@pytest.mark.parametrize(
    ("edit", "error", "match"),
    [case[1:] for case in WORLD_CASES],
    ids=[case[0] for case in WORLD_CASES],
)
def test_bad_world_is_a_clear_error(copy_world, edit, error, match):
    world = copy_world()
    edit(world)
    with pytest.raises(error, match=match):
        load_world(world)


def test_the_unbroken_copy_loads(copy_world):
    world = load_world(copy_world())
    assert world.n_tracks == 60 and world.n_listeners == 40


def test_continuation_pool_larger_than_the_worlds_pool_is_named(copy_world):
    """``logging_pool`` is capped by the 59 best tracks a 60-track world caches."""
    world = copy_world()
    sim(None, "logging_pool", 80)(world)
    sim(None, "continuation_pool", 70)(world)
    with pytest.raises(ArtifactError, match=r"simulator.json: key 'continuation_pool' \(70\)"):
        SessionCore(1, world=str(world))


# ------------------------------------------------------------------ load_world's argument


@pytest.mark.parametrize(
    ("directory", "error", "match"),
    [
        (12345, ConfigError, r"`directory` must be a world directory .* got int 12345"),
        (3.5, ConfigError, r"`directory` must be a world directory"),
        (b"/tmp", ConfigError, r"`directory` must be a world directory .* got bytes"),
        ("", ConfigError, r"`directory` is an empty string"),
        ("   ", ConfigError, r"`directory` is an empty string"),
        ("/nonexistent/world", ArtifactError, r"/nonexistent/world: world directory not found"),
    ],
    ids=["int", "float", "bytes", "empty", "blank", "missing"],
)
def test_load_world_argument(directory, error, match):
    with pytest.raises(error, match=match):
        load_world(directory)


def test_a_file_is_not_a_world_directory(tiny_world):
    with pytest.raises(ArtifactError, match=r"catalog.csv: is a file, expected a world directory"):
        load_world(tiny_world / "catalog.csv")


# ------------------------------------------------------------ parameter records in code


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: ResponseParams(bias=float("nan")), r"`ResponseParams.bias` must be a finite"),
        (lambda: ResponseParams(artist=-1.0), r"`ResponseParams.artist`"),
        (lambda: LeaveParams(max_steps=True), r"`LeaveParams.max_steps` must be an int"),
        (lambda: LeaveParams(max_steps=10**30), r"`LeaveParams.max_steps`"),
        (lambda: RewardParams(p_add=-0.1), r"`RewardParams.p_add`"),
        (lambda: SimulatorParams(warmup=6), r"`SimulatorParams.warmup` must be an int in"),
        (lambda: SimulatorParams(leave={"max_steps": 3}), r"`SimulatorParams.leave` must be a"),
    ],
    ids=[
        "nan-bias",
        "negative-artist",
        "bool-max-steps",
        "huge-max-steps",
        "negative-p-add",
        "warmup-6",
        "leave-a-dict",
    ],
)
def test_parameter_records_check_their_fields(make, match):
    with pytest.raises(ConfigError, match=match):
        make()


def test_from_dict_round_trips_the_defaults():
    params = SimulatorParams()
    assert SimulatorParams.from_dict(json.loads(json.dumps(params.to_dict()))) == params


# ------------------------------------------------------------------------- fitted worlds


def fake_fitted_world(synthetic: Path, out: Path) -> Path:
    """A loadable fitted world made without training.

    The tiny world's catalog, listeners, embeddings and encoder; random response weights
    and logged starts.
    """
    shutil.copytree(synthetic, out)
    (out / "truth.npz").unlink()
    encoder = NumpyEncoder.load(out / "encoder.npz")
    rng = np.random.default_rng(0)
    np.savez(
        out / "response.npz",
        state_w1=rng.normal(size=(encoder.code_dim + 1, 8)), state_b1=np.zeros(8),
        state_w2=rng.normal(size=(8, 5)), state_b2=np.zeros(5),
        track_vectors=rng.normal(size=(61, 4)), track_bias=np.zeros(61),
        repeat_logit=np.zeros((3, 2)),
    )  # fmt: skip
    np.savez(
        out / "starts.npz",
        tracks=rng.integers(0, 60, size=(40, 5)),
        listened=rng.integers(0, 2, size=(40, 5)),
        features=np.zeros((40, 0)),
    )
    leave = {"position_logit": [None] * 6 + [-2.0] * 15, "per_skip": 0.1, "skip_window": 3}
    info = {
        "format": 2,
        "session_features": [],
        "max_length": 20,
        "popularity_mean": 1.0,
        "popularity_std": 1.0,
        "rare_plays": 1.0,
        "leave": leave,
    }
    (out / "fitted.json").write_text(json.dumps(info))
    params = SimulatorParams(leave=LeaveParams(max_steps=15))
    (out / "simulator.json").write_text(json.dumps(params.to_dict()))
    write_manifest(out, {"kind": "fitted"})
    return out


def leave_key(key: str, value: object) -> Edit:
    return edit_json("fitted.json", lambda info: info["leave"].__setitem__(key, value))


def response(key: str, value: np.ndarray, name: str = "response.npz") -> Edit:
    def edit(world: Path) -> None:
        arrays = dict(np.load(world / name))
        arrays[key] = value
        np.savez(world / name, **arrays)
        rehash(world, name)

    return edit


FITTED_CASES: list[tuple[str, Edit, str]] = [
    ("fitted-json-a-list", write("fitted.json", "[]"), r"fitted.json: expected a JSON object"),
    ("fitted-missing-key", edit_json("fitted.json", lambda i: i.pop("rare_plays")),
     r"fitted.json: missing key 'rare_plays'"),
    ("fitted-nan-std",
     edit_json("fitted.json", lambda i: i.__setitem__("popularity_std", float("nan"))),
     r"fitted.json: key 'popularity_std' must be a finite number > 0"),
    ("fitted-zero-std", edit_json("fitted.json", lambda i: i.__setitem__("popularity_std", 0)),
     r"fitted.json: key 'popularity_std'"),
    ("fitted-max-length-text",
     edit_json("fitted.json", lambda i: i.__setitem__("max_length", "20")),
     r"fitted.json: key 'max_length' must be an int >= 7"),
    ("fitted-share-above-1",
     edit_json("fitted.json", lambda i: i.__setitem__("play_share_rare", 3)),
     r"fitted.json: key 'play_share_rare'"),
    ("fitted-leave-skip-window", leave_key("skip_window", 9),
     r"fitted.json: key 'leave.skip_window' must be an int in \[1, 5\]"),
    ("fitted-leave-nan-per-skip", leave_key("per_skip", float("nan")),
     r"fitted.json: key 'leave.per_skip' must be a finite number"),
    ("fitted-leave-logits-text", leave_key("position_logit", "high"),
     r"fitted.json: key 'leave.position_logit' must be a non-empty list"),
    ("fitted-leave-missing", edit_json("fitted.json", lambda i: i["leave"].pop("per_skip")),
     r"fitted.json: missing key 'leave.per_skip'"),
    ("fitted-response-nan", response("state_b1", np.full(8, np.nan)),
     r"response.npz: array 'state_b1' holds NaN"),
    ("fitted-old-format", edit_json("fitted.json", lambda i: i.pop("format")),
     r"fitted.json: a world fitted by another version .* format 1; this version reads "
     r"format 2.*`musicrec fit LOG --out .* --force`"),
    ("fitted-track-rows", response("track_vectors", np.zeros((7, 4))),
     r"response.npz: 'track_vectors' has 7 rows, expected 61"),
    ("fitted-session-features", edit_json("fitted.json", lambda i: i.__setitem__(
        "session_features", ["shuffle"])),
     r"fitted.json: key 'session_features' must list the response model's 0 session input"),
    ("fitted-start-features", response("features", np.zeros((40, 2)), "starts.npz"),
     r"starts.npz: 'features' has shape \(40, 2\), expected \(40, 0\)"),
    ("fitted-warmup-3", sim(None, "warmup", 3),
     r"simulator.json: key 'warmup' must be 5 in a fitted world"),
]  # fmt: skip


@pytest.fixture
def fitted_world(tiny_world, tmp_path) -> Path:
    return fake_fitted_world(tiny_world, tmp_path / "fitted")


@pytest.mark.parametrize(
    ("edit", "match"), [case[1:] for case in FITTED_CASES], ids=[case[0] for case in FITTED_CASES]
)
def test_bad_fitted_world_is_a_clear_error(fitted_world, edit, match):
    edit(fitted_world)
    with pytest.raises(ArtifactError, match=match):
        load_world(fitted_world)


def test_fitted_world_refuses_max_steps_past_its_longest_session(fitted_world):
    core = SessionCore(1, world=str(fitted_world))  # the unbroken fake world runs
    assert core.sim.max_steps == 15
    with pytest.raises(ConfigError, match=r"`max_steps`=30: a session of this fitted world"):
        SessionCore(1, world=str(fitted_world), max_steps=30)
