"""The simulator fitted to real logs: a learned response model and a learned leave model.

``musicrec fit`` (:mod:`musicrec_gym.fit`) writes a world directory whose manifest says
``kind: fitted``. This module holds everything needed to run it, in NumPy only:

* :class:`FittedResponse`: the listen probability of a candidate track given the session
  state, a small MLP trained in PyTorch (:func:`train_response`, the only function here
  that imports torch) and exported to ``response.npz``. Its input is the encoded session
  state (the environment's observation, before profile features), the candidate's
  position in the session, the candidate's track embedding and its standardised log
  play count in the training logs.
* :class:`FittedLeave`: the leave hazard after each play, a logistic model of the play's
  position plus the number of skips among the last ``skip_window`` plays.
* :class:`FittedSimulator`: the two put together behind the interface of
  :class:`~musicrec_gym.sim.simulator.BatchSimulator`, so ``SessionCore`` and both
  environments run on a fitted world unchanged. A session starts from the first five
  plays (tracks and listen flags) of a logged training session.

Tracks played fewer than ``min_track_count`` times in the training logs are not in the
catalog (the action space). They share one extra *rare-track* row, index ``n_tracks``:
its embedding is the mean catalog embedding and its play count ``expm1`` of the mean
``log1p`` count over the rare plays. Warm-up plays and replayed logs can hold it; agents
cannot choose it (``info["warmup_tracks"]`` shows it as -1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from musicrec_gym.artifacts import load_npz, read_json, verify_manifest
from musicrec_gym.errors import ArtifactError, ConfigError
from musicrec_gym.sim.params import SimulatorParams, is_finite, is_int
from musicrec_gym.sim.response import RewardModel, sigmoid
from musicrec_gym.sim.rng import SlotStreams
from musicrec_gym.sim.simulator import StepResult

if TYPE_CHECKING:  # pragma: no cover
    from musicrec_gym.encoder import NumpyEncoder
    from musicrec_gym.world import World

WINDOW = 5
FITTED_FILES = (
    "catalog.csv",
    "listeners.csv",
    "embeddings.csv",
    "encoder.npz",
    "response.npz",
    "starts.npz",
    "fitted.json",
    "simulator.json",
)
RESPONSE_KEYS = ("w1", "b1", "w2", "b2", "w3", "b3")
_STEP_DRAWS = 4
_RESET_DRAWS = 1
# Slots scored against the whole catalog at once (bounds the (B, n, H) hidden layer).
_SLOTS_PER_SCORE = 32


def with_rare_row(vectors: np.ndarray) -> np.ndarray:
    """Catalog embeddings plus the rare-track row (their mean): ``(n + 1, d)`` float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    return np.vstack([vectors, vectors.mean(axis=0, keepdims=True)]).astype(np.float32)


