"""Tests of the session encoder: windows, training, artifacts and NumPy inference."""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from musicrec_gym import encoder as encoder_module
from musicrec_gym.encoder import (
    WINDOW,
    EncoderConfig,
    EncoderReport,
    NumpyEncoder,
    make_windows,
)
from musicrec_gym.encoder_train import (
    SessionAutoencoder,
    encoder_weights,
    export_numpy,
    load_state_dict,
    save_state_dict,
    train_autoencoder,
)
from musicrec_gym.errors import ArtifactError, ConfigError, DataFormatError

TOL = 1e-5
# Batch sizes covering both inference paths (row layout for tiny batches, gate-major).
BATCHES = (1, 2, 3, 24, 25, 300)


def clustered_world(
    seed: int, n_tracks: int = 200, d: int = 8, n_sessions: int = 400
) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Tracks in 6 clusters; each session favours a cluster and listens to it more."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(6, d))
    cluster = rng.integers(0, 6, n_tracks)
    vectors = centers[cluster] + 0.3 * rng.normal(size=(n_tracks, d))
    by_cluster = [np.flatnonzero(cluster == k) for k in range(6)]
    tracks, listened = [], []
    for _ in range(n_sessions):
        favourite = rng.integers(0, 6)
        length = int(rng.integers(2, 20))
        own = rng.random(length) < 0.7
        rows = np.where(
            own, rng.choice(by_cluster[favourite], length), rng.integers(0, n_tracks, length)
        )
        p_listen = np.where(cluster[rows] == favourite, 0.85, 0.2)
        tracks.append(rows)
        listened.append((rng.random(length) < p_listen).astype(np.int64))
    return vectors, tracks, listened


@pytest.fixture(scope="module")
def world() -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    return clustered_world(0)


@pytest.fixture(scope="module")
def windows(world) -> np.ndarray:
    vectors, tracks, listened = world
    return make_windows(tracks, listened, vectors)


SMALL = EncoderConfig(epochs=8, batch_size=128, lr=1e-2, holdout=0.1, seed=3)


@pytest.fixture(scope="module")
def trained(windows) -> tuple[SessionAutoencoder, EncoderReport]:
    return train_autoencoder(windows, SMALL, progress=False)


