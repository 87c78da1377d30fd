"""Training the fitted world's response MLP (PyTorch; the only simulator code that imports it).

:func:`train_response` fits the MLP whose NumPy inference is
:class:`~musicrec_gym.sim.response.FittedResponse`, on the plays of real logs
(``musicrec fit``, :mod:`musicrec_gym.fit`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from musicrec_gym.errors import ConfigError


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
        The weights (keys ``RESPONSE_KEYS`` of :mod:`musicrec_gym.sim.response`,
        float64) and the mean loss of each epoch.
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
