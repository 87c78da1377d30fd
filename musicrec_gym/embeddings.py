"""Track embeddings by skip-gram with negative sampling, and their playlist-completion evaluation.

Tracks that occur near each other in listening sessions or playlists get nearby vectors,
exactly as words that occur in the same contexts do in word2vec (Mikolov et al., 2013,
"Distributed Representations of Words and Phrases and their Compositionality"). Training
is delegated to gensim's :class:`~gensim.models.Word2Vec` (skip-gram, negative sampling,
one worker thread so that a seed fixes the result bit for bit). Its ``ns_exponent``, the
exponent of the negative-sampling distribution, is the hyperparameter that Caselles-Dupré
et al. (2018), "Word2vec applied to Recommendation: Hyperparameters Matter", found to
change recommendation quality most; :func:`sweep` varies it (or any other field of
:class:`EmbeddingConfig`) and records one results row per value.

The embedding table, :class:`~musicrec_gym.track_embeddings.TrackEmbeddings` (imported
here too), is stored as a CSV file with the columns ``track_id,0,1,...,d-1``.

Evaluation (:func:`evaluate_completion`) follows the playlist-completion protocol: hold out
the last two tracks of each playlist, train on the rest, and predict the last track from
the next-to-last one by cosine nearest neighbours, reporting Hit@K and NDCG@K next to a
most-popular baseline.

Example:
    >>> sessions = [["a", "b", "c"], ["b", "c", "d"], ["a", "c", "d"]]
    >>> emb = train_embeddings(sessions, EmbeddingConfig(dim=4, epochs=2))
    >>> emb.vectors.shape
    (4, 4)
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from musicrec_gym.errors import ConfigError, DataFormatError, unknown_name_message
from musicrec_gym.track_embeddings import TrackEmbeddings

__all__ = [
    "CompletionScores",
    "EmbeddingConfig",
    "TrackEmbeddings",
    "evaluate_completion",
    "sweep",
    "train_embeddings",
]

#: gensim's Cython skip-gram silently truncates sentences longer than this many tokens
#: (``MAX_SENTENCE_LEN`` in ``word2vec_inner.pyx``), so longer sessions are cut into chunks.
_GENSIM_MAX_SENTENCE_LEN = 10_000

#: Upper bound on the number of similarity scores held in memory at once (per batch).
_SCORES_PER_BATCH = 1 << 22

_RESULT_COLUMNS = ["param", "value", "hit", "ndcg", "pop_hit", "pop_ndcg", "n_queries"]


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


# Upper limits of the integer settings: far past any useful value, low enough that a typo
# (``dim: 100000000``) is an error instead of an out-of-memory crash or a run of days.
_EMBEDDING_INT_LIMITS = {
    "dim": 1024,
    "window": 1000,
    "negative": 100,
    "epochs": 10_000,
    "min_count": 10**9,
}


@dataclass(frozen=True)
class EmbeddingConfig:
    """Hyperparameters of skip-gram with negative sampling (gensim ``Word2Vec``, ``sg=1``).

    Every field is validated on construction; an invalid value raises
    :class:`~musicrec_gym.errors.ConfigError` naming the field.

    Attributes:
        dim: Size of a track vector (gensim ``vector_size``).
        window: Maximum distance between a track and a context track within a session.
        negative: Number of negative samples per positive pair (``>= 1``; hierarchical
            softmax is not used).
        ns_exponent: Exponent of the negative-sampling distribution: 0.75 is word2vec's
            default, 0 samples uniformly, negative values favour rare tracks. Caselles-Dupré
            et al. (2018) found it to matter most for recommendation.
        sample: Threshold for down-sampling frequent tracks (0 disables down-sampling).
        epochs: Passes over the corpus.
        min_count: Tracks seen fewer times than this are left out of the vocabulary.
        alpha: Initial learning rate, decayed linearly to ``min(alpha, 1e-4)``.
        seed: Seed of the initial vectors and of all sampling; with one worker thread the
            same seed gives bit-identical vectors.
    """

    dim: int = 8
    window: int = 5
    negative: int = 5
    ns_exponent: float = 0.75
    sample: float = 1e-3
    epochs: int = 10
    min_count: int = 1
    alpha: float = 0.025
    seed: int = 0

    def __post_init__(self) -> None:
        for name, most in _EMBEDDING_INT_LIMITS.items():
            value = getattr(self, name)
            if not _is_int(value) or not 1 <= value <= most:
                raise ConfigError(f"`{name}` must be an int in [1, {most:,}], got {value!r}")
        if not _is_int(self.seed) or not 0 <= self.seed < 2**32:
            raise ConfigError(
                f"`seed` must be an int in [0, 2**32) (numpy's RandomState range), "
                f"got {self.seed!r}"
            )
        if not _is_real(self.ns_exponent) or not math.isfinite(self.ns_exponent):
            raise ConfigError(f"`ns_exponent` must be a finite float, got {self.ns_exponent!r}")
        if not _is_real(self.sample) or not (math.isfinite(self.sample) and self.sample >= 0):
            raise ConfigError(f"`sample` must be a float >= 0 (0 disables), got {self.sample!r}")
        if not _is_real(self.alpha) or not (math.isfinite(self.alpha) and 0 < self.alpha <= 1):
            raise ConfigError(
                f"`alpha` (learning rate) must be a float in (0, 1], got {self.alpha!r}"
            )


def _validate_sessions(sessions: Sequence[Sequence[str]]) -> list[list[str]]:
    """Check that sessions are sequences of string tokens and return them as lists."""
    if isinstance(sessions, str | bytes):
        raise DataFormatError("`sessions` must be a sequence of sessions, got a single string")
    out: list[list[str]] = []
    for i, session in enumerate(sessions):
        if isinstance(session, str | bytes):
            raise DataFormatError(
                f"session {i} is a string ({session[:30]!r}); each session must be a sequence "
                "of track-id strings, e.g. ['t1', 't2']"
            )
        tokens = list(session)
        for j, token in enumerate(tokens):
            if not isinstance(token, str):
                raise DataFormatError(
                    f"session {i}, position {j}: track ids must be strings, got "
                    f"{type(token).__name__} {token!r}"
                )
        out.append(tokens)
    return out


def _train(sessions: list[list[str]], config: EmbeddingConfig) -> TrackEmbeddings:
    """Train on already-validated sessions (see :func:`train_embeddings`)."""
    corpus = [
        s[start : start + _GENSIM_MAX_SENTENCE_LEN]
        for s in sessions
        if len(s) >= 2
        for start in range(0, len(s), _GENSIM_MAX_SENTENCE_LEN)
    ]
    if not corpus:
        raise DataFormatError(
            f"no session has at least 2 tracks ({len(sessions)} sessions given); skip-gram "
            "needs co-occurring tracks to learn from"
        )
    from gensim.models import Word2Vec  # imported here: gensim is slow to import

    model = Word2Vec(
        vector_size=config.dim,
        window=config.window,
        min_count=config.min_count,
        sample=config.sample,
        sg=1,
        hs=0,
        negative=config.negative,
        ns_exponent=config.ns_exponent,
        alpha=config.alpha,
        min_alpha=min(config.alpha, 1e-4),
        epochs=config.epochs,
        seed=config.seed,
        workers=1,
    )
    model.build_vocab(corpus)
    if len(model.wv) == 0:
        raise DataFormatError(
            f"no track occurs at least min_count={config.min_count} times in the "
            f"{len(corpus)} sessions of length >= 2; lower `min_count`"
        )
    model.train(corpus, total_examples=model.corpus_count, epochs=model.epochs)
    keys = np.array(model.wv.index_to_key, dtype=object)
    order = np.argsort(keys.astype(str), kind="stable")
    return TrackEmbeddings(keys[order], np.array(model.wv.vectors[order], dtype=np.float32))


def train_embeddings(
    sessions: Sequence[Sequence[str]], config: EmbeddingConfig = EmbeddingConfig()
) -> TrackEmbeddings:
    """Learn one vector per track by skip-gram with negative sampling over sessions.

    Calls gensim ``Word2Vec(sg=1, hs=0, workers=1, ...)`` with the fields of ``config``.
    Sessions shorter than 2 tracks carry no co-occurrence and are dropped; sessions longer
    than gensim's limit of 10,000 tokens are split into chunks (gensim would silently
    truncate them).

    Args:
        sessions: Listening sessions or playlists, each a sequence of track-id strings.
        config: Hyperparameters; with the same config and sessions, the vectors are
            bit-identical across runs.

    Returns:
        The embeddings of every track seen at least ``config.min_count`` times, rows sorted
        by track id.

    Raises:
        DataFormatError: If there are no sessions, none has 2 or more tracks, a session is a
            bare string or holds non-string tokens, or ``min_count`` leaves no track.
    """
    if not isinstance(config, EmbeddingConfig):
        raise ConfigError(f"`config` must be an EmbeddingConfig, got {type(config).__name__}")
    return _train(_validate_sessions(sessions), config)


@dataclass(frozen=True)
class CompletionScores:
    """Playlist-completion scores of the embedding recommender and the popularity baseline.

    Attributes:
        k: Length of the recommendation list.
        n_queries: Number of playlists with at least 3 tracks (each gives one query).
        hit: Hit@K of the cosine nearest-neighbour recommender.
        ndcg: NDCG@K of it (single relevant item, so ``ndcg <= hit``).
        pop_hit: Hit@K of recommending the K most frequent training tracks.
        pop_ndcg: NDCG@K of that baseline.
    """

    k: int
    n_queries: int
    hit: float
    ndcg: float
    pop_hit: float
    pop_ndcg: float


def _split_completion(sessions: list[list[str]]) -> tuple[list[list[str]], list[str], list[str]]:
    """Hold out the last two tracks of every playlist with >= 3 tracks.

    Returns:
        The training playlists (shorter playlists kept whole), the queries (next-to-last
        tracks) and the targets (last tracks).
    """
    train: list[list[str]] = []
    queries: list[str] = []
    targets: list[str] = []
    for s in sessions:
        if len(s) >= 3:
            train.append(s[:-2])
            queries.append(s[-2])
            targets.append(s[-1])
        else:
            train.append(s)
    return train, queries, targets


def _gains(ranks: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-query hit (0/1) and DCG for 1-based ranks; rank 0 marks a miss."""
    hits = (ranks >= 1) & (ranks <= k)
    dcg = np.zeros(len(ranks), dtype=np.float64)
    dcg[hits] = 1.0 / np.log2(ranks[hits] + 1.0)
    return hits.astype(np.float64), dcg