def torch_encode(model: SessionAutoencoder, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model.encode(torch.from_numpy(np.asarray(x, np.float32))).numpy()


def random_model(seed: int, feature_dim: int = 9) -> SessionAutoencoder:
    torch.manual_seed(seed)
    return SessionAutoencoder(feature_dim).eval()


# --------------------------------------------------------------------------- make_windows


def test_make_windows_content(world):
    vectors, tracks, listened = world
    out = make_windows(tracks, listened, vectors)
    lengths = np.array([len(t) for t in tracks])
    assert out.dtype == np.float32
    assert out.shape == (np.maximum(lengths - WINDOW + 1, 0).sum(), WINDOW, vectors.shape[1] + 1)
    first = next(i for i, t in enumerate(tracks) if len(t) >= WINDOW)
    np.testing.assert_array_equal(
        out[0, :, :-1], vectors[tracks[first][:WINDOW]].astype(np.float32)
    )
    np.testing.assert_array_equal(out[0, :, -1], listened[first][:WINDOW])
    # The second window of that session starts one play later.
    if len(tracks[first]) > WINDOW:
        np.testing.assert_array_equal(out[1, :-1], out[0, 1:])


def test_make_windows_skips_short_sessions():
    vectors = np.arange(20, dtype=np.float64).reshape(10, 2)
    tracks = [np.array([1, 2, 3]), np.arange(7), np.array([9, 8, 7, 6, 5]), np.array([], int)]
    flags = [np.ones(3, int), np.array([1, 0, 1, 0, 1, 0, 1]), np.zeros(5, int), np.array([])]
    out = make_windows(tracks, flags, vectors)
    assert out.shape == (3 + 1, WINDOW, 3)
    np.testing.assert_array_equal(out[0, :, :2], vectors[:5])
    np.testing.assert_array_equal(out[2, :, 2], [1, 0, 1, 0, 1])
    np.testing.assert_array_equal(out[3, :, :2], vectors[[9, 8, 7, 6, 5]])
    assert make_windows(tracks[:1], flags[:1], vectors).shape == (0, WINDOW, 3)
    assert make_windows(tracks, flags, vectors, window=7).shape == (1, 7, 3)


@pytest.mark.parametrize(
    ("tracks", "flags", "error", "match"),
    [
        ([[0] * 5, [1] * 6], [[1] * 5, [1] * 5], DataFormatError, r"session 1: tracks\[1\] has 6"),
        ([[0] * 5], [[1] * 5, [1]], DataFormatError, "1 sessions but `listened` has 2"),
        ([[0] * 5, [1, 2, 3, 10, 1]], [[1] * 5] * 2, DataFormatError, "session 1, position 3"),
        ([[0] * 5, [-1] * 5], [[1] * 5] * 2, DataFormatError, "track row -1 is out of range"),
        ([[0] * 5], [[1, 0, 2, 1, 1]], DataFormatError, "session 0, position 2: listened flag 2"),
        ([[0.5] * 5], [[1] * 5], DataFormatError, "integer track rows"),
    ],
)
def test_make_windows_errors(tracks, flags, error, match):
    vectors = np.zeros((10, 3))
    with pytest.raises(error, match=match):
        make_windows([np.array(t) for t in tracks], [np.array(f) for f in flags], vectors)


def test_make_windows_bad_arguments():
    with pytest.raises(ConfigError, match="`window` must be an int >= 1, got 0"):
        make_windows([], [], np.zeros((3, 2)), window=0)
    with pytest.raises(DataFormatError, match="2-D"):
        make_windows([], [], np.zeros(3))
    with pytest.raises(DataFormatError, match="NaN"):
        make_windows([], [], np.full((3, 2), np.nan))


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("epochs", 0, "`epochs` must be an int >= 1, got 0"),
        ("epochs", 1.5, "`epochs` must be an int >= 1, got 1.5"),
        ("batch_size", True, "`batch_size` must be an int >= 1, got True"),
        ("seed", -1, "`seed` must be an int >= 0, got -1"),
        ("threads", 0, "`threads` must be an int >= 1, got 0"),
        ("lr", 0.0, "`lr` must be a finite number > 0, got 0.0"),
        ("lr", float("inf"), "`lr` must be a finite number > 0"),
        ("holdout", 1.0, r"`holdout` must be a number in \(0, 1\), got 1.0"),
        ("holdout", "0.1", "`holdout` must be a number"),
    ],
)
def test_config_validation(field, value, match):
    with pytest.raises(ConfigError, match=match):
        EncoderConfig(**{field: value})


# --------------------------------------------------------------------------- model and training


def test_model_shapes():
    model = random_model(0)
    x = torch.randn(4, WINDOW, 9)
    assert model.encode(x).shape == (4, 9)
    assert model(x).shape == (4, WINDOW, 9)
    assert model.encode(x[0]).shape == (9,)
    with pytest.raises(DataFormatError, match=r"\(B, T, 9\)"):
        model.encode(torch.randn(4, WINDOW, 8))
    with pytest.raises(ConfigError, match="`feature_dim` must be an int >= 1"):
        SessionAutoencoder(0)


def test_training_beats_mean_baseline(trained, windows):
    _, report = trained
    assert report.n_train + report.n_heldout == len(windows)
    assert report.n_heldout == round(0.1 * len(windows))
    assert len(report.epoch_losses) == SMALL.epochs
    assert report.epoch_losses[-1] < report.epoch_losses[0]
    assert report.heldout_mse < 0.6 * report.mean_baseline_mse


def test_training_is_reproducible_and_leaves_global_state(windows):
    config = EncoderConfig(epochs=1, batch_size=256, seed=7)
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    rng_state = torch.get_rng_state()
    first, report_a = train_autoencoder(windows[:2000], config, progress=False)
    second, report_b = train_autoencoder(windows[:2000], config, progress=False)
    assert torch.equal(torch.get_rng_state(), rng_state)
    assert torch.get_num_threads() == threads
    a, b = first.state_dict(), second.state_dict()
    assert list(a) == list(b)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert report_a == report_b
    other, _ = train_autoencoder(windows[:2000], EncoderConfig(epochs=1, seed=8), progress=False)
    assert not torch.equal(other.state_dict()["enc1.weight_ih_l0"], a["enc1.weight_ih_l0"])


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (np.zeros((10, 5)), r"\(N, T, F\)"),
        (np.zeros((1, 5, 9)), "at least 2 windows"),
        (np.full((4, 5, 9), np.nan), "NaN"),
    ],
)
def test_training_rejects_bad_windows(bad, match):
    with pytest.raises(DataFormatError, match=match):
        train_autoencoder(bad, progress=False)


