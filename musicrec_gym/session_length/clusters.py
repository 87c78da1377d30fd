"""Clustering of users on profile columns (scikit-learn), and its diagnostics as PNGs.

Users are described by the chosen profile columns (age and registration year as numbers,
gender and country one-hot; missing ages take the median), each column z-scored so that
no unit dominates, then clustered by KMeans or spectral clustering. ``diagnose`` plots the
elbow (KMeans inertia against k) and the silhouette score of both methods against k, to
choose k.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from musicrec_gym.errors import ConfigError, unknown_name_message

CLUSTER_METHODS = ("kmeans", "spectral")
#: Most clusters of a ``ClusterSpec`` (each trains a model of its own).
MAX_CLUSTERS = 100
PROFILE_CLUSTER_COLUMNS = ("age", "gender", "country", "registered")
_SPEC = re.compile(r"^(none|kmeans:(\d+)|spectral:(\d+))$")


@dataclass(frozen=True)
class ClusterSpec:
    """How users are grouped: ``none`` (everyone together) or ``<method>:<k>``."""

    method: str = "none"
    k: int = 1

    @classmethod
    def parse(cls, text: str) -> ClusterSpec:
        """Read ``none``, ``kmeans:K`` or ``spectral:K`` (2 <= K <= ``MAX_CLUSTERS``)."""
        match = _SPEC.match(text.strip()) if isinstance(text, str) and len(text) < 40 else None
        if not match:
            shown = repr(text) if len(repr(text)) <= 60 else f"{repr(text)[:40]}..."
            raise ConfigError(
                f"clusters must be 'none', 'kmeans:K' or 'spectral:K' with an int K >= 2, "
                f"got {shown}"
            )
        if match.group(1) == "none":
            return cls()
        method, k = text.strip().split(":")
        if not 2 <= int(k) <= MAX_CLUSTERS:
            raise ConfigError(f"clusters {text!r}: K must be in [2, {MAX_CLUSTERS}]")
        return cls(method, int(k))

    def __str__(self) -> str:
        return "none" if self.method == "none" else f"{self.method}:{self.k}"


def profile_matrix(profiles: pd.DataFrame, columns: tuple[str, ...]) -> np.ndarray:
    """(n_users, d) z-scored profile features of one row per user.

    Args:
        profiles: One row per user with the chosen columns.
        columns: Subset of ``PROFILE_CLUSTER_COLUMNS``.
    """
    if not columns:
        raise ConfigError("clustering needs at least one profile column")
    parts = []
    for col in columns:
        if col not in PROFILE_CLUSTER_COLUMNS:
            raise ConfigError(unknown_name_message("profile column", col, PROFILE_CLUSTER_COLUMNS))
        values = profiles[col] if col in profiles else pd.Series(np.nan, index=profiles.index)
        if col == "age":
            age = pd.to_numeric(values, errors="coerce")
            parts.append(age.fillna(age.median() if age.notna().any() else 30.0).to_frame())
        elif col == "registered":
            reg = pd.to_datetime(values, errors="coerce", format="mixed", utc=True)
            years = reg.dt.year + reg.dt.day_of_year / 365.25
            parts.append(years.fillna(years.median() if years.notna().any() else 0).to_frame())
        else:
            parts.append(pd.get_dummies(values.fillna("?").astype(str), prefix=col))
    x = pd.concat(parts, axis=1).to_numpy(dtype=np.float64)
    std = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(std > 1e-9, std, 1.0)


def cluster_users(x: np.ndarray, spec: ClusterSpec, seed: int) -> np.ndarray:
    """Cluster label of each user (all 0 for ``none``).

    Raises:
        ConfigError: Fewer users than clusters.
    """
    n = len(x)
    if spec.method == "none":
        return np.zeros(n, dtype=np.int64)
    if n < spec.k:
        raise ConfigError(f"clusters {spec}: only {n} user(s), fewer than k = {spec.k}")
    from sklearn.cluster import KMeans, SpectralClustering

    if spec.method == "kmeans":
        model = KMeans(n_clusters=spec.k, n_init=10, random_state=seed)
    else:
        model = SpectralClustering(
            n_clusters=spec.k,
            affinity="nearest_neighbors",
            n_neighbors=max(2, min(10, n - 1)),
            assign_labels="cluster_qr",
            random_state=seed,
        )
    return model.fit_predict(x).astype(np.int64)


@dataclass(frozen=True)
class Diagnostics:
    """Elbow and silhouette figures of the clustering.

    Attributes:
        ks: The k tried.
        inertia: KMeans inertia per k.
        silhouette: Silhouette score per method and k (NaN where undefined).
        paths: PNG files written.
    """

    ks: tuple[int, ...]
    inertia: tuple[float, ...]
    silhouette: dict[str, tuple[float, ...]]
    paths: tuple[Path, ...]


def diagnose(
    x: np.ndarray, k_range: tuple[int, int], out_dir: str | Path, seed: int
) -> Diagnostics:
    """Write ``elbow.png`` and ``silhouette.png`` for k in ``k_range`` (inclusive).

    k is capped at ``n_users - 1`` (the silhouette needs at least one user more than
    clusters); with fewer than three users no k fits and the PNGs say so.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ks = tuple(range(max(2, k_range[0]), min(k_range[1], len(x) - 1) + 1))
    inertia, sil = [], {m: [] for m in CLUSTER_METHODS}
    for k in ks:
        inertia.append(float(KMeans(n_clusters=k, n_init=10, random_state=seed).fit(x).inertia_))
        for method in CLUSTER_METHODS:
            labels = cluster_users(x, ClusterSpec(method, k), seed)
            ok = 1 < len(set(labels)) < len(x)
            sil[method].append(float(silhouette_score(x, labels)) if ok else float("nan"))

    paths = []
    for name, title, ylabel in (
        ("elbow", "Elbow: KMeans inertia against k", "inertia (within-cluster sum of squares)"),
        ("silhouette", "Silhouette score against k", "mean silhouette (higher is better)"),
    ):
        fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
        if not ks:
            ax.text(0.5, 0.5, f"only {len(x)} user(s): no k to try", ha="center", va="center")
            ax.set_axis_off()
        elif name == "elbow":
            ax.plot(ks, inertia, marker="o", color="tab:blue")
        else:
            for method, color in zip(CLUSTER_METHODS, ("tab:blue", "tab:orange"), strict=True):
                ax.plot(ks, sil[method], marker="o", color=color, label=method)
            ax.legend()
        if ks:
            ax.set_xlabel("k (number of clusters)")
            ax.set_ylabel(ylabel)
            ax.set_xticks(ks)
            ax.grid(alpha=0.3)
        ax.set_title(f"{title} ({len(x)} users)")
        fig.tight_layout()
        path = out / f"{name}.png"
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return Diagnostics(
        ks=ks,
        inertia=tuple(inertia),
        silhouette={m: tuple(v) for m, v in sil.items()},
        paths=tuple(paths),
    )
