"""The session encoder's training records: its hyperparameters and what training achieved.

Below both the NumPy inference side (:mod:`musicrec_gym.numpy_encoder`) and the PyTorch
training side (:mod:`musicrec_gym.encoder_train`), so that neither imports the other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from musicrec_gym.checks import is_int, is_real
from musicrec_gym.errors import ConfigError

__all__ = ["EncoderConfig", "EncoderReport"]


@dataclass(frozen=True)
class EncoderConfig:
    """Training hyperparameters of the session autoencoder.

    Attributes:
        epochs: Passes over the training windows.
        batch_size: Windows per Adam step.
        lr: Adam learning rate.
        holdout: Fraction of the windows held out (drawn at random with ``seed``) for
            the reported reconstruction MSE.
        seed: Seeds the weight initialisation, the hold-out split and the shuffling.
        threads: ``torch.set_num_threads`` during training (restored afterwards). Fixed
            so that a seed gives bit-identical weights on any machine with the same
            PyTorch build.

    Raises:
        ConfigError: A field has the wrong type or is out of range.
    """

    epochs: int = 3
    batch_size: int = 1024
    lr: float = 3e-3
    holdout: float = 0.05
    seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        # upper limits far past any useful value: a typo is an error, not a run of days
        limits = (("epochs", 1, 10_000), ("batch_size", 1, 10**6), ("threads", 1, 1024))
        for name, low, high in (*limits, ("seed", 0, 2**63 - 1)):
            value = getattr(self, name)
            if not is_int(value) or value < low:
                raise ConfigError(f"`{name}` must be an int >= {low}, got {value!r}")
            if value > high:
                raise ConfigError(f"`{name}` must be an int <= {high:,}, got {value!r}")
        if not is_real(self.lr) or not math.isfinite(self.lr) or self.lr <= 0:
            raise ConfigError(f"`lr` must be a finite number > 0, got {self.lr!r}")
        if not is_real(self.holdout) or not 0 < self.holdout < 1:
            raise ConfigError(f"`holdout` must be a number in (0, 1), got {self.holdout!r}")


@dataclass(frozen=True)
class EncoderReport:
    """What training the session autoencoder achieved.

    Attributes:
        n_train: Windows trained on.
        n_heldout: Windows held out.
        heldout_mse: Reconstruction MSE on the held-out windows after the last epoch.
        mean_baseline_mse: MSE on the held-out windows of predicting the training mean
            window: the score of an encoder that learned nothing.
        epoch_losses: Mean training MSE of each epoch.
    """

    n_train: int
    n_heldout: int
    heldout_mse: float
    mean_baseline_mse: float
    epoch_losses: tuple[float, ...]
