"""Each sequence model trains on tiny data, beats the mean there, and is seeded."""

import numpy as np
import pytest

from musicrec_gym.errors import ConfigError
from musicrec_gym.session_length.models import METHODS, TrainConfig, feature_frame, train_model

TINY = TrainConfig(hidden=8, epochs=12, batch_size=4, lr=0.02, patience=12, chunk=8)


def test_feature_frame_has_no_missing_values(toy_summary):
    features = feature_frame(toy_summary.rows, age_fill=30.0)
    assert not features.isna().any().any()
    assert features["registered_years"].between(5, 7).all()


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_each_model_learns_user_lengths(toy_summary, method, dropout):
    rows = toy_summary.rows
    features = feature_frame(rows, 30.0)
    model = train_model(rows, features, method, dropout, True, TINY, seed=0)
    pred = model.predict(rows, features)
    test = (rows["split"] == "test").to_numpy()
    y = rows["length"].to_numpy()
    mean = y[(rows["split"] == "train").to_numpy()].mean()
    assert np.isfinite(pred[test]).all()
    assert np.isnan(pred[(rows["split"] == "first").to_numpy()]).all()
    assert np.abs(pred[test] - y[test]).mean() < 0.6 * np.abs(mean - y[test]).mean()
    assert 1 <= model.epochs_run <= TINY.epochs


def test_same_seed_same_predictions(toy_summary):
    rows = toy_summary.rows
    features = feature_frame(rows, 30.0)
    a = train_model(rows, features, "lstm", 0.2, False, TINY, seed=3).predict(rows, features)
    b = train_model(rows, features, "lstm", 0.2, False, TINY, seed=3).predict(rows, features)
    c = train_model(rows, features, "lstm", 0.2, False, TINY, seed=4).predict(rows, features)
    test = (rows["split"] == "test").to_numpy()
    np.testing.assert_array_equal(a[test], b[test])
    assert not np.array_equal(a[test], c[test])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"method": "rnn"}, "unknown method 'rnn'"), ({"dropout": 1.0}, "dropout")],
)
def test_bad_model_arguments(toy_summary, kwargs, match):
    rows = toy_summary.rows
    args = {"method": "gru", "dropout": 0.0, **kwargs}
    with pytest.raises(ConfigError, match=match):
        train_model(rows, feature_frame(rows, 30.0), standardise=True, config=TINY, seed=0, **args)


def test_train_config_is_validated():
    with pytest.raises(ConfigError, match="`hidden` must be an int > 0"):
        TrainConfig(hidden=0)
    with pytest.raises(ConfigError, match="`lr`"):
        TrainConfig(lr=-1.0)
