"""The built-in synthetic world: a seeded ground truth of tracks and listeners.

Tracks have a genre, an artist, a duration, a long-tailed popularity and a hidden
taste vector; listeners have a hidden taste vector (one or two favourite genres, the
favourites depending on age), a personal listen bias, a patience and a public profile
(age, gender, country, registered). Everything follows from one seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from musicrec_gym.errors import ConfigError

GENRES = (
    "pop", "rock", "hip-hop", "electronic", "jazz", "classical",
    "country", "r&b", "metal", "folk", "latin", "reggae",
)  # fmt: skip
# Mean age of each genre's fans: profile features carry some information about taste.
_GENRE_AGE = (24, 38, 23, 27, 48, 55, 42, 29, 31, 40, 33, 35)
_COUNTRIES = ("US", "UK", "DE", "SE", "BR", "JP", "FR", "PL", "CA", "MX")
_SYLLABLES = ("la", "mo", "ri", "ven", "ka", "sol", "tu", "ne", "da", "zor", "mi", "lu")


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and shape of the synthetic world.

    Attributes:
        n_tracks: Catalog size.
        n_artists: Number of artists (each belongs to one genre).
        n_listeners: Number of listeners.
        n_genres: Number of genres (at most 12).
        taste_dim: Dimension of the hidden taste space.
        within_genre_spread: How much tracks of one genre differ in taste space.
        second_genre_share: Mean weight of a listener's second favourite genre.
        seed: The seed everything is drawn from.
    """

    n_tracks: int = 1000
    n_artists: int = 300
    n_listeners: int = 1000
    n_genres: int = 12
    taste_dim: int = 16
    within_genre_spread: float = 0.3
    second_genre_share: float = 0.25
    seed: int = 0

    def __post_init__(self) -> None:
        checks = {
            "n_tracks": self.n_tracks >= 10,
            "n_artists": 1 <= self.n_artists <= self.n_tracks,
            "n_listeners": self.n_listeners >= 1,
            "n_genres": 1 <= self.n_genres <= len(GENRES),
            "taste_dim": self.taste_dim >= 2,
        }
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(f"`{name}` is out of range, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class WorldTruth:
    """The hidden state of a world: what the simulator knows and the agents do not.

    Attributes:
        track_factors: (n_tracks, k) unit taste vectors of the tracks.
        pop_z: (n_tracks,) standardised log popularity.
        listener_taste: (n_listeners, k) unit taste vectors of the listeners.
        listener_bias: (n_listeners,) personal shift of the listen logit.
        patience: (n_listeners,) expected number of tracks before leaving, skips aside.
    """

    track_factors: np.ndarray
    pop_z: np.ndarray
    listener_taste: np.ndarray
    listener_bias: np.ndarray
    patience: np.ndarray


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _names(rng: np.random.Generator, n: int, parts: int) -> list[str]:
    words = rng.choice(len(_SYLLABLES), size=(n, parts))
    return ["".join(_SYLLABLES[j] for j in row).capitalize() for row in words]


def generate_world(config: SyntheticConfig) -> tuple[pd.DataFrame, pd.DataFrame, WorldTruth]:
    """Draw a catalog, a listener table and the hidden truth from ``config.seed``.

    Returns:
        ``(catalog, listeners, truth)``. The catalog has columns track_id, title,
        artist_id, artist, genre, duration_s, popularity (share of plays under a
        popularity-only policy); listeners has user_id, age, gender, country, registered.
    """
    rng = np.random.default_rng(config.seed)
    n, m, g, k = config.n_tracks, config.n_listeners, config.n_genres, config.taste_dim

    centroids = _unit(rng.standard_normal((g, k)))
    genre_share = rng.dirichlet(np.full(g, 8.0))
    artist_genre = rng.choice(g, size=config.n_artists, p=genre_share)
    artist_offset = _unit(rng.standard_normal((config.n_artists, k)))
    artist_fame = rng.normal(0.0, 1.0, size=config.n_artists)
    # Every artist gets at least one track; the rest go to artists in proportion to a long tail.
    extra = rng.choice(config.n_artists, size=n - config.n_artists, p=_softmax(0.8 * artist_fame))
    track_artist = np.sort(np.concatenate([np.arange(config.n_artists), extra]))
    track_genre = artist_genre[track_artist]
    spread = config.within_genre_spread
    factors = _unit(
        centroids[track_genre]
        + spread * artist_offset[track_artist]
        + 0.5 * spread * rng.standard_normal((n, k)) / np.sqrt(k) * 2
    )
    log_pop = 1.1 * artist_fame[track_artist] + 0.7 * rng.standard_normal(n)
    pop_z = (log_pop - log_pop.mean()) / log_pop.std()
    popularity = _softmax(1.2 * pop_z)

    ages = np.clip(np.round(rng.gamma(9.0, 3.6, size=m) + 5), 16, 80).astype(int)
    age_fit = np.exp(-((ages[:, None] - np.array(_GENRE_AGE[:g])[None, :]) ** 2) / (2 * 12.0**2))
    p_genre = age_fit * genre_share[None, :]
    p_genre /= p_genre.sum(axis=1, keepdims=True)
    first = (rng.random(m)[:, None] > np.cumsum(p_genre, axis=1)).sum(axis=1)
    first = np.minimum(first, g - 1)
    second = (first + rng.integers(1, g, size=m)) % g if g > 1 else first
    w2 = rng.beta(2.0, 2.0 / config.second_genre_share - 2.0, size=m)
    taste = _unit(
        (1 - w2)[:, None] * centroids[first]
        + w2[:, None] * centroids[second]
        + spread * _unit(rng.standard_normal((m, k)))
    )
    listener_bias = rng.normal(0.0, 0.4, size=m)
    patience = np.exp(rng.normal(np.log(30.0), 0.5, size=m))

    catalog = pd.DataFrame(
        {
            "track_id": [f"t{i:05d}" for i in range(n)],
            "title": _names(rng, n, 3),
            "artist_id": [f"a{a:04d}" for a in track_artist],
            "artist": np.array(_names(rng, config.n_artists, 2), dtype=object)[track_artist],
            "genre": np.array(GENRES, dtype=object)[track_genre],
            "duration_s": np.clip(rng.normal(215, 50, size=n), 60, 600).round().astype(int),
            "popularity": popularity.round(8),
        }
    )
    registered = pd.Timestamp("2004-01-01") + pd.to_timedelta(
        rng.integers(0, 6 * 365, size=m), unit="D"
    )
    listeners = pd.DataFrame(
        {
            "user_id": [f"u{u:05d}" for u in range(m)],
            "age": ages,
            "gender": rng.choice(np.array(["m", "f", "n"]), size=m, p=[0.48, 0.48, 0.04]),
            "country": rng.choice(np.array(_COUNTRIES), size=m),
            "registered": registered.strftime("%Y-%m-%d"),
        }
    )
    truth = WorldTruth(
        track_factors=factors.astype(np.float32),
        pop_z=pop_z.astype(np.float32),
        listener_taste=taste.astype(np.float32),
        listener_bias=listener_bias.astype(np.float32),
        patience=patience.astype(np.float32),
    )
    return catalog, listeners, truth


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()