def test_tensorboard_scalars(windows, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = EncoderConfig(epochs=2, batch_size=512)
    train_autoencoder(windows[:1500], config, log_dir=tmp_path / "tb", progress=False)
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    accumulator = EventAccumulator(str(tmp_path / "tb"))
    accumulator.Reload()
    scalars = accumulator.Tags()["scalars"]
    for tag, count in (
        ("encoder/train_mse", 2 * 3),  # 1425 training windows / 512 -> 3 steps per epoch
        ("encoder/heldout_mse", 2),
        ("encoder/mean_baseline_mse", 2),
    ):
        assert tag in scalars
        assert len(accumulator.Scalars(tag)) == count


# --------------------------------------------------------------------------- NumPy inference


@pytest.mark.parametrize("batch", BATCHES)
def test_numpy_encode_matches_torch_random_weights(batch):
    model = random_model(batch)
    encoder = NumpyEncoder(encoder_weights(model))
    rng = np.random.default_rng(batch)
    x = rng.normal(size=(batch, WINDOW, 9)).astype(np.float32)
    got = encoder.encode(x)
    assert got.shape == (batch, 9)
    assert got.dtype == np.float32
    assert np.abs(got - torch_encode(model, x)).max() < TOL


@pytest.mark.parametrize("batch", BATCHES)
def test_numpy_encode_matches_torch_trained_weights(trained, windows, batch):
    model, _ = trained
    encoder = NumpyEncoder(encoder_weights(model))
    x = windows[-batch:]
    assert np.abs(encoder.encode(x) - torch_encode(model, x)).max() < TOL


def test_numpy_encode_single_window_other_lengths_and_dims():
    model = random_model(1, feature_dim=4)
    encoder = NumpyEncoder(encoder_weights(model))
    assert (encoder.feature_dim, encoder.code_dim) == (4, 4)
    rng = np.random.default_rng(1)
    for window in (1, 3, WINDOW, 8):
        x = rng.normal(size=(window, 4))
        got = encoder.encode(x)
        assert got.shape == (4,)
        assert np.abs(got - torch_encode(model, x)).max() < TOL
    with pytest.raises(DataFormatError, match=r"\(B, T, 4\)"):
        encoder.encode(np.zeros((2, WINDOW, 9)))


def test_numpy_encode_saturated_inputs_without_warnings():
    model = random_model(5)
    encoder = NumpyEncoder(encoder_weights(model))
    x = 200.0 * np.random.default_rng(5).normal(size=(64, WINDOW, 9)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = encoder.encode(x)
    assert np.abs(got - torch_encode(model, x)).max() < TOL


@pytest.mark.parametrize("batch", BATCHES)
def test_encode_ids_equals_encode(trained, world, batch):
    model, _ = trained
    vectors = world[0]
    encoder = NumpyEncoder(encoder_weights(model))
    encoder.bind_tracks(vectors)
    assert encoder.n_tracks == len(vectors)
    rng = np.random.default_rng(batch)
    for window in (1, WINDOW):
        ids = rng.integers(0, len(vectors), size=(batch, window))
        flags = rng.integers(0, 2, size=(batch, window))
        x = np.concatenate([vectors[ids], flags[..., None]], axis=-1)
        got = encoder.encode_ids(ids, flags)
        assert got.shape == (batch, 9)
        assert np.abs(got - encoder.encode(x)).max() < TOL
        assert np.abs(got - torch_encode(model, x)).max() < TOL
        # Repeated calls reuse buffers: same input, same output.
        np.testing.assert_array_equal(encoder.encode_ids(ids, flags), got)
        # Negative rows index from the end, as vectors[-1] does.
        assert np.abs(encoder.encode_ids(ids - len(vectors), flags) - got).max() < TOL
    # A copy (or a pickled env) must not share or lose the work buffers.
    twin = copy.deepcopy(encoder)
    fresh = rng.integers(0, len(vectors), size=ids.shape)
    np.testing.assert_array_equal(twin.encode_ids(fresh, flags), encoder.encode_ids(fresh, flags))
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(encoder)).encode(x), encoder.encode(x))