def _neighbour_ranks(
    unit: np.ndarray, query_rows: np.ndarray, target_rows: np.ndarray
) -> np.ndarray:
    """1-based rank of each target among the cosine neighbours of its query.

    The query itself is excluded; ties are broken by row (i.e. by track id), so the rank
    equals the position the target would have in the sorted neighbour list.

    Args:
        unit: Unit-norm vectors, shape ``(n, d)``.
        query_rows: Row of each query, shape ``(m,)``.
        target_rows: Row of each target, shape ``(m,)``, never equal to the query's row.

    Returns:
        Int64 ranks, shape ``(m,)``.
    """
    n = unit.shape[0]
    ranks = np.empty(len(query_rows), dtype=np.int64)
    batch = max(1, _SCORES_PER_BATCH // max(n, 1))
    cols = np.arange(n)
    for start in range(0, len(query_rows), batch):
        q = query_rows[start : start + batch]
        t = target_rows[start : start + batch]
        pos = np.arange(len(q))
        scores = unit[q] @ unit.T
        scores[pos, q] = -np.inf
        target_score = scores[pos, t][:, None]
        better = scores > target_score
        tied_before = (scores == target_score) & (cols[None, :] < t[:, None])
        ranks[start : start + batch] = 1 + better.sum(axis=1) + tied_before.sum(axis=1)
    return ranks


def evaluate_completion(
    sessions: Sequence[Sequence[str]], config: EmbeddingConfig = EmbeddingConfig(), k: int = 10
) -> CompletionScores:
    """Score embeddings on playlist completion: predict a playlist's last track from the one before.

    Protocol: every playlist with at least 3 tracks gives one query; its last two tracks are
    held out, the next-to-last is the query and the last is the target. Embeddings are
    trained (:func:`train_embeddings`) on all playlists with those two tracks removed;
    playlists left with fewer than 2 tracks contribute no training pairs but still count as
    queries. The recommender returns the K tracks of the trained vocabulary nearest to the
    query by cosine similarity, excluding the query itself (ties broken by track id).

    - Hit@K: 1 if the target is in the list, else 0.
    - NDCG@K: ``1 / log2(rank + 1)`` for the target's 1-based rank in the list, else 0 (one
      relevant item, so the ideal DCG is 1).

    Both are averaged over all queries. A query counts as a miss when its query track or its
    target track is not in the trained vocabulary (never seen in training, or seen fewer
    than ``min_count`` times), and when the target equals the query (a repeated last
    track), since the query is never recommended. The most-popular baseline recommends the
    K most frequent tracks of the training part (ties broken by track id), excluding the
    query track, with the same miss rules.

    The nearest-neighbour search is one matrix product per batch of queries, so 100,000
    playlists over 1,000 tracks take well under a second beyond training.

    Args:
        sessions: Playlists, each a sequence of track-id strings, in order.
        config: Hyperparameters of the embeddings.
        k: Length of the recommendation list.

    Returns:
        The scores of the embedding recommender and of the baseline.

    Raises:
        ConfigError: If ``k`` is not an int >= 1.
        DataFormatError: If no playlist has 3 or more tracks, or the training part has no
            playlist of 2 or more tracks (see :func:`train_embeddings`).
    """
    if not _is_int(k) or k < 1:
        raise ConfigError(f"`k` must be an int >= 1, got {k!r}")
    if not isinstance(config, EmbeddingConfig):
        raise ConfigError(f"`config` must be an EmbeddingConfig, got {type(config).__name__}")
    checked = _validate_sessions(sessions)
    train, queries, targets = _split_completion(checked)
    if not queries:
        raise DataFormatError(
            f"no playlist has at least 3 tracks ({len(checked)} given); playlist completion "
            "holds out the last two tracks of each playlist"
        )
    try:
        emb = _train(train, config)
    except DataFormatError as exc:
        raise DataFormatError(
            f"cannot train on the playlists left after holding out the last two tracks: {exc}"
        ) from exc

    # Embedding nearest neighbours.
    index = emb.index()
    q_rows = np.fromiter((index.get(t, -1) for t in queries), dtype=np.int64, count=len(queries))
    t_rows = np.fromiter((index.get(t, -1) for t in targets), dtype=np.int64, count=len(targets))
    ranks = np.zeros(len(queries), dtype=np.int64)
    valid = (q_rows >= 0) & (t_rows >= 0) & (q_rows != t_rows)
    norms = np.linalg.norm(emb.vectors, axis=1, keepdims=True)
    unit = emb.vectors / np.maximum(norms, np.finfo(np.float32).tiny)
    ranks[valid] = _neighbour_ranks(unit, q_rows[valid], t_rows[valid])
    hits, dcg = _gains(ranks, k)

    # Most-popular baseline.
    counts = Counter(track for s in train for track in s)
    by_popularity = sorted(counts, key=lambda t: (-counts[t], t))
    pop_rank = {t: r for r, t in enumerate(by_popularity, start=1)}
    qp = np.fromiter((pop_rank.get(t, 0) for t in queries), dtype=np.int64, count=len(queries))
    tp = np.fromiter((pop_rank.get(t, 0) for t in targets), dtype=np.int64, count=len(targets))
    pop_ranks = np.where((tp > 0) & (tp != qp), tp - ((qp > 0) & (qp < tp)), 0)
    pop_hits, pop_dcg = _gains(pop_ranks, k)

    return CompletionScores(
        k=k,
        n_queries=len(queries),
        hit=float(hits.mean()),
        ndcg=float(dcg.mean()),
        pop_hit=float(pop_hits.mean()),
        pop_ndcg=float(pop_dcg.mean()),
    )


def sweep(
    sessions: Sequence[Sequence[str]],
    param: str,
    values: Sequence[Any],
    base: EmbeddingConfig = EmbeddingConfig(),
    k: int = 10,
    out_csv: str | Path | None = None,
) -> pd.DataFrame:
    """Run :func:`evaluate_completion` once per value of one :class:`EmbeddingConfig` field.

    Typical use is the ``ns_exponent`` sweep of Caselles-Dupré et al. (2018), e.g.
    ``sweep(playlists, "ns_exponent", [-0.5, 0.0, 0.5, 0.75, 1.0])``. A tqdm progress bar
    shows the runs.

    Args:
        sessions: Playlists, each a sequence of track-id strings.
        param: Name of the :class:`EmbeddingConfig` field to vary.
        values: The values to try, one run each, in order.
        base: The config whose other fields are held fixed.
        k: Length of the recommendation list.
        out_csv: If given, the results are also written there as CSV (parent directories
            are created).

    Returns:
        One row per value, columns ``param, value, hit, ndcg, pop_hit, pop_ndcg,
        n_queries``.

    Raises:
        ConfigError: If ``param`` is not a field of :class:`EmbeddingConfig` (with a
            "did you mean" hint), ``values`` is empty, or a value is invalid for the field.
        DataFormatError: As :func:`evaluate_completion`.
    """
    fields = [f.name for f in dataclasses.fields(EmbeddingConfig)]
    if param not in fields:
        raise ConfigError(unknown_name_message("EmbeddingConfig field", str(param), fields))
    values = list(values)
    if not values:
        raise ConfigError(f"`values` must list at least one value of `{param}`, got none")
    configs = [dataclasses.replace(base, **{param: v}) for v in values]  # validates each value
    rows = []
    for value, config in zip(values, tqdm(configs, desc=f"sweep {param}", unit="run"), strict=True):
        scores = evaluate_completion(sessions, config, k=k)
        rows.append(
            {
                "param": param,
                "value": value,
                "hit": scores.hit,
                "ndcg": scores.ndcg,
                "pop_hit": scores.pop_hit,
                "pop_ndcg": scores.pop_ndcg,
                "n_queries": scores.n_queries,
            }
        )
    table = pd.DataFrame(rows, columns=_RESULT_COLUMNS)
    if out_csv is not None:
        out_path = Path(out_csv)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(out_path, index=False, lineterminator="\n")
    return table
