"""Tests of musicrec_gym.embeddings: training, the CSV table, completion evaluation, sweeps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from musicrec_gym.embeddings import (
    CompletionScores,
    EmbeddingConfig,
    TrackEmbeddings,
    evaluate_completion,
    sweep,
    train_embeddings,
)
from musicrec_gym.errors import ArtifactError, ConfigError, DataFormatError

N_GENRES = 3
TRACKS_PER_GENRE = 10
FAST = EmbeddingConfig(dim=8, epochs=20, sample=0.0, seed=0)


def genre_of(track: str) -> int:
    return int(track[1])


def make_corpus(n_sessions: int = 300, p_within: float = 0.9, seed: int = 0) -> list[list[str]]:
    """Sessions of 8-15 tracks, each track from the session's genre with prob. ``p_within``."""
    rng = np.random.default_rng(seed)
    tracks = [[f"g{g}t{t:02d}" for t in range(TRACKS_PER_GENRE)] for g in range(N_GENRES)]
    sessions = []
    for _ in range(n_sessions):
        genre = int(rng.integers(N_GENRES))
        session = []
        for _ in range(int(rng.integers(8, 16))):
            g = genre if rng.random() < p_within else int(rng.integers(N_GENRES))
            session.append(tracks[g][int(rng.integers(TRACKS_PER_GENRE))])
        sessions.append(session)
    return sessions


@pytest.fixture(scope="module")
def corpus() -> list[list[str]]:
    return make_corpus()


@pytest.fixture(scope="module")
def emb(corpus: list[list[str]]) -> TrackEmbeddings:
    return train_embeddings(corpus, FAST)


# --- training -------------------------------------------------------------------------------


def test_train_shapes_and_sorted_ids(emb: TrackEmbeddings) -> None:
    assert emb.vectors.shape == (N_GENRES * TRACKS_PER_GENRE, FAST.dim)
    assert emb.vectors.dtype == np.float32
    ids = emb.track_ids.tolist()
    assert ids == sorted(ids)
    assert emb.index() == {t: i for i, t in enumerate(ids)}


def test_same_seed_gives_identical_vectors(corpus: list[list[str]], emb: TrackEmbeddings) -> None:
    again = train_embeddings(corpus, FAST)
    assert np.array_equal(again.track_ids, emb.track_ids)
    assert np.array_equal(again.vectors, emb.vectors)


def test_different_seed_gives_different_vectors(
    corpus: list[list[str]], emb: TrackEmbeddings
) -> None:
    other = train_embeddings(corpus, EmbeddingConfig(dim=8, epochs=20, sample=0.0, seed=1))
    assert np.array_equal(other.track_ids, emb.track_ids)
    assert not np.array_equal(other.vectors, emb.vectors)


def test_within_genre_more_similar_than_between(emb: TrackEmbeddings) -> None:
    unit = emb.vectors / np.linalg.norm(emb.vectors, axis=1, keepdims=True)
    sim = unit @ unit.T
    genres = np.array([genre_of(t) for t in emb.track_ids])
    same = genres[:, None] == genres[None, :]
    off_diagonal = ~np.eye(len(genres), dtype=bool)
    within = sim[same & off_diagonal].mean()
    between = sim[~same].mean()
    assert within > between + 0.3, (within, between)


def test_min_count_drops_rare_tracks() -> None:
    sessions = [["a", "b", "c"], ["a", "b"], ["a", "d"]]
    emb = train_embeddings(sessions, EmbeddingConfig(dim=4, epochs=1, min_count=2))
    assert emb.track_ids.tolist() == ["a", "b"]


@pytest.mark.parametrize(
    ("sessions", "match"),
    [
        ([], "no session has at least 2 tracks"),
        ([["a"], ["b"], []], "no session has at least 2 tracks"),
        (["abc", "def"], "session 0 is a string"),
        ([["a", 1]], r"session 0, position 1: track ids must be strings, got int"),
    ],
)
def test_train_rejects_bad_sessions(sessions: list, match: str) -> None:
    with pytest.raises(DataFormatError, match=match):
        train_embeddings(sessions, EmbeddingConfig(dim=4, epochs=1))