def test_encode_ids_single_out_and_errors(world):
    vectors = world[0]
    encoder = NumpyEncoder(encoder_weights(random_model(2)))
    with pytest.raises(ArtifactError, match="bind_tracks"):
        encoder.encode_ids(np.zeros(WINDOW, int), np.zeros(WINDOW, int))
    encoder.bind_tracks(vectors)
    ids, flags = np.array([3, 1, 4, 1, 5]), np.array([1, 0, 0, 1, 1])
    x = np.concatenate([vectors[ids], flags[:, None]], axis=-1)
    single = encoder.encode_ids(ids, flags)
    assert single.shape == (9,)
    assert np.abs(single - encoder.encode(x)).max() < TOL
    out = np.empty((2, 9), np.float32)
    assert encoder.encode_ids(np.stack([ids, ids]), np.stack([flags, flags]), out=out) is out
    np.testing.assert_allclose(out[1], single, atol=TOL)
    with pytest.raises(DataFormatError, match=r"outside \[-200, 200\)"):
        encoder.encode_ids(np.array([0, 1, 2, 3, 200]), flags)
    with pytest.raises(DataFormatError, match="must be integer"):
        encoder.encode_ids(ids.astype(float), flags)
    with pytest.raises(DataFormatError, match="both have shape"):
        encoder.encode_ids(ids, flags[:4])
    with pytest.raises(DataFormatError, match=r"`out` must be float32 with shape \(1, 9\)"):
        encoder.encode_ids(ids, flags, out=np.empty(8, np.float32))
    with pytest.raises(DataFormatError, match=r"\(n_tracks, 8\)"):
        encoder.bind_tracks(np.zeros((5, 9)))


# --------------------------------------------------------------------------- artifacts


def test_exported_weights_are_readable_like_any_other_file(trained, tmp_path):
    """The atomic write must not leave the weights private (mkstemp's 0600)."""
    import os

    model, _ = trained
    umask = os.umask(0o022)
    try:
        export_numpy(model, tmp_path / "w.npz")
        save_state_dict(model, tmp_path / "w.pt")
    finally:
        os.umask(umask)
    assert (tmp_path / "w.npz").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "w.pt").stat().st_mode & 0o777 == 0o644


def test_exports_are_byte_identical_and_round_trip(trained, tmp_path):
    model, _ = trained
    export_numpy(model, tmp_path / "a.npz")
    export_numpy(model, tmp_path / "sub" / "other_name.npz")
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "sub" / "other_name.npz").read_bytes()
    save_state_dict(model, tmp_path / "a.pt")
    save_state_dict(model, tmp_path / "b.pt")
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()

    with np.load(tmp_path / "a.npz") as archive:
        assert sorted(archive.files) == sorted(encoder_module.WEIGHT_KEYS)
        assert archive["l1_w_ih"].shape == (72, 9)
        assert archive["l1_w_ih"].dtype == np.float64  # the float32 weights, exactly
        assert archive["l2_b"].shape == (36,)
    loaded = load_state_dict(tmp_path / "a.pt")
    original, restored = model.state_dict(), loaded.state_dict()
    assert all(torch.equal(original[k], restored[k]) for k in original)
    x = np.random.default_rng(0).normal(size=(7, WINDOW, 9)).astype(np.float32)
    np_encoder = NumpyEncoder.load(tmp_path / "a.npz")
    assert np.abs(np_encoder.encode(x) - torch_encode(loaded, x)).max() < TOL


