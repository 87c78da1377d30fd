"""Training the fitted world's response model (PyTorch; the only simulator code that imports it).

:func:`train_response` fits the two towers whose NumPy inference is
:class:`~musicrec_gym.sim.fitted_response.TwoTowerResponse`, on the first plays of
tracks in real logs (``musicrec fit``, :mod:`musicrec_gym.fit`); repeats get the table
of :func:`musicrec_gym.fit_models.fit_repeats` instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from musicrec_gym.errors import ConfigError


@dataclass(frozen=True)
class ResponseConfig:
    """Training hyperparameters of the two-tower response model.

    Attributes:
        hidden: Units of each tower's hidden layer (ReLU).
        dim: ``K``, the size of the state and track vectors whose inner product is
            the logit (a simulator step costs ``K`` multiply-adds per catalog track).
        epochs: Passes over the training plays.
        batch_size: Plays per Adam step.
        lr: Adam learning rate.
        weight_decay: Adam L2 penalty.
        seed: Seeds the initialisation and the shuffling.
    """

    hidden: int = 32
    dim: int = 16
    epochs: int = 8
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0

    def __post_init__(self) -> None:
        for name, high in (
            ("hidden", 4096), ("dim", 256), ("epochs", 10_000), ("batch_size", 10**6),
        ):  # fmt: skip
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


def train_response(
    states: np.ndarray,
    track_features: np.ndarray,
    rows: np.ndarray,
    y: np.ndarray,
    config: ResponseConfig,
    progress: bool = True,
) -> tuple[dict[str, np.ndarray], list[float]]:
    """Train the two towers with Adam on binary cross-entropy (PyTorch).

    Deterministic for a seed: one thread, a seeded ``torch.Generator`` for the shuffling,
    and the initialisation inside ``torch.random.fork_rng``.

    Args:
        states: ``(N, F + 1)`` state-tower inputs: the code and position / max_length.
        track_features: ``(n + 1, d + 1)`` track-tower inputs of every row (embedding
            and popularity z; the rare row last).
        rows: ``(N,)`` the track row of each play.
        y: ``(N,)`` 1 listened / 0 skipped.
        config: Hyperparameters.
        progress: Show a progress bar over the epochs.

    Returns:
        The arrays of :data:`~musicrec_gym.sim.fitted_response.RESPONSE_SHAPES` but the
        repeat table (float64; the track tower already applied to every row), and the
        mean loss of each epoch.
    """
    import torch
    from torch import nn
    from tqdm.auto import tqdm

    xs = torch.from_numpy(np.ascontiguousarray(states, dtype=np.float32))
    xt = torch.from_numpy(np.ascontiguousarray(track_features, dtype=np.float32))
    rt = torch.from_numpy(np.ascontiguousarray(rows, dtype=np.int64))
    yt = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))
    n, h, k = xs.shape[0], config.hidden, config.dim
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    losses: list[float] = []
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            gen = torch.Generator().manual_seed(config.seed)
            state_tower = nn.Sequential(nn.Linear(xs.shape[1], h), nn.ReLU(), nn.Linear(h, k + 1))
            track_tower = nn.Sequential(nn.Linear(xt.shape[1], h), nn.ReLU(), nn.Linear(h, k + 1))
            params = list(state_tower.parameters()) + list(track_tower.parameters())
            opt = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
            loss_fn = nn.BCEWithLogitsLoss()

            def logits(idx: torch.Tensor) -> torch.Tensor:
                s, t = state_tower(xs[idx]), track_tower(xt[rt[idx]])
                return (s[:, :k] * t[:, :k]).sum(1) + s[:, k] + t[:, k]

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
                    loss = loss_fn(logits(idx), yt[idx])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    total += loss.item() * len(idx)
                losses.append(total / n)
    finally:
        torch.set_num_threads(threads)

    def linear(layer: nn.Linear) -> tuple[np.ndarray, np.ndarray]:
        """A layer as ``x @ w + b`` in float64."""
        return layer.weight.detach().double().numpy().T.copy(), layer.bias.detach().double().numpy()

    (s_w1, s_b1), (s_w2, s_b2) = linear(state_tower[0]), linear(state_tower[2])
    (t_w1, t_b1), (t_w2, t_b2) = linear(track_tower[0]), linear(track_tower[2])
    tracks = np.maximum(np.asarray(track_features, np.float64) @ t_w1 + t_b1, 0.0) @ t_w2 + t_b2
    weights = {
        "state_w1": s_w1, "state_b1": s_b1.copy(), "state_w2": s_w2, "state_b2": s_b2.copy(),
        "track_vectors": np.ascontiguousarray(tracks[:, :k]),
        "track_bias": np.ascontiguousarray(tracks[:, k]),
    }  # fmt: skip
    return weights, losses
