"""Shared fixtures: a tiny world built by the real pipeline, once per test session."""

from pathlib import Path

import pytest

from musicrec_gym.build import BuildConfig, build_world
from musicrec_gym.data.synthetic import SyntheticConfig
from musicrec_gym.embeddings import EmbeddingConfig
from musicrec_gym.encoder import EncoderConfig

TINY = BuildConfig(
    world=SyntheticConfig(n_tracks=60, n_artists=20, n_listeners=40, seed=1),
    n_sessions=3000,
    embedding=EmbeddingConfig(epochs=2, seed=1),
    encoder=EncoderConfig(epochs=1, seed=1),
    evaluate=False,
)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def build_tiny(out: Path, config: BuildConfig = TINY) -> dict:
    """Build a tiny world quietly."""
    return build_world(config, out, progress=False, log=lambda *_: None)


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory) -> Path:
    """A 60-track, 40-listener world directory, built once per test session."""
    out = tmp_path_factory.mktemp("tiny_world")
    build_tiny(out)
    return out


MSSD_SAMPLE = SHARED_DATA / "mssd" / "log_sample.csv.gz"


@pytest.fixture(scope="session")
def fitted_mssd_world(tmp_path_factory) -> Path:
    """A world fitted by the real path (gensim, LSTM, MLP) to the shared MSSD sample.

    Tiny training budgets, so it is fast and far from the targets; skipped when
    ``../shared/data`` is absent.
    """
    if not MSSD_SAMPLE.is_file():
        pytest.skip(f"shared MSSD sample not found at {MSSD_SAMPLE} (needs ../shared/data)")
    from musicrec_gym.encoder import EncoderConfig
    from musicrec_gym.fit import FitConfig, fit_world
    from musicrec_gym.sim.fitted import ResponseConfig

    config = FitConfig(
        embedding=EmbeddingConfig(epochs=2),
        encoder=EncoderConfig(epochs=2),
        response=ResponseConfig(epochs=2),
    ).with_seed(0)
    out = tmp_path_factory.mktemp("fitted_mssd_world")
    fit_world(MSSD_SAMPLE, out, config, progress=False, log=lambda *_: None)
    return out
