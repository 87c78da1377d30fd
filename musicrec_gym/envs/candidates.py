"""Candidate-set mode: ``gym.make("MusicRec-v0", candidates=K)``, the single and the batch env.

## Description
``MusicRec-v0``'s listener and dynamics, but the agent no longer picks from the whole
catalog: at every decision the world's retrieval stage proposes ``K`` candidate tracks
(:mod:`musicrec_gym.sim.retrieval`: the logging policy's mix of continuations of the
last play, tracks to the listener's taste and popular tracks, distinct and not played
this session) and the agent picks one of them. This is how services recommend at
catalog scale: a deep agent's output layer has ``K`` entries, not one per track.

Regret splits in two: ``retrieval_loss`` (the catalog optimum minus the best candidate,
what the retrieval lost) and ``regret`` (the best candidate minus the chosen one, what
the ranking lost). Neither the retrieval nor either optimum scans the catalog per step.

## Action Space
``Discrete(K)``: the index of the chosen candidate in ``obs["candidates"]``.

## Observation Space
``Dict({"session": Box(-1, 1, (9,)), "candidates": Box((K, d + 7))})``, float32.
``"session"`` is ``MusicRec-v0``'s observation (the encoded last five plays, plus the
profile with ``profile_features=True``). Row ``c`` of ``"candidates"`` (d = 8 in the
built-in world, so 15 features):

| Index   | Candidate feature                                                   | Min | Max |
|---------|---------------------------------------------------------------------|-----|-----|
| 0–(d-1) | the track's learned embedding (``world.embeddings``) [1]             | min | max |
| d       | log-popularity: ``log(1 + plays) / log(1 + most plays)``             | 0   | 1   |
| d+1     | continues the last play's artist (1/0)                               | 0   | 1   |
| d+2     | plays by its artist among the last five, / 5                         | 0   | 1   |
| d+3     | cosine similarity of its embedding to the last play's                | -1  | 1   |
| d+4     | proposed as a continuation of the last play (1/0)                    | 0   | 1   |
| d+5     | proposed as a personal track (1/0)                                   | 0   | 1   |
| d+6     | proposed as a popular track (1/0)                                    | 0   | 1   |

[1] Each column's bounds are its min and max over the catalog (widened to hold 0).
Everything is public (learned embeddings, play counts, catalog metadata, the session's
plays, the retrieval's own sources); nothing reads the listener's hidden taste. After
a session's last step (and in the vector env's ``final_obs``) ``"candidates"`` is
zeros: no decision follows.

## Rewards
As ``MusicRec-v0`` (``reward="listen"``, ``"time"`` or ``"event"``).

## Starting State
As ``MusicRec-v0``: a listener, five warm-up plays; then the first candidate set.

## Episode End
As ``MusicRec-v0`` (the listener leaves; truncation after ``max_steps``).

## Info
``MusicRec-v0``'s keys, with the optimum taken over the candidates, and three more
(the same keys at reset, with the same placeholders, and at every step):

| Key                      | After a step                                               | At reset |
|--------------------------|------------------------------------------------------------|----------|
| ``optimal_reward``       | best expected reward among the candidates chosen from      | 0.0      |
| ``expected_reward``      | expected reward of the chosen candidate                    | 0.0      |
| ``regret``               | ``optimal_reward - expected_reward`` >= 0 (ranking loss)   | 0.0      |
| ``catalog_optimal_reward`` | best expected reward in the whole catalog                | 0.0      |
| ``retrieval_loss``       | ``catalog_optimal_reward - optimal_reward`` >= 0 [1]       | 0.0      |
| ``track``                | the chosen candidate's catalog row                         | -1       |
| ``optimal_action``       | index of the best candidate of the *new* set [2]           | the same |
| ``candidate_tracks``     | int64 (K,), read-only: the new set's catalog rows [2]      | the same |

and ``listened``, ``user``, ``step``, ``warmup_tracks``, ``warmup_listened`` (and the
string ids) as ``MusicRec-v0``'s. [1] Clipped at 0: the catalog optimum is summed in
another order, so equal values can differ in the last bit. [2] -1 after the session's
last step (no candidates follow).

## Arguments
``gym.make("MusicRec-v0", candidates=K, **MusicRec-v0's arguments)`` and
``gym.make_vec("MusicRec-v0", num_envs=N, candidates=K, ...)``:

- ``candidates``: ``K``, an int in ``[1, n_tracks - (warmup + max_steps)]`` (975 in
  the built-in world at 20 steps), so that ``K`` unplayed tracks always exist.
  Synthetic worlds only (the retrieval's continuations use the world's hidden track
  factors, as its logging policy does; a fitted world has none).
- ``world``, ``reward``, ``profile_features``, ``max_steps``, ``string_ids``,
  ``long_term``, ``render_mode`` (single env), ``autoreset_mode`` (vector env):
  as ``MusicRec-v0``'s.

## Version History
- v0 (``candidates=K``): added; ``MusicRec-v0``'s catalog setting unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from musicrec_gym.checks import is_int
from musicrec_gym.envs.music_rec import MusicRecEnv
from musicrec_gym.envs.vector import MusicRecVectorEnv
from musicrec_gym.errors import ArgumentError, ConfigError, InvalidActionError
from musicrec_gym.sim.retrieval import N_FEATURES_EXTRA, retrieve
from musicrec_gym.sim.retrieval_tables import (
    alias_table,
    cache_table,
    continuation_order,
    draw_table,
    popularity_ranks,
    record_table,
    set_size,
    source_counts,
    track_records,
)
from musicrec_gym.world import World

SETTING = "candidates"
CANDIDATE_KEYS = ("catalog_optimal_reward", "retrieval_loss", "candidate_tracks")
"""The info keys candidate mode adds, after ``MusicRec-v0``'s."""
FEATURE_NAMES = (
    "log_popularity", "continues_artist", "artist_in_window", "cosine_to_last",
    "is_continuation", "is_personal", "is_popular",
)  # fmt: skip
"""Names of the candidate features after the ``d`` embedding columns."""


