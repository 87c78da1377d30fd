"""Sequence regressors of session length (PyTorch): GRU, LSTM and a two-layer LSTM.

A user's summary rows, in time order, form a sequence; the input at a row is what was
known before that session started (previous length, average of the previous lengths,
how many sessions came before, the profile) and the output is the session's length. The
recurrent state carries the user's recent history beyond those summaries. Long sequences
are cut into chunks of ``chunk`` sessions (state reset at each chunk; the running average
still carries the whole past) so that a user with thousands of sessions trains quickly.

Training minimises the L1 loss (the MAE we report) on the training rows only, with
early stopping on the validation rows' MAE; test rows are never looked at while training.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from musicrec_gym.errors import ConfigError

METHODS = ("gru", "lstm", "lstm2")
FEATURES = (
    "prev_length_min", "avg_prev_length_min", "log_sessions_before",
    "age", "gender_m", "gender_f", "registered_years",
)  # fmt: skip


#: Upper bounds of the integer ``TrainConfig`` fields (past them a model does not fit in
#: memory or a run does not end), and of the learning rate.
TRAIN_LIMITS = {
    "hidden": 4096,
    "epochs": 10_000,
    "batch_size": 1_000_000,
    "patience": 10_000,
    "chunk": 100_000,
}
MAX_LR = 1.0


@dataclass(frozen=True)
class TrainConfig:
    """Training hyperparameters of one sequence model.

    Every field is checked on construction: ints (never booleans) in ``[1, TRAIN_LIMITS]``
    and a finite learning rate in ``(0, MAX_LR]``; anything else is a ``ConfigError``
    naming the field.

    Attributes:
        hidden: Recurrent state size.
        epochs: Maximum epochs.
        batch_size: Chunks per optimiser step.
        lr: Adam learning rate.
        patience: Epochs without validation improvement before stopping.
        chunk: Sessions per training sequence.
    """

    hidden: int = 32
    epochs: int = 40
    batch_size: int = 32
    lr: float = 0.005
    patience: int = 8
    chunk: int = 64

    def __post_init__(self) -> None:
        for name, high in TRAIN_LIMITS.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"`{name}` must be an int > 0, got {value!r}")
            if value > high:
                raise ConfigError(f"`{name}` must be an int <= {high:,}, got {value!r}")
        lr = self.lr  # NaN and infinity fail the (finite) range
        if not (isinstance(lr, int | float) and not isinstance(lr, bool) and 0 < lr <= MAX_LR):
            raise ConfigError(f"`lr` must be a finite number in (0, {MAX_LR:g}], got {lr!r}")


def feature_frame(rows: pd.DataFrame, age_fill: float) -> pd.DataFrame:
    """Model inputs of summary rows, in natural units (minutes, years), no NaN.

    Args:
        rows: Summary rows (``summary.SUMMARY_COLUMNS``).
        age_fill: Age used where the profile has none (the training users' median).
    """
    registered = pd.to_datetime(rows["registered"], errors="coerce", format="mixed", utc=True)
    reg_years = (registered.dt.year + registered.dt.day_of_year / 365.25 - 2000.0).fillna(5.0)
    age = pd.to_numeric(rows["age"], errors="coerce").fillna(age_fill)
    gender = rows["gender"].astype(str).str.lower()
    return pd.DataFrame(
        {
            "prev_length_min": rows["prev_length"].fillna(0.0) / 60.0,
            "avg_prev_length_min": rows["avg_prev_length"].fillna(0.0) / 60.0,
            "log_sessions_before": np.log1p(rows["session_index"].astype(np.float64)),
            "age": age.astype(np.float64),
            "gender_m": (gender == "m").astype(np.float64),
            "gender_f": (gender == "f").astype(np.float64),
            "registered_years": reg_years.astype(np.float64),
        },
        index=rows.index,
    )[list(FEATURES)]


@dataclass
class Scaler:
    """Affine maps of inputs and target (identity when standardisation is off)."""

    x_mean: np.ndarray
    x_std: np.ndarray
    y_mean: float
    y_std: float

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, standardise: bool) -> Scaler:
        """Z-scores from training rows when ``standardise``, else the identity."""
        if not standardise:
            return cls(np.zeros(x.shape[1]), np.ones(x.shape[1]), 0.0, 1.0)
        std = x.std(axis=0)
        y_std = float(y.std())
        return cls(
            x.mean(axis=0),
            np.where(std > 1e-9, std, 1.0),
            float(y.mean()),
            y_std if y_std > 1e-9 else 1.0,
        )


def _net(method: str, n_in: int, hidden: int, dropout: float):
    import torch
    from torch import nn

    class SessionLengthNet(nn.Module):
        """RNN over a user's sessions, a linear head per step."""

        def __init__(self) -> None:
            super().__init__()
            layers = 2 if method == "lstm2" else 1
            rnn = nn.GRU if method == "gru" else nn.LSTM
            self.rnn = rnn(
                n_in,
                hidden,
                num_layers=layers,
                batch_first=True,
                dropout=dropout if layers > 1 else 0.0,
            )
            self.drop = nn.Dropout(dropout)
            self.head = nn.Linear(hidden, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out, _ = self.rnn(x)
            return self.head(self.drop(out)).squeeze(-1)

    return SessionLengthNet()


@dataclass
class SequenceModel:
    """A trained regressor of one group of users (a cluster, or everyone).

    Attributes:
        method: ``gru``, ``lstm`` or ``lstm2``.
        net: The PyTorch module.
        scaler: Input and target scaling.
        chunk: Sessions per sequence.
        epochs_run: Epochs trained (early stopping included).
        best_val_mae_min: Validation MAE (minutes) of the kept weights; NaN without val.
        diverged: True when training met a non-finite loss or weights (a learning rate
            too large); such a model is never the best of a grid.
    """

    method: str
    net: object
    scaler: Scaler
    chunk: int
    epochs_run: int
    best_val_mae_min: float
    diverged: bool = False

    def predict(self, rows: pd.DataFrame, features: pd.DataFrame) -> np.ndarray:
        """Predicted length in seconds of every row (rows of whole users, any split)."""
        import torch

        x, _, _, index = _sequences(rows, features, None, self.chunk)
        x = (x - self.scaler.x_mean) / self.scaler.x_std
        self.net.eval()
        with torch.no_grad():
            out = self.net(torch.as_tensor(x, dtype=torch.float32)).numpy()
        minutes = out * self.scaler.y_std + self.scaler.y_mean
        pred = np.full(len(rows), np.nan)
        valid = index >= 0
        pred[index[valid]] = minutes[valid]
        return np.maximum(pred, 0.0) * 60.0


def _sequences(rows: pd.DataFrame, features: pd.DataFrame, split, chunk: int):
    """Chunks of consecutive target rows per user: (x, y, split code, row position)."""
    targets = rows["split"].to_numpy() != "first"
    pos = np.flatnonzero(targets)
    users = rows["user_id"].to_numpy()[pos]
    x_all = features.to_numpy(dtype=np.float64)[pos]
    y_all = rows["length"].to_numpy(dtype=np.float64)[pos] / 60.0
    code_map = {"train": 0, "val": 1, "test": 2, "next": 3}
    codes = np.array([code_map[s] for s in rows["split"].to_numpy()[pos]], dtype=np.int64)
    starts = []
    bounds = np.r_[0, np.flatnonzero(users[1:] != users[:-1]) + 1, len(pos)]
    for a, b in itertools.pairwise(bounds):
        starts.extend((s, min(s + chunk, b)) for s in range(a, b, chunk))
    n_f = features.shape[1]
    x = np.zeros((len(starts), chunk, n_f))
    y = np.zeros((len(starts), chunk))
    c = np.full((len(starts), chunk), -1, dtype=np.int64)
    index = np.full((len(starts), chunk), -1, dtype=np.int64)
    for i, (s, e) in enumerate(starts):
        n = e - s
        x[i, :n], y[i, :n], c[i, :n], index[i, :n] = x_all[s:e], y_all[s:e], codes[s:e], pos[s:e]
    return x, y, c, index


def train_model(
    rows: pd.DataFrame,
    features: pd.DataFrame,
    method: str,
    dropout: float,
    standardise: bool,
    config: TrainConfig,
    seed: int,
) -> SequenceModel:
    """Train one sequence model on the training rows of ``rows``.

    Args:
        rows: Summary rows of whole users (``split`` says which rows train).
        features: ``feature_frame(rows)``.
        method: ``gru``, ``lstm`` or ``lstm2``.
        dropout: Dropout on the recurrent output (and between the two LSTM layers).
        standardise: Z-score inputs and target with the training rows' statistics.
        config: Hyperparameters.
        seed: Seeds the weights and the batch order.

    Returns:
        The model with the weights of its best validation epoch (the last epoch when
        there are no validation rows). Training stops at the first non-finite training
        loss or validation MAE; the model is then marked ``diverged`` (and keeps the
        weights of its best finite validation epoch, if any).
    """
    import torch

    if method not in METHODS:
        from musicrec_gym.errors import unknown_name_message

        raise ConfigError(unknown_name_message("method", method, METHODS))
    if not (
        isinstance(dropout, int | float) and not isinstance(dropout, bool) and 0.0 <= dropout < 1.0
    ):
        raise ConfigError(f"`dropout` must be a number in [0, 1), got {dropout!r}")
    if not isinstance(config, TrainConfig):
        raise ConfigError(f"`config` must be a TrainConfig, got {type(config).__name__}")
    x, y, codes, _ = _sequences(rows, features, None, config.chunk)
    train = codes == 0
    if not train.any():
        raise ConfigError("no training sessions: every user needs at least two sessions")
    scaler = Scaler.fit(x[train], y[train], standardise)
    xs = torch.as_tensor((x - scaler.x_mean) / scaler.x_std, dtype=torch.float32)
    ys = torch.as_tensor((y - scaler.y_mean) / scaler.y_std, dtype=torch.float32)
    train_t = torch.as_tensor(train)
    val_t = torch.as_tensor(codes == 1)

    torch.manual_seed(seed)
    net = _net(method, x.shape[2], config.hidden, dropout)
    with torch.no_grad():  # start from the median: L1 regression converges to medians
        net.head.bias.fill_(float(np.median(ys[train_t].numpy())))
    opt = torch.optim.Adam(net.parameters(), lr=config.lr)
    gen = torch.Generator().manual_seed(seed)
    has_train_chunk = np.flatnonzero(train.any(axis=1))
    best, best_state, since, epochs = np.inf, None, 0, 0
    diverged = False
    for _ in range(config.epochs):
        epochs += 1
        net.train()
        order = has_train_chunk[torch.randperm(len(has_train_chunk), generator=gen).numpy()]
        for start in range(0, len(order), config.batch_size):
            b = torch.as_tensor(order[start : start + config.batch_size])
            out = net(xs[b])
            mask = train_t[b]
            loss = (out[mask] - ys[b][mask]).abs().mean()
            if not torch.isfinite(loss):
                diverged = True
                break
            opt.zero_grad()
            loss.backward()
            opt.step()
        if not diverged:
            diverged = not all(bool(torch.isfinite(w).all()) for w in net.parameters())
        if diverged:
            break
        if not val_t.any():
            continue
        net.eval()
        with torch.no_grad():
            out = net(xs)
        val_mae = float((out[val_t] - ys[val_t]).abs().mean()) * scaler.y_std
        if not np.isfinite(val_mae):
            diverged = True
            break
        if val_mae < best - 1e-6:
            best, best_state, since = val_mae, copy.deepcopy(net.state_dict()), 0
        else:
            since += 1
            if since >= config.patience:
                break
    if best_state is not None:
        net.load_state_dict(best_state)
    return SequenceModel(
        method=method,
        net=net,
        scaler=scaler,
        chunk=config.chunk,
        epochs_run=epochs,
        best_val_mae_min=float(best) if np.isfinite(best) else float("nan"),
        diverged=diverged,
    )
