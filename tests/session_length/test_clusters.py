"""User clustering on profile columns and the elbow / silhouette diagnostics."""

import numpy as np
import pytest

from musicrec_gym.errors import ConfigError
from musicrec_gym.session_length.clusters import (
    ClusterSpec,
    cluster_users,
    diagnose,
    profile_matrix,
)

from .conftest import toy_profiles


def test_cluster_spec_parsing():
    assert ClusterSpec.parse("none") == ClusterSpec()
    assert ClusterSpec.parse("kmeans:3") == ClusterSpec("kmeans", 3)
    assert str(ClusterSpec.parse("spectral:2")) == "spectral:2"
    for bad in ("kmeans", "kmeans:1", "dbscan:3", "spectral:x"):
        with pytest.raises(ConfigError, match="clusters"):
            ClusterSpec.parse(bad)


def test_profile_matrix_one_hot_and_z_scored():
    x = profile_matrix(toy_profiles(), ("age", "gender", "country"))
    assert x.shape == (12, 1 + 2 + 2)
    np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=1e-12)
    with pytest.raises(ConfigError, match="unknown profile column 'agee'"):
        profile_matrix(toy_profiles(), ("agee",))


@pytest.mark.parametrize("method", ["kmeans", "spectral"])
def test_clusters_find_the_two_age_groups_and_are_seeded(method):
    profiles = toy_profiles()
    x = profile_matrix(profiles, ("age",))
    labels = cluster_users(x, ClusterSpec(method, 2), seed=0)
    groups = profiles["age"].to_numpy() > 30
    assert len(set(labels[groups])) == 1 and len(set(labels[~groups])) == 1
    assert labels[groups][0] != labels[~groups][0]
    np.testing.assert_array_equal(labels, cluster_users(x, ClusterSpec(method, 2), seed=0))


def test_too_few_users_for_k():
    x = profile_matrix(toy_profiles(2), ("age",))
    with pytest.raises(ConfigError, match="only 2 user"):
        cluster_users(x, ClusterSpec("kmeans", 3), seed=0)


def test_diagnostics_write_pngs(tmp_path):
    profiles = toy_profiles(30).assign(age=np.random.default_rng(0).integers(16, 70, 30))
    x = profile_matrix(profiles, ("age", "gender", "registered"))
    diag = diagnose(x, (2, 5), tmp_path, seed=0)
    assert diag.ks == (2, 3, 4, 5)
    assert all(a >= b for a, b in zip(diag.inertia, diag.inertia[1:], strict=False))
    assert all(-1 <= s <= 1 for s in diag.silhouette["kmeans"])
    for name in ("elbow.png", "silhouette.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_diagnostics_with_too_few_users_say_so(tmp_path):
    x = profile_matrix(toy_profiles(2), ("age",))
    diag = diagnose(x, (2, 4), tmp_path, seed=0)
    assert diag.ks == ()
    assert (tmp_path / "elbow.png").is_file()