def test_train_rejects_min_count_leaving_nothing() -> None:
    with pytest.raises(DataFormatError, match="min_count=5"):
        train_embeddings([["a", "b"]], EmbeddingConfig(dim=4, epochs=1, min_count=5))


# --- config validation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dim": 0}, r"`dim` must be an int in \[1, 1,024\], got 0"),
        ({"dim": 100_000_000}, r"`dim` must be an int in \[1, 1,024\], got 100000000"),
        ({"dim": 8.0}, r"`dim` must be an int in \[1, 1,024\], got 8\.0"),
        ({"window": True}, r"`window` must be an int in \[1, 1,000\], got True"),
        ({"window": 10**9}, r"`window` must be an int in \[1, 1,000\]"),
        ({"negative": 0}, r"`negative` must be an int in \[1, 100\], got 0"),
        ({"negative": 10**6}, r"`negative` must be an int in \[1, 100\]"),
        ({"epochs": -1}, r"`epochs` must be an int in \[1, 10,000\], got -1"),
        ({"epochs": 10**9}, r"`epochs` must be an int in \[1, 10,000\]"),
        ({"min_count": 0}, r"`min_count` must be an int in \[1, 1,000,000,000\], got 0"),
        ({"seed": -1}, r"`seed` must be an int in \[0, 2\*\*32\)"),
        ({"seed": 2**32}, r"`seed` must be an int in \[0, 2\*\*32\)"),
        ({"ns_exponent": float("nan")}, r"`ns_exponent` must be a finite float, got nan"),
        ({"ns_exponent": "0.75"}, r"`ns_exponent` must be a finite float, got '0\.75'"),
        ({"sample": -1e-3}, r"`sample` must be a float >= 0"),
        ({"alpha": 0.0}, r"`alpha` \(learning rate\) must be a float in \(0, 1\], got 0\.0"),
        ({"alpha": 1e300}, r"`alpha` \(learning rate\) must be a float in \(0, 1\]"),
    ],
)
def test_config_validation(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        EmbeddingConfig(**kwargs)


def test_config_accepts_numpy_scalars_and_negative_exponent() -> None:
    config = EmbeddingConfig(dim=np.int64(4), ns_exponent=np.float64(-0.5), sample=0)
    assert config.dim == 4


# --- TrackEmbeddings and CSV ----------------------------------------------------------------


def test_csv_round_trip_is_exact_and_deterministic(emb: TrackEmbeddings, tmp_path: Path) -> None:
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    emb.to_csv(first)
    emb.to_csv(second)
    assert first.read_bytes() == second.read_bytes()
    header = first.read_text(encoding="utf-8").splitlines()[0]
    assert header == "track_id," + ",".join(str(j) for j in range(FAST.dim))
    loaded = TrackEmbeddings.from_csv(first)
    assert np.array_equal(loaded.track_ids, emb.track_ids)
    assert np.array_equal(loaded.vectors, emb.vectors)
    assert loaded.vectors.dtype == np.float32


def test_csv_round_trip_extreme_floats_and_awkward_ids(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    vectors = (rng.standard_normal((5, 3)) * 10.0 ** rng.integers(-30, 30, (5, 3))).astype(
        np.float32
    )
    vectors[0, 0] = np.float32(1e-45)  # subnormal
    vectors[0, 1] = np.finfo(np.float32).max
    ids = np.array(["plain", "with,comma", 'with "quote"', "ünïcode", "-1"], dtype=object)
    table = TrackEmbeddings(ids, vectors)
    table.to_csv(tmp_path / "x.csv")
    loaded = TrackEmbeddings.from_csv(tmp_path / "x.csv")
    assert np.array_equal(loaded.track_ids, ids)
    assert np.array_equal(loaded.vectors, vectors)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "emb.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_from_csv_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match=r"nope\.csv.*not found"):
        TrackEmbeddings.from_csv(tmp_path / "nope.csv")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", r"emb\.csv: line 1: file is empty, expected the header 'track_id,0,1,\.\.\.,d-1'"),
        ("id,0,1\na,1,2\n", r"emb\.csv: line 1: expected the header 'track_id,0,1,\.\.\.,d-1'"),
        ("track_id,0,2\na,1,2\n", r"line 1: expected the header .* got 'track_id,0,2'"),
        ("track_id\na\n", r"line 1: expected the header"),
        (
            "track_id,0,1\na,1,2\nb,3,x\n",
            r"emb\.csv: line 3: column '1': expected a finite number, got 'x'",
        ),
        (
            "track_id,0,1\na,1,2\nb,inf,1\n",
            r"line 3: column '0': expected a finite number, got 'inf'",
        ),
        (
            "track_id,0,1\na,1,2\nb,3\n",
            r"line 3: expected 3 fields \(track_id and 2 values\), got 2",
        ),
        (
            "track_id,0,1\na,1,2\nb,3,4\na,5,6\n",
            r"line 4: duplicate track id 'a' \(first on line 2\)",
        ),
        ("track_id,0,1\n,1,2\n", r"line 2: column 'track_id' is empty"),
        ("track_id,0,1\n", r"has a header but no rows"),
    ],
)
def test_from_csv_format_errors(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(DataFormatError, match=match):
        TrackEmbeddings.from_csv(write(tmp_path, text))


@pytest.mark.parametrize(
    ("ids", "vectors", "match"),
    [
        (["a", "b"], np.zeros((3, 2)), "`track_ids` has 2 entries but `vectors` has 3 rows"),
        (["a", "a"], np.zeros((2, 2)), "duplicate track id 'a' at rows 0 and 1"),
        (["a"], np.zeros(2), r"`vectors` must have shape \(n, dim >= 1\)"),
        ([1, 2], np.zeros((2, 2)), r"`track_ids\[0\]` must be a non-empty string, got 1"),
    ],
)
def test_track_embeddings_validation(ids: list, vectors: np.ndarray, match: str) -> None:
    with pytest.raises(DataFormatError, match=match):
        TrackEmbeddings(np.array(ids), vectors)


def test_matrix_for_order_and_missing_mean() -> None:
    vectors = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    table = TrackEmbeddings(np.array(["a", "b", "c"]), vectors)
    out = table.matrix_for(["c", "a", "zz", "a"])
    assert out.dtype == np.float32
    assert np.array_equal(out[0], vectors[2])
    assert np.array_equal(out[1], vectors[0])
    assert np.allclose(out[2], [4.0 / 3.0, 2.0])
    assert np.array_equal(out[3], vectors[0])
    assert table.matrix_for([]).shape == (0, 2)


def test_matrix_for_missing_error_names_ids_and_count() -> None:
    table = TrackEmbeddings(np.array(["a"]), np.ones((1, 2), dtype=np.float32))
    assert np.array_equal(table.matrix_for(["a"], missing="error"), np.ones((1, 2)))
    wanted = ["a", "m1", "m2", "m2", "m3", "m4", "m5", "m6"]
    with pytest.raises(ArtifactError, match=r"^6 track id\(s\) not in .*'m1', .*'m5', \.\.\.$"):
        table.matrix_for(wanted, missing="error")
    with pytest.raises(
        ConfigError, match=r"unknown `missing` policy 'errors'\. Did you mean 'error'"
    ):
        table.matrix_for(["a"], missing="errors")


# --- playlist completion --------------------------------------------------------------------


def test_evaluate_completion_beats_popularity(corpus: list[list[str]]) -> None:
    scores = evaluate_completion(corpus, FAST, k=10)
    assert isinstance(scores, CompletionScores)
    assert scores.k == 10
    assert scores.n_queries == len(corpus)
    assert scores.hit > scores.pop_hit + 0.2, scores
    assert 0.0 <= scores.ndcg <= scores.hit <= 1.0
    assert 0.0 <= scores.pop_ndcg <= scores.pop_hit <= 1.0


def test_evaluate_completion_hand_checked_protocol() -> None:
    # Training part: ["a","b"] x 3, ["c","d"], ["x"] (a 3-track playlist, still a query).
    # Popularity in training: a=3, b=3, c=1, d=1, x=1 -> order a, b, c, d, x.
    sessions = [
        ["a", "b", "a", "b"],  # query a, target b: pop list without a -> b first: rank 1
        ["a", "b", "b", "c"],  # query b, target c: pop list without b -> a, c: rank 2
        ["a", "b", "a", "zz"],  # target unseen in training: miss for both
        ["c", "d"],  # too short: training only
        ["x", "d", "d"],  # target == query: miss for both
    ]
    scores = evaluate_completion(sessions, EmbeddingConfig(dim=4, epochs=1), k=2)
    assert scores.n_queries == 4
    assert scores.pop_hit == pytest.approx(2 / 4)
    assert scores.pop_ndcg == pytest.approx((1.0 + 1.0 / np.log2(3)) / 4)
    # Vocabulary a, b, c, d ("x" only sits in a 1-track leftover), so k = 4 hits every valid query.
    wide = evaluate_completion(sessions, EmbeddingConfig(dim=4, epochs=1), k=4)
    assert wide.hit == pytest.approx(2 / 4)
    assert wide.pop_hit == pytest.approx(2 / 4)


def test_evaluate_completion_errors() -> None:
    with pytest.raises(DataFormatError, match="no playlist has at least 3 tracks"):
        evaluate_completion([["a", "b"], ["c"]])
    with pytest.raises(DataFormatError, match="after holding out the last two tracks"):
        evaluate_completion([["a", "b", "c"], ["d", "e", "f"]])
    with pytest.raises(ConfigError, match=r"`k` must be an int >= 1, got 0"):
        evaluate_completion([["a", "b", "c", "d"]], k=0)


# --- sweep ----------------------------------------------------------------------------------


def test_sweep_one_row_per_value(corpus: list[list[str]], tmp_path: Path) -> None:
    small = corpus[:120]
    base = EmbeddingConfig(dim=4, epochs=3, sample=0.0)
    out = tmp_path / "runs" / "sweep.csv"
    table = sweep(small, "ns_exponent", [-0.5, 0.0, 0.75], base=base, k=5, out_csv=out)
    assert list(table.columns) == [
        "param",
        "value",
        "hit",
        "ndcg",
        "pop_hit",
        "pop_ndcg",
        "n_queries",
    ]
    assert table["value"].tolist() == [-0.5, 0.0, 0.75]
    assert (table["param"] == "ns_exponent").all()
    assert (table["n_queries"] == len(small)).all()
    assert (table["ndcg"] <= table["hit"]).all()
    assert table["pop_hit"].nunique() == 1  # the baseline does not depend on the config
    direct = evaluate_completion(small, EmbeddingConfig(dim=4, epochs=3, sample=0.0), k=5)
    assert table["hit"].iloc[2] == direct.hit
    pd.testing.assert_frame_equal(pd.read_csv(out), table)


def test_sweep_rejects_unknown_param_with_hint(corpus: list[list[str]]) -> None:
    with pytest.raises(
        ConfigError,
        match=r"unknown EmbeddingConfig field 'ns_exponant'\. Did you mean 'ns_exponent'",
    ):
        sweep(corpus, "ns_exponant", [0.5])


def test_sweep_rejects_bad_values(corpus: list[list[str]]) -> None:
    with pytest.raises(ConfigError, match=r"`dim` must be an int in \[1, 1,024\], got 0"):
        sweep(corpus, "dim", [4, 0])
    with pytest.raises(ConfigError, match="at least one value"):
        sweep(corpus, "dim", [])


def test_evaluate_completion_matches_brute_force(corpus: list[list[str]]) -> None:
    """The vectorised rank computation equals building each top-K list explicitly."""
    k = 5
    train = [s[:-2] for s in corpus]
    emb = train_embeddings(train, FAST)  # same config and data, so the same vectors
    unit = emb.vectors / np.linalg.norm(emb.vectors, axis=1, keepdims=True)
    ids = emb.track_ids.tolist()
    index = emb.index()
    hits, dcgs = [], []
    for s in corpus:
        query, target = s[-2], s[-1]
        sims = unit @ unit[index[query]]
        ranked = [ids[i] for i in sorted(range(len(ids)), key=lambda i: (-sims[i], i))]
        top = [t for t in ranked if t != query][:k]
        hits.append(target in top)
        dcgs.append(1.0 / np.log2(top.index(target) + 2) if target in top else 0.0)
    scores = evaluate_completion(corpus, FAST, k=k)
    assert scores.hit == pytest.approx(np.mean(hits))
    assert scores.ndcg == pytest.approx(np.mean(dcgs))