@dataclass(frozen=True)
class ResponseConfig:
    """Training hyperparameters of the response MLP.

    Attributes:
        hidden: Units of the two hidden layers (ReLU).
        epochs: Passes over the training plays.
        batch_size: Plays per Adam step.
        lr: Adam learning rate.
        weight_decay: Adam L2 penalty.
        seed: Seeds the initialisation and the shuffling.
    """

    hidden: tuple[int, int] = (32, 16)
    epochs: int = 8
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0

    def __post_init__(self) -> None:
        if len(self.hidden) != 2 or any(
            not isinstance(h, int) or isinstance(h, bool) or not 1 <= h <= 4096 for h in self.hidden
        ):
            raise ConfigError(f"`hidden` must be two ints in [1, 4096], got {self.hidden!r}")
        for name, high in (("epochs", 10_000), ("batch_size", 10**6)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"`{name}` must be an int >= 1, got {value!r}")
            if value > high:
                raise ConfigError(f"`{name}` must be an int <= {high:,}, got {value!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"`seed` must be an int >= 0, got {self.seed!r}")
        for name in ("lr", "weight_decay"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"`{name}` must be a finite number >= 0, got {value!r}")
        if self.lr == 0:
            raise ConfigError("`lr` must be > 0, got 0")


# --------------------------------------------------------------------------- response


class FittedResponse:
    """NumPy inference of the response MLP.

    Input per (state, candidate): ``[code (F), position / max_length, embedding (d),
    popularity z]``. The first layer is split into a state part and a track part, so
    scoring the whole catalog costs one ``(B, n, H1)`` add and ReLU, not a matmul per
    track.

    Args:
        weights: ``w1 (H1, F + 1 + d + 1)``, ``b1``, ``w2 (H2, H1)``, ``b2``,
            ``w3 (1, H2)``, ``b3`` in PyTorch's layout.
        track_features: ``(n_tracks + 1, d + 1)``: embedding and popularity z of every
            catalog track, then the rare-track row.
        code_dim: ``F``, the encoder's code size.
        max_length: Positions are divided by this.
        source: Names the weights' origin in errors.

    Raises:
        ArtifactError: The shapes do not fit together.
    """

    def __init__(
        self,
        weights: dict[str, np.ndarray],
        track_features: np.ndarray,
        code_dim: int,
        max_length: int,
        source: str = "response.npz",
    ) -> None:
        w = {k: np.asarray(weights[k], dtype=np.float64) for k in RESPONSE_KEYS}
        n_in = code_dim + 1 + track_features.shape[1]
        if w["w1"].ndim != 2 or w["w1"].shape[1] != n_in:
            raise ArtifactError(
                f"{source}: 'w1' has shape {w['w1'].shape}, expected (H1, {n_in}) for a "
                f"{code_dim}-dim code, the position and {track_features.shape[1]} track features"
            )
        self.code_dim = code_dim
        self.max_length = max_length
        self.w_state = w["w1"][:, : code_dim + 1].T  # (F + 1, H1)
        self.b1 = w["b1"]
        self.track_term = np.asarray(track_features, np.float64) @ w["w1"][:, code_dim + 1 :].T
        self.w2, self.b2 = w["w2"].T, w["b2"]
        self.w3, self.b3 = w["w3"].reshape(-1), float(np.asarray(w["b3"]).reshape(-1)[0])
        self.n_rows = track_features.shape[0]

    def _state(self, codes: np.ndarray, positions: np.ndarray) -> np.ndarray:
        x = np.concatenate([codes, positions[:, None] / self.max_length], axis=1)
        return x @ self.w_state + self.b1

    def logits(self, codes: np.ndarray, positions: np.ndarray, tracks: np.ndarray) -> np.ndarray:
        """Listen logits of one candidate per state: (B, F), (B,), (B,) -> (B,).

        Args:
            codes: Encoded session states.
            positions: 1-based position in the session of the candidate's play.
            tracks: Candidate rows (catalog index, or ``n_tracks`` for a rare track).
        """
        h = np.maximum(self._state(codes, positions) + self.track_term[tracks], 0.0)
        h = np.maximum(h @ self.w2 + self.b2, 0.0)
        return h @ self.w3 + self.b3

    def all_logits(self, codes: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """Listen logits of every catalog track (not the rare row): (B, n_tracks)."""
        state = self._state(codes, positions)
        h = state[:, None, :] + self.track_term[None, :-1, :]
        np.maximum(h, 0.0, out=h)
        h2 = h @ self.w2
        h2 += self.b2
        np.maximum(h2, 0.0, out=h2)
        return h2 @ self.w3 + self.b3


def train_response(
    x: np.ndarray,
    y: np.ndarray,
    config: ResponseConfig,
    progress: bool = True,
) -> tuple[dict[str, np.ndarray], list[float]]:
    """Train the response MLP with Adam on binary cross-entropy (PyTorch).

    Deterministic for a seed: one thread, a seeded ``torch.Generator`` for the shuffling,
    and the initialisation inside ``torch.random.fork_rng``.

    Args:
        x: ``(N, F + 1 + d + 1)`` float inputs (see :class:`FittedResponse`).
        y: ``(N,)`` 1 listened / 0 skipped.
        config: Hyperparameters.
        progress: Show a progress bar over the epochs.

    Returns:
        The weights (keys :data:`RESPONSE_KEYS`, float64) and the mean loss of each epoch.
    """
    import torch
    from torch import nn
    from tqdm.auto import tqdm

    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    yt = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))
    n = xt.shape[0]
    h1, h2 = config.hidden
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    losses: list[float] = []
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            gen = torch.Generator().manual_seed(config.seed)
            model = nn.Sequential(
                nn.Linear(xt.shape[1], h1),
                nn.ReLU(),
                nn.Linear(h1, h2),
                nn.ReLU(),
                nn.Linear(h2, 1),
            )
            opt = torch.optim.Adam(
                model.parameters(), lr=config.lr, weight_decay=config.weight_decay
            )
            loss_fn = nn.BCEWithLogitsLoss()
            for _ in tqdm(
                range(config.epochs),
                desc="response model",
                unit="epoch",
                disable=not progress,
                leave=False,
            ):
                perm = torch.randperm(n, generator=gen)
                total = 0.0
                for start in range(0, n, config.batch_size):
                    idx = perm[start : start + config.batch_size]
                    loss = loss_fn(model(xt[idx]).squeeze(1), yt[idx])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    total += loss.item() * len(idx)
                losses.append(total / n)
    finally:
        torch.set_num_threads(threads)
    layers = [m for m in model if isinstance(m, nn.Linear)]
    weights: dict[str, np.ndarray] = {}
    for k, layer in enumerate(layers, start=1):
        weights[f"w{k}"] = layer.weight.detach().double().numpy().copy()
        weights[f"b{k}"] = layer.bias.detach().double().numpy().copy()
    return weights, losses