def check_candidates(k: Any, world: World, history: int) -> int:
    """``candidates=K`` checked against the world: an int in ``[1, n_tracks - history]``.

    Raises:
        ArgumentError: Not an int (bools are not), below 1, larger than the catalog, or
            too large to leave ``K`` unplayed tracks at a session's last step.
    """
    n_tracks = world.n_tracks
    most = n_tracks - history
    if not is_int(k) or k < 1:
        raise ArgumentError(
            f"`candidates` must be an int K >= 1 (the size of the candidate set), got {k!r}"
        )
    if k > n_tracks:
        raise ArgumentError(
            f"`candidates`={k} is larger than the catalog ({n_tracks:,} tracks): use K <= {most}"
        )
    if k > most:
        raise ArgumentError(
            f"`candidates`={k}: a session plays up to {history} tracks, so only "
            f"{most} unplayed tracks of the {n_tracks:,} are sure to remain; use K <= {most}"
        )
    return int(k)


class Retrieval:
    """The retrieval stage over one simulator: candidate sets, features and their optimum.

    Args:
        sim: The environment core's simulator (a ``CompiledSimulator``).
        world: Its world (embeddings, play counts).
        k: Candidates per set.
    """

    def __init__(self, sim: Any, world: World, k: int) -> None:
        if world.fitted is not None or not hasattr(sim, "int_state"):
            raise ConfigError(
                "`candidates=K` needs a synthetic world (its retrieval's continuations use the "
                f"world's hidden track factors, as its logging policy does); {world.directory} "
                "is fitted to logs"
            )
        self.sim, self.k = sim, k
        params = sim.params
        self.counts = source_counts(k, params.logging_pop_share, params.logging_continuation_share)
        history = sim.hist.shape[1]
        self.n_top = min(k + history, sim.n_tracks)  # the popular list's length
        pools = sim.candidates.index[:, : sim.pool]
        pool_fact = np.ascontiguousarray(sim.response.factors[pools], dtype=np.float64)
        self.order = continuation_order(pool_fact)
        # (n_users, dim, pool): the retrieval's dot products with a track outside the
        # pool run across the pool (see ``_retrieve_slot``)
        self.pool_fact = np.ascontiguousarray(pool_fact.transpose(0, 2, 1))
        del pool_fact
        self.rank_track, self.rank_of, share = popularity_ranks(world.popularity)
        self.draws = draw_table(alias_table(share), self.rank_track)
        self.cache_tab = cache_table(sim.candidates.index)
        self.set_size = set_size(k, history)
        emb = np.asarray(world.embeddings, dtype=np.float32)
        plays = world.catalog["plays"].to_numpy(dtype=np.float64)
        rec = track_records(emb, plays, world.artist_index)
        self.table = record_table(rec, self.rank_track, pools)
        del rec
        d = self.d = emb.shape[1]
        self.n_features = d + N_FEATURES_EXTRA
        low = np.zeros(self.n_features, np.float32)
        high = np.ones(self.n_features, np.float32)
        # zeros (no candidates, after a session's end) are in the space too
        low[:d] = np.minimum(emb.min(axis=0), 0.0)
        high[:d] = np.maximum(emb.max(axis=0), 0.0)
        low[d + 3] = -1.0
        self.space = spaces.Box(
            np.broadcast_to(low, (k, self.n_features)).copy(),
            np.broadcast_to(high, (k, self.n_features)).copy(),
            dtype=np.float32,
        )

    def propose(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Candidate sets of ``slots`` now: tracks, features, the best one and its reward."""
        n, k = len(slots), self.k
        tracks = np.empty((n, k), np.int64)
        kinds = np.empty((n, k), np.int64)
        feats = np.empty((n, k, self.n_features), np.float32)
        best = np.empty(n, np.int64)
        best_reward = np.empty(n, np.float64)
        sim = self.sim
        retrieve(
            sim.cf, sim.ci, sim.int_state, sim.float_state, sim.streams.state,
            np.ascontiguousarray(slots, dtype=np.int64), *self.counts, self.n_top, self.order,
            self.pool_fact, self.draws, self.rank_track, self.rank_of,
            self.cache_tab, self.table, self.d, tracks, kinds, feats, best,
            best_reward, self.set_size,
        )  # fmt: skip
        return tracks, feats, best, best_reward


def check_choices(actions: Any, n: int, k: int, single: bool = False) -> np.ndarray:
    """Candidate indices as an int64 array of shape ``(n,)``.

    Raises:
        InvalidActionError: Not integers (bools, strings, non-integral floats), the wrong
            shape, or an index outside ``Discrete(K)``.
    """
    expected = (
        f"one integer candidate index in [0, {k})"
        if single
        else f"{n} integer candidate indices in [0, {k}), shape ({n},)"
    )
    try:
        arr = np.asarray(actions)
    except (ValueError, TypeError):
        raise InvalidActionError(f"expected {expected}, got {actions!r}") from None
    if arr.shape != (n,):
        if not single or arr.ndim > 1 or arr.size != 1:
            raise InvalidActionError(f"expected {expected}, got {actions!r}")
        arr = arr.reshape(1)
    kind = arr.dtype.kind
    integral = kind in "iu" or (
        kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))
    )
    if not integral:
        raise InvalidActionError(f"expected {expected}, got {actions!r}")
    bad = np.flatnonzero((arr < 0) | (arr >= k))
    if bad.size:
        first = arr[bad[0]].item()
        raise InvalidActionError(
            f"action {first!r} is outside the action space Discrete({k}): actions are "
            f"indices of the {k} candidates in obs['candidates'], 0..{k - 1}"
        )
    return arr.astype(np.int64)


class CandidateState:
    """The candidate sets on show in a batch of slots, and the outcomes of choosing.

    Shared by the single and the vector environment, so both compute the same numbers.
    """

    def __init__(self, retrieval: Retrieval, n: int) -> None:
        self.retrieval, self.n = retrieval, n
        self.all = np.arange(n, dtype=np.int64)
        self.tracks = np.full((n, retrieval.k), -1, np.int64)
        self.best_reward = np.zeros(n)

    def show(self, live: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Propose new sets in every slot (blank where ``live`` is False).

        Returns the features ``(n, K, F)``, the best candidate ``(n,)`` (-1 where
        blank) and the candidates' tracks ``(n, K)`` (-1 where blank), new arrays; the
        tracks are a read-only view of the sets the next step chooses from (a copy
        would write 400 kB per step at K = 50 and 1,024 slots).
        """
        tracks, feats, best, best_reward = self.retrieval.propose(self.all)
        if live is not None and not live.all():
            dead = ~live
            feats[dead] = 0.0
            tracks[dead] = -1
            best[dead] = -1
            best_reward[dead] = 0.0
        self.tracks, self.best_reward = tracks, best_reward
        shown = tracks.view()
        shown.flags.writeable = False
        return feats, best, shown

    def chosen_tracks(self, choices: np.ndarray) -> np.ndarray:
        """The catalog rows of the chosen candidates."""
        return self.tracks[self.all, choices]

    def outcomes(self, expected: np.ndarray, catalog_optimal: np.ndarray) -> dict[str, np.ndarray]:
        """The step-outcome keys of candidate mode, from the sets just chosen from."""
        optimal = self.best_reward.copy()
        return {
            "optimal_reward": optimal,
            "regret": optimal - expected,
            "catalog_optimal_reward": catalog_optimal,
            "retrieval_loss": np.maximum(catalog_optimal - optimal, 0.0),
        }


def candidate_info(
    info: dict[str, Any], outcomes: dict[str, Any], best: Any, tracks: Any
) -> dict[str, Any]:
    """``MusicRec-v0``'s ``info`` with candidate mode's values, its keys added at the end."""
    out = {key: outcomes.get(key, value) for key, value in info.items()}
    out["optimal_action"] = best
    out["catalog_optimal_reward"] = outcomes["catalog_optimal_reward"]
    out["retrieval_loss"] = outcomes["retrieval_loss"]
    out["candidate_tracks"] = tracks
    return out


def split_kwargs(kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """``candidates`` (required) and the other keyword arguments, for ``MusicRec-v0``."""
    kwargs = dict(kwargs)
    if "candidates" not in kwargs:
        raise ArgumentError("candidate mode needs `candidates=K`, the size of the candidate set")
    if kwargs.pop("slate", None):
        raise ArgumentError("`candidates` and `slate` cannot be combined: pick one setting")
    return kwargs.pop("candidates"), kwargs


class CandidateEnv(gym.Env):
    """One listener's session in candidate mode; see the module docstring for the tables."""

    metadata = MusicRecEnv.metadata
    setting = SETTING

    def __init__(
        self,
        render_mode: str | None = None,
        world: str | Path | World | None = None,
        **kwargs: Any,
    ) -> None:
        k, kwargs = split_kwargs(kwargs)
        self.inner = MusicRecEnv(render_mode=render_mode, world=world, **kwargs)
        self.render_mode = render_mode
        self.core = self.inner.core
        self.world = self.core.world
        self.k = check_candidates(k, self.world, self.core.sim.hist.shape[1])
        self.retrieval = Retrieval(self.core.sim, self.world, self.k)
        self.state = CandidateState(self.retrieval, 1)
        self.observation_space = spaces.Dict(
            {"session": self.core.observation_space, "candidates": self.retrieval.space}
        )
        self.action_space = spaces.Discrete(self.k)
        self._done = True

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Start a session (as ``MusicRec-v0``'s ``reset``) and show the first candidates."""
        super().reset(seed=seed)
        session, info = self.inner.reset(seed=seed, options=options)
        self._done = False
        feats, best, tracks = self.state.show()
        outcomes = {
            "catalog_optimal_reward": np.float64(0.0),
            "retrieval_loss": np.float64(0.0),
        }
        info = candidate_info(info, outcomes, best[0], tracks[0])
        return {"session": session, "candidates": feats[0]}, info

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Recommend candidate ``action`` (an index into ``obs["candidates"]``)."""
        if self._done:
            self.inner.step(0)  # raises EpisodeEndedError
        choice = check_choices(action, 1, self.k, single=True)
        track = int(self.state.chosen_tracks(choice)[0])
        session, reward, terminated, truncated, info = self.inner.step(track)
        self._done = terminated or truncated
        expected = np.array([info["expected_reward"]])
        outcomes = self.state.outcomes(expected, np.array([info["optimal_reward"]]))
        outcomes = {key: np.float64(value[0]) for key, value in outcomes.items()}
        feats, best, tracks = self.state.show(np.array([not self._done]))
        info = candidate_info(info, outcomes, best[0], tracks[0])
        obs = {"session": session, "candidates": feats[0]}
        return obs, reward, terminated, truncated, info

    def render(self) -> str | np.ndarray | None:
        """The session so far, as ``MusicRec-v0`` renders it."""
        return self.inner.render()


class CandidateVectorEnv(VectorEnv):
    """``num_envs`` concurrent sessions in candidate mode (``MusicRecVectorEnv``'s arguments).

    Args:
        num_envs: Number of concurrent listeners.
        world: World directory, a loaded ``World``, or ``None`` for the built-in world.
        max_episode_steps, render_mode, autoreset_mode: As ``MusicRecVectorEnv``'s.
        **kwargs: ``candidates=K`` (required) and ``MusicRec-v0``'s other arguments.
    """

    metadata = MusicRecVectorEnv.metadata
    setting = SETTING

    def __init__(
        self,
        num_envs: int = 1,
        world: str | Path | World | None = None,
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
        autoreset_mode: AutoresetMode | str = AutoresetMode.SAME_STEP,
        **kwargs: Any,
    ) -> None:
        k, kwargs = split_kwargs(kwargs)
        self.inner = MusicRecVectorEnv(
            num_envs=num_envs, world=world, max_episode_steps=max_episode_steps,
            render_mode=render_mode, autoreset_mode=autoreset_mode, **kwargs,
        )  # fmt: skip
        self.core = self.inner.core
        self.world = self.inner.world
        self.num_envs = self.inner.num_envs
        self.autoreset_mode = self.inner.autoreset_mode
        self.metadata = self.inner.metadata
        self.render_mode = None
        self.k = check_candidates(k, self.world, self.core.sim.hist.shape[1])
        self.retrieval = Retrieval(self.core.sim, self.world, self.k)
        self.state = CandidateState(self.retrieval, self.num_envs)
        # final_obs's candidates (zeros) and final_info's candidate_tracks (-1): no set is
        # shown after a session's end. Made once and read-only (3 MB of features at K = 50
        # for 1,024 slots, which a new array per step would write again); final_info's
        # values count only where its mask ``_final_info`` is set.
        shape = (self.num_envs, self.k)
        self._no_candidates = np.zeros((*shape, self.retrieval.n_features), np.float32)
        self._no_tracks = np.full(shape, -1, np.int64)
        self._no_candidates.flags.writeable = self._no_tracks.flags.writeable = False
        self.single_observation_space = spaces.Dict(
            {"session": self.core.observation_space, "candidates": self.retrieval.space}
        )
        self.single_action_space = spaces.Discrete(self.k)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = spaces.MultiDiscrete(np.full(self.num_envs, self.k))

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Start sessions (as ``MusicRecVectorEnv.reset``) and show their first candidates."""
        session, info = self.inner.reset(seed=seed, options=options)
        feats, best, tracks = self.state.show()
        n = self.num_envs
        outcomes = {"catalog_optimal_reward": np.zeros(n), "retrieval_loss": np.zeros(n)}
        info = self._with_masks(candidate_info(info, outcomes, best, tracks), info)
        return {"session": session, "candidates": feats}, info

    def step(
        self, actions: Any
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Recommend candidate ``actions[i]`` in slot ``i``; ended sessions restart as asked."""
        choices = check_choices(actions, self.num_envs, self.k)
        tracks = self.state.chosen_tracks(choices)
        tracks[tracks < 0] = 0  # a blank slot (next-step autoreset): its action is ignored
        session, reward, terminated, truncated, info = self.inner.step(tracks)
        outcomes = self.state.outcomes(info["expected_reward"], info["optimal_reward"])
        skipped = info["track"] < 0  # next-step autoreset restarted these: placeholders
        if skipped.any():
            for value in outcomes.values():
                value[skipped] = 0.0
        done = terminated | truncated
        same_step = self.autoreset_mode is AutoresetMode.SAME_STEP
        feats, best, cand_tracks = self.state.show(None if same_step else ~done)
        out = self._with_masks(candidate_info(info, outcomes, best, cand_tracks), info)
        obs = {"session": session, "candidates": feats}
        if same_step and done.any():
            final = info["final_info"]
            out["final_info"] = self._with_masks(
                candidate_info(final, outcomes, np.where(done, -1, best), self._no_tracks), final
            )
            out["final_obs"] = {  # no decision follows a session's end: no candidates
                "session": info["final_obs"],
                "candidates": self._no_candidates,
            }
        return obs, reward, terminated, truncated, out

    def _with_masks(self, info: dict[str, Any], like: dict[str, Any]) -> dict[str, Any]:
        """``info`` with Gymnasium's ``_key`` masks for candidate mode's keys (as ``like``'s)."""
        mask = like.get("_user", np.ones(self.num_envs, bool))
        out = {key: value for key, value in info.items() if not key.startswith("_")}
        for key in list(out):
            if key in ("final_obs", "final_info"):
                continue
            out["_" + key] = like.get("_" + key, mask)
        for key in ("final_obs", "final_info"):
            if "_" + key in like:
                out["_" + key] = like["_" + key]
        return out