def test_missing_and_corrupt_artifacts(trained, tmp_path):
    model, _ = trained
    missing = tmp_path / "nope.npz"
    with pytest.raises(ArtifactError, match=r"nope\.npz: no such file"):
        NumpyEncoder.load(missing)
    with pytest.raises(ArtifactError, match=r"nope\.pt: no such file"):
        load_state_dict(tmp_path / "nope.pt")

    junk = tmp_path / "junk.bin"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ArtifactError, match=r"junk\.bin: not a NumPy \.npz archive"):
        NumpyEncoder.load(junk)
    with pytest.raises(ArtifactError, match=r"junk\.bin: not a readable torch file"):
        load_state_dict(junk)

    weights = encoder_weights(model)
    partial = tmp_path / "partial.npz"
    np.savez(partial, **{k: v for k, v in weights.items() if k != "l2_b"})
    with pytest.raises(ArtifactError, match=r"partial\.npz: missing key 'l2_b'"):
        NumpyEncoder.load(partial)
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, **{**weights, "l1_w_hh": weights["l1_w_hh"][:, :5]})
    with pytest.raises(ArtifactError, match=r"wrong\.npz: key 'l1_w_hh' has shape \(72, 5\)"):
        NumpyEncoder.load(wrong)
    single = tmp_path / "single.npy"
    np.save(single, weights["l1_b"])
    with pytest.raises(ArtifactError, match=r"single\.npy: a single \.npy array"):
        NumpyEncoder.load(single)

    state = model.state_dict()
    del state["dec2.bias_hh_l0"]
    torch.save(state, tmp_path / "partial.pt")
    with pytest.raises(ArtifactError, match=r"partial\.pt: missing key 'dec2\.bias_hh_l0'"):
        load_state_dict(tmp_path / "partial.pt")
    save_state_dict(model, tmp_path / "full.pt")
    with pytest.raises(ArtifactError, match="looks like feature_dim=9"):
        load_state_dict(tmp_path / "full.pt", feature_dim=5)


def test_encoder_module_does_not_import_torch():
    code = (
        "import sys\n"
        "from musicrec_gym.encoder import NumpyEncoder, make_windows\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "from musicrec_gym.encoder import SessionAutoencoder\n"
        "assert 'torch' in sys.modules\n"
    )
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)
    assert encoder_module.SessionAutoencoder is SessionAutoencoder
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = encoder_module.nope


def test_shared_plans_serve_every_batch_size(trained, world):
    """Mixed batch sizes in any order give each batch's own codes.

    Large-batch buffers are shared by every batch up to the next power of two (views of
    their first rows), so a stale row must never leak into another batch's codes.
    """
    model, _ = trained
    vectors = world[0]
    encoder = NumpyEncoder(encoder_weights(model))
    encoder.bind_tracks(vectors)
    rng = np.random.default_rng(7)
    sizes = (300, 25, 64, 257, 33, 300, 512, 40)  # plans of 512, 32, 64, 512, 64, ...
    batches = [
        (rng.integers(0, len(vectors), (n, WINDOW)), rng.integers(0, 2, (n, WINDOW))) for n in sizes
    ]
    codes = [encoder.encode_ids(ids, flags) for ids, flags in batches]
    assert len(encoder._plans) < len(set(sizes))  # plans were shared
    for (ids, flags), got in zip(batches, codes, strict=True):
        x = np.concatenate([vectors[ids], flags[..., None]], axis=-1)
        assert np.abs(got - torch_encode(model, x)).max() < TOL
        # the same batch again, alone in a fresh encoder: the same codes
        alone = NumpyEncoder(encoder_weights(model))
        alone.bind_tracks(vectors)
        np.testing.assert_array_equal(alone.encode_ids(ids, flags), got)


def test_threads_sharing_an_encoder_get_their_own_codes(trained, world):
    """Environments on one world share its encoder; threads must not mix their buffers."""
    from concurrent.futures import ThreadPoolExecutor

    model, _ = trained
    vectors = world[0]
    encoder = NumpyEncoder(encoder_weights(model))
    encoder.bind_tracks(vectors)
    rng = np.random.default_rng(11)
    jobs = [
        (rng.integers(0, len(vectors), (512, WINDOW)), rng.integers(0, 2, (512, WINDOW)))
        for _ in range(2)
    ]
    serial = [encoder.encode_ids(ids, flags) for ids, flags in jobs]

    def repeat(job: int) -> bool:
        ids, flags = jobs[job]
        return all(np.array_equal(encoder.encode_ids(ids, flags), serial[job]) for _ in range(200))

    with ThreadPoolExecutor(2) as pool:
        assert all(pool.map(repeat, (0, 1)))


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("epochs", 10**9, r"`epochs` must be an int <= 10,000, got 1000000000"),
        ("batch_size", 10**12, r"`batch_size` must be an int <= 1,000,000"),
        ("threads", 10**5, r"`threads` must be an int <= 1,024"),
    ],
)
def test_encoder_config_refuses_budgets_that_would_run_for_days(field, value, match):
    with pytest.raises(ConfigError, match=match):
        EncoderConfig(**{field: value})