# --------------------------------------------------------------------------- leave


class FittedLeave:
    """Leave hazard after the play at position ``p``: ``sigmoid(a_p + per_skip * skips)``.

    ``a_p`` is one logit per position (``-inf``, i.e. hazard 0, where the training logs
    have no session ending there); ``skips`` counts the skipped plays among the last
    ``skip_window``.

    Args:
        position_logit: ``(max_length + 1,)`` indexed by position; non-finite means 0.
        per_skip: Logit added per recent skip (positive: skips drive listeners away).
        skip_window: Plays counted.
    """

    def __init__(self, position_logit: np.ndarray, per_skip: float, skip_window: int) -> None:
        self.position_logit = np.asarray(position_logit, dtype=np.float64)
        self.per_skip = float(per_skip)
        self.skip_window = int(skip_window)

    def hazard(self, positions: np.ndarray, recent_listened: np.ndarray) -> np.ndarray:
        """Leave probability after the play at ``positions`` given the last listen flags.

        Args:
            positions: (B,) 1-based position of the play just made.
            recent_listened: (B, skip_window) listen flags of the last plays.
        """
        skips = self.skip_window - np.asarray(recent_listened, np.float64).sum(axis=1)
        pos = np.minimum(positions, len(self.position_logit) - 1)
        logit = self.position_logit[pos]
        with np.errstate(over="ignore", invalid="ignore"):
            h = sigmoid(logit + self.per_skip * skips)
        return np.where(np.isfinite(logit), h, 0.0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``null`` for a position with hazard 0)."""
        return {
            "position_logit": [float(v) if np.isfinite(v) else None for v in self.position_logit],
            "per_skip": self.per_skip,
            "skip_window": self.skip_window,
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "fitted.json") -> FittedLeave:
        """Read :meth:`to_dict`'s output, checking every value.

        Raises:
            ArtifactError: Naming ``source`` and the key under ``leave`` that is missing
                or out of range.
        """
        if not isinstance(data, dict):
            raise ArtifactError(f"{source}: key 'leave' must be an object, got {data!r}")
        for key in ("position_logit", "per_skip", "skip_window"):
            if key not in data:
                raise ArtifactError(f"{source}: missing key 'leave.{key}'")
        logits = data["position_logit"]
        if (
            not isinstance(logits, list)
            or not logits
            or not all(v is None or is_finite(v) for v in logits)
        ):
            raise ArtifactError(
                f"{source}: key 'leave.position_logit' must be a non-empty list of finite "
                f"numbers or null (hazard 0), got {logits!r}"
            )
        if not is_finite(data["per_skip"]):
            raise ArtifactError(
                f"{source}: key 'leave.per_skip' must be a finite number, got {data['per_skip']!r}"
            )
        window = data["skip_window"]
        if not (is_int(window) and 1 <= window <= WINDOW):
            raise ArtifactError(
                f"{source}: key 'leave.skip_window' must be an int in [1, {WINDOW}], got {window!r}"
            )
        values = [-np.inf if v is None else float(v) for v in logits]
        return cls(np.array(values), float(data["per_skip"]), int(window))


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class FittedModel:
    """What a fitted world adds to ``World``: the learned parts and the starting sessions.

    Attributes:
        response: The response model.
        leave: The leave model.
        start_tracks: ``(m, 5)`` rows of the training sessions' first five plays.
        start_listened: ``(m, 5)`` their listen flags.
        rare_index: Row of the rare-track bucket (= catalog size).
        max_length: Plays per session at most (warm-up included).
        play_share: ``(n_tracks + 1,)`` share of training plays of each row (rare last).
        info: ``fitted.json`` as read.
    """

    response: FittedResponse
    leave: FittedLeave
    start_tracks: np.ndarray
    start_listened: np.ndarray
    rare_index: int
    max_length: int
    play_share: np.ndarray
    info: dict[str, Any]

    @property
    def n_starts(self) -> int:
        """Number of starting sessions (the fitted world's "listeners")."""
        return int(self.start_tracks.shape[0])


def popularity_z(plays: np.ndarray, mean: float, std: float) -> np.ndarray:
    """Standardised ``log1p(plays)``, the response model's popularity input."""
    return (np.log1p(np.asarray(plays, np.float64)) - mean) / std


def load_fitted_world(path: Path) -> World:
    """Load a world directory written by ``musicrec fit`` (called by ``load_world``).

    Raises:
        ArtifactError: A file is missing, corrupted or malformed (names it).
    """
    from musicrec_gym.world import World, load_embeddings_and_encoder, read_table

    manifest = verify_manifest(path, FITTED_FILES)
    catalog = read_table(
        path / "catalog.csv", ("track_id", "plays", "popularity"), numeric=("plays", "popularity")
    )
    listeners = read_table(path / "listeners.csv", ("user_id",))
    info = read_fitted_info(path / "fitted.json")
    params = SimulatorParams.from_dict(
        read_json(path / "simulator.json"), source=str(path / "simulator.json")
    )
    if params.warmup != WINDOW:
        raise ArtifactError(
            f"{path / 'simulator.json'}: key 'warmup' must be {WINDOW} in a fitted world (its "
            f"sessions start from {WINDOW} logged plays), got {params.warmup}"
        )
    n = len(catalog)
    embeddings, encoder = load_embeddings_and_encoder(path, catalog)
    vectors = with_rare_row(embeddings)
    encoder.bind_tracks(vectors)
    plays = np.append(catalog["plays"].to_numpy(np.float64), float(info["rare_plays"]))
    pop = popularity_z(plays, info["popularity_mean"], info["popularity_std"])
    features = np.concatenate([vectors.astype(np.float64), pop[:, None]], axis=1)
    weights = load_npz(path / "response.npz", _response_shapes())
    response = FittedResponse(
        weights, features, encoder.code_dim, int(info["max_length"]), str(path / "response.npz")
    )
    starts = load_npz(path / "starts.npz", {"tracks": (None, WINDOW), "listened": (None, WINDOW)})
    m = len(listeners)
    if starts["tracks"].shape[0] != m:
        raise ArtifactError(
            f"{path / 'starts.npz'}: {starts['tracks'].shape[0]} starting sessions but "
            f"listeners.csv has {m} rows"
        )
    if m == 0 or starts["tracks"].min() < 0 or starts["tracks"].max() > n:
        raise ArtifactError(f"{path / 'starts.npz'}: track rows must be in [0, {n}]")
    if not np.isin(starts["listened"], (0, 1)).all():
        raise ArtifactError(f"{path / 'starts.npz'}: 'listened' must hold 0 or 1 flags")
    share = np.asarray(info.get("play_share_rare", 0.0), np.float64)
    play_share = np.append(catalog["popularity"].to_numpy(np.float64) * (1 - share), share)
    model = FittedModel(
        response=response,
        leave=FittedLeave.from_dict(info["leave"], str(path / "fitted.json")),
        start_tracks=starts["tracks"].astype(np.int64),
        start_listened=starts["listened"].astype(np.int8),
        rare_index=n,
        max_length=int(info["max_length"]),
        play_share=play_share,
        info=info,
    )
    return World(
        directory=path,
        catalog=catalog,
        listeners=listeners,
        truth=None,
        params=params,
        embeddings=embeddings.astype(np.float32),
        encoder=encoder,
        manifest=manifest,
        fitted=model,
    )


FITTED_INFO_RULES: dict[str, tuple[str, Any]] = {
    "max_length": (f"an int >= {WINDOW + 2}", lambda v: is_int(v) and v >= WINDOW + 2),
    "popularity_mean": ("a finite number", is_finite),
    "popularity_std": ("a finite number > 0", lambda v: is_finite(v) and v > 0),
    "rare_plays": ("a finite number >= 0", lambda v: is_finite(v) and v >= 0),
    "leave": ("an object (position_logit, per_skip, skip_window)", lambda v: isinstance(v, dict)),
}
"""``fitted.json``'s required keys: what each must be, and its check."""


def read_fitted_info(path: Path) -> dict[str, Any]:
    """``fitted.json``, checked: an object whose required keys hold allowed values.

    Raises:
        ArtifactError: Naming the file and the key that is missing or out of range.
    """
    info = read_json(path)
    if not isinstance(info, dict):
        raise ArtifactError(f"{path}: expected a JSON object, got {type(info).__name__}")
    for key, (expected, ok) in FITTED_INFO_RULES.items():
        if key not in info:
            raise ArtifactError(f"{path}: missing key {key!r} ({expected})")
        if not ok(info[key]):
            raise ArtifactError(f"{path}: key {key!r} must be {expected}, got {info[key]!r}")
    share = info.get("play_share_rare", 0.0)
    if not (is_finite(share) and 0.0 <= share <= 1.0):
        raise ArtifactError(
            f"{path}: key 'play_share_rare' must be a number in [0, 1], got {share!r}"
        )
    return info


def _response_shapes() -> dict[str, tuple[int | None, ...]]:
    return {
        "w1": (None, None),
        "b1": (None,),
        "w2": (None, None),
        "b2": (None,),
        "w3": (1, None),
        "b3": (1,),
    }


# --------------------------------------------------------------------------- simulator


class FittedSimulator:
    """``n_slots`` concurrent sessions under the fitted models (``BatchSimulator``'s interface).

    A session starts from the first five plays of a logged training session (its
    "listener" is that session). Each recommendation is listened with the response
    model's probability; then the listener leaves with the leave model's hazard, and the
    session is truncated at ``max_length`` plays or ``params.leave.max_steps``
    recommendations, whichever comes first.

    Args:
        model: The fitted model.
        encoder: The session encoder, bound to the catalog plus the rare row.
        params: Simulator parameters (reward scales, warm-up, ``leave.max_steps``).
        n_slots: Number of concurrent sessions.
        reward_mode: ``listen``, ``time`` or ``event``.
        score_catalog: Score the whole catalog after every play (the optimal action and
            reward). Replays that only need the sampled listens turn it off: each step
            then costs one encoder call instead of ``n_tracks`` MLP evaluations per slot.
    """

    def __init__(
        self,
        model: FittedModel,
        encoder: NumpyEncoder,
        params: SimulatorParams,
        n_slots: int,
        reward_mode: str = "listen",
        score_catalog: bool = True,
    ) -> None:
        if params.warmup != WINDOW:
            raise ConfigError(f"a fitted world needs warmup = {WINDOW}, got {params.warmup}")
        self.params = params
        self.model = model
        self.encoder = encoder
        self.response = model.response
        self.leave = model.leave
        self.reward = RewardModel(reward_mode, params.reward)
        self.n_users = model.n_starts
        self.n_tracks = model.rare_index
        self.n_slots = n_slots
        self.max_steps = min(params.leave.max_steps, model.max_length - WINDOW)
        self.streams = SlotStreams(n_slots)
        b, h = n_slots, WINDOW + self.max_steps
        self.user = np.zeros(b, dtype=np.int64)
        self.hist = np.full((b, h), -1, dtype=np.int64)
        self.hist_listened = np.zeros((b, h), dtype=np.int8)
        self.hist_len = np.zeros(b, dtype=np.int64)
        self.win_tracks = np.zeros((b, WINDOW), dtype=np.int64)
        self.win_listened = np.zeros((b, WINDOW), dtype=np.float64)
        self.steps = np.zeros(b, dtype=np.int64)
        self.code = np.zeros((b, encoder.code_dim), dtype=np.float32)
        self.opt_logit = np.zeros(b, dtype=np.float64)
        self.opt_action = np.zeros(b, dtype=np.int64)
        self.score_catalog = score_catalog
        self.logits = np.zeros((b, self.n_tracks if score_catalog else 0), dtype=np.float64)

    def seed(self, slots: np.ndarray, seeds: np.ndarray) -> None:
        """Restart the random streams of ``slots`` from ``seeds``."""
        self.streams.seed(slots, seeds)

    def reset(self, slots: np.ndarray, users: np.ndarray | None = None) -> None:
        """Start new sessions in ``slots`` from logged training sessions' first five plays.

        Args:
            slots: Slot indices to reset.
            users: Optional starting-session index per slot (the random draw is still
                consumed).
        """
        slots = np.asarray(slots, dtype=np.int64)
        u = self.streams.uniform(slots, _RESET_DRAWS)
        drawn = np.minimum((u[:, 0] * self.n_users).astype(np.int64), self.n_users - 1)
        user = drawn if users is None else np.asarray(users, dtype=np.int64)
        self.user[slots] = user
        self.start(slots, self.model.start_tracks[user], self.model.start_listened[user])

    def start(self, slots: np.ndarray, tracks: np.ndarray, listened: np.ndarray) -> None:
        """Start sessions in ``slots`` from given warm-up plays (``(B, 5)`` rows and flags).

        Used by :meth:`reset` and by the realism replay of held-out sessions.
        """
        slots = np.asarray(slots, dtype=np.int64)
        self.hist[slots] = -1
        self.hist_listened[slots] = 0
        self.hist[slots, :WINDOW] = tracks
        self.hist_listened[slots, :WINDOW] = listened
        self.hist_len[slots] = WINDOW
        self.win_tracks[slots] = tracks
        self.win_listened[slots] = listened
        self.steps[slots] = 0
        self._update_optimal(slots)

    def step(self, actions: np.ndarray) -> StepResult:
        """Recommend ``actions[i]`` (a catalog row, or the rare row in replays) in slot ``i``."""
        actions = np.asarray(actions, dtype=np.int64)
        u = self.streams.uniform(slice(None), _STEP_DRAWS)
        optimal = self.reward.expected(sigmoid(self.opt_logit))
        p = self.listen_probability(actions)
        listened = u[:, 0] < p
        reward = self.reward.draw(listened, u[:, 2], u[:, 3])
        rows = np.arange(self.n_slots)
        self.hist[rows, self.hist_len] = actions
        self.hist_listened[rows, self.hist_len] = listened
        self.hist_len += 1
        self.steps += 1
        self.win_tracks = np.concatenate([self.win_tracks[:, 1:], actions[:, None]], axis=1)
        self.win_listened = np.concatenate(
            [self.win_listened[:, 1:], listened[:, None].astype(np.float64)], axis=1
        )
        k = self.leave.skip_window
        at_cap = self.steps >= self.max_steps
        hazard = self.leave.hazard(self.hist_len, self.win_listened[:, WINDOW - k :])
        terminated = ~at_cap & (u[:, 1] < hazard)
        truncated = at_cap
        self._update_optimal(slice(None))
        return StepResult(
            reward=reward,
            listened=listened,
            expected_reward=self.reward.expected(p),
            optimal_reward=optimal,
            terminated=terminated,
            truncated=truncated,
        )

    def listen_probability(self, actions: np.ndarray) -> np.ndarray:
        """Listen probability of ``actions`` (one per slot) in the current state; no draw.

        Catalog tracks read the logits cached for the optimum (so the chosen track's
        expected reward never exceeds the optimal one by a rounding error); the rare row
        is scored on its own.
        """
        if not self.score_catalog:
            codes = self.code.astype(np.float64)
            return sigmoid(self.response.logits(codes, self.hist_len + 1, actions))
        catalog = np.minimum(actions, self.n_tracks - 1)
        logits = self.logits[np.arange(self.n_slots), catalog]
        rare = actions >= self.n_tracks
        if rare.any():
            codes = self.code[rare].astype(np.float64)
            logits[rare] = self.response.logits(codes, self.hist_len[rare] + 1, actions[rare])
        return sigmoid(logits)

    def logging_actions(self, slots: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Catalog tracks drawn by their share of training plays (a popularity logger)."""
        u = self.streams.uniform(slots, 1)[:, 0]
        share = self.model.play_share[:-1]
        cdf = np.cumsum(share) / share.sum()
        return np.minimum(np.searchsorted(cdf, u, side="right"), self.n_tracks - 1)

    def expected_rewards(self, slots: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Expected reward of every catalog track in the current state: (B, n_tracks)."""
        logits = self.response.all_logits(
            self.code[slots].astype(np.float64), self.hist_len[slots] + 1
        )
        return self.reward.expected(sigmoid(logits))

    def _update_optimal(self, slots: np.ndarray | slice) -> None:
        ids = np.arange(self.n_slots)[slots]
        self.code[ids] = self.encoder.encode_ids(self.win_tracks[ids], self.win_listened[ids])
        if not self.score_catalog:
            return
        for start in range(0, len(ids), _SLOTS_PER_SCORE):
            chunk = ids[start : start + _SLOTS_PER_SCORE]
            logits = self.response.all_logits(
                self.code[chunk].astype(np.float64), self.hist_len[chunk] + 1
            )
            self.logits[chunk] = logits
            best = logits.argmax(axis=1)
            self.opt_action[chunk] = best
            self.opt_logit[chunk] = logits[np.arange(len(best)), best]
