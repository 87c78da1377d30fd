"""The two-tower term of the Q-model: ``f(s)ᵀ g(a)``, nonlinear, with an exact target mean.

``f`` (the state tower, on the Q-model's standardised state features ``φ_Q(s)``) and
``g`` (the track tower, on the track features ``ψ(a)``) are small MLPs (``HIDDEN`` units,
``EMBED`` outputs); ``g(a) = [1, MLP(ψ(a))]``, so ``f``'s first output is a state value.
The term is linear in ``g(a)``, so its mean under any target distribution is
``f(s)ᵀ Σ_a π(a|s) g(a)``, computed exactly over the whole catalog (``mean_of``): the
exactness and cost of ``V̂(s)`` in the linear model carry over, while ``f`` and ``g`` may
be any functions of the state and of the track.

``experiments.ope_models`` adds this term to the linear Q-model (``q_model: two_tower``)
and backfits the two: the linear part on what the towers leave, the towers on what the
linear part leaves, ``FIRST_EPOCHS`` epochs of Adam for the first fit and
``REFIT_EPOCHS`` (warm-started) for each fitted-Q iteration. The towers' last layer starts
at 0, so the model starts as the linear one. Fitting is seeded and single-threaded, so a
seed gives the same model on one machine.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from experiments.ope import TargetDistribution

#: Hidden units of each tower.
HIDDEN = 64
#: Output size of the track tower's MLP (``g`` has one more: the constant).
EMBED = 16
#: Adam's step size.
LEARNING_RATE = 3e-3
#: Adam's weight decay (an L2 penalty on the towers' weights).
WEIGHT_DECAY = 1e-4
#: Rows per gradient step.
BATCH = 1024
#: Epochs of the first fit (on the immediate reward).
FIRST_EPOCHS = 20
#: Epochs of each refit (a fitted-Q iteration, warm-started).
REFIT_EPOCHS = 2


class TwoTower:
    """``f(s)ᵀ g(a)`` fitted by minibatch Adam on squared error (see the module docstring).

    Args:
        state: (n, d) the training rows' state features (sets the standardisation).
        psi_table: (n_tracks, k) every track's features ``ψ(a)``.
        seed: Seed of the initial weights and of the minibatch order.
    """

    def __init__(self, state: np.ndarray, psi_table: np.ndarray, seed: int) -> None:
        state = np.asarray(state, dtype=np.float64)
        sd = state.std(axis=0)
        self.mean, self.sd = state.mean(axis=0), np.where(sd > 1e-9, sd, 1.0)
        self.psi = torch.as_tensor(np.asarray(psi_table), dtype=torch.float32)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.f = nn.Sequential(
                nn.Linear(state.shape[1], HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, EMBED + 1)
            )
            self.g = nn.Sequential(
                nn.Linear(self.psi.shape[1], HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, EMBED)
            )
        nn.init.zeros_(self.f[-1].weight)
        nn.init.zeros_(self.f[-1].bias)
        params = [*self.f.parameters(), *self.g.parameters()]
        self.opt = torch.optim.Adam(params, lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
        self.gen = torch.Generator().manual_seed(seed)
        self.fits = 0

    def _state(self, state: np.ndarray) -> torch.Tensor:
        x = (np.asarray(state, dtype=np.float64) - self.mean) / self.sd
        return torch.as_tensor(x, dtype=torch.float32)

    def _g(self, psi: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.ones(len(psi), 1), self.g(psi)], dim=1)

    def fit(self, state: np.ndarray, action: np.ndarray, y: np.ndarray) -> None:
        """Fit ``f(s_i)ᵀ g(a_i)`` to ``y`` (``FIRST_EPOCHS`` at first, then ``REFIT_EPOCHS``)."""
        x, a = self._state(state), torch.as_tensor(np.asarray(action, dtype=np.int64))
        target = torch.as_tensor(np.asarray(y), dtype=torch.float32)
        epochs = FIRST_EPOCHS if self.fits == 0 else REFIT_EPOCHS
        self.fits += 1
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            for _ in range(epochs):
                order = torch.randperm(len(x), generator=self.gen)
                for start in range(0, len(x), BATCH):
                    b = order[start : start + BATCH]
                    pred = (self.f(x[b]) * self._g(self.psi[a[b]])).sum(dim=1)
                    loss = torch.mean((pred - target[b]) ** 2)
                    self.opt.zero_grad()
                    loss.backward()
                    self.opt.step()
        finally:
            torch.set_num_threads(threads)

    @torch.no_grad()
    def towers(self, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``f(s)`` per row, (n, EMBED + 1), and ``g(a)`` per track, (n_tracks, EMBED + 1)."""
        f = self.f(self._state(state)).double().numpy()
        return f, self._g(self.psi).double().numpy()

    def predict(self, state: np.ndarray, action: np.ndarray) -> np.ndarray:
        """``f(s_i)ᵀ g(a_i)``: (n,)."""
        f, g = self.towers(state)
        return (f * g[np.asarray(action, dtype=np.int64)]).sum(axis=1)

    def target(self, state: np.ndarray, dist: TargetDistribution) -> np.ndarray:
        """``Σ_a π(a|s_i) f(s_i)ᵀ g(a) = f(s_i)ᵀ E_π[g]``, exact: (n,)."""
        f, g = self.towers(state)
        return (f * dist.mean_of(g)).sum(axis=1)

    def table(self, state: np.ndarray) -> np.ndarray:
        """``f(s_i)ᵀ g(a)`` for every row and track, (n, n_tracks): the slow way, for checks."""
        f, g = self.towers(state)
        return f @ g.T
