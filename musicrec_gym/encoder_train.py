"""Session encoder, training side (PyTorch): the LSTM autoencoder of docs/design.md §3.

Encoder: ``LSTM(F -> 2F)`` then ``LSTM(2F -> F)``; the code is the second LSTM's last
hidden state ``h_T`` (``F = d + 1``, 9 by default). Decoder: the code repeated ``T``
times, ``LSTM(F -> F)``, ``LSTM(F -> 2F)`` and a per-step ``Linear(2F -> F)``. Trained
with MSE against the input window; the reconstruction MSE on held-out windows is
reported against a mean-window baseline.

Artifacts: :func:`save_state_dict` writes the whole model (a torch state dict);
:func:`export_numpy` writes the encoder half for
:class:`musicrec_gym.numpy_encoder.NumpyEncoder`, which the environment uses without torch.
Both write the same bytes for the same weights, whatever the file is called.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from musicrec_gym.artifacts import npz_bytes, write_bytes_atomic
from musicrec_gym.encoder_records import EncoderConfig, EncoderReport
from musicrec_gym.errors import ArtifactError, ConfigError, DataFormatError
from musicrec_gym.numpy_encoder import NumpyEncoder

__all__ = [
    "SessionAutoencoder",
    "export_numpy",
    "load_state_dict",
    "save_state_dict",
    "train_autoencoder",
]

_EVAL_BATCH = 16384
_DEFAULT_CONFIG = EncoderConfig()  # frozen, so safe to share as a default


class SessionAutoencoder(nn.Module):
    """LSTM autoencoder of session windows (``batch_first``: ``(B, T, F)``).

    Submodules: ``enc1`` (LSTM F -> 2F), ``enc2`` (LSTM 2F -> F), ``dec1`` (LSTM
    F -> F), ``dec2`` (LSTM F -> 2F), ``out`` (Linear 2F -> F).

    Args:
        feature_dim: Features per play, ``F = d + 1``.

    Raises:
        ConfigError: ``feature_dim`` is not an int >= 1.
    """

    def __init__(self, feature_dim: int = 9) -> None:
        super().__init__()
        if isinstance(feature_dim, bool) or not isinstance(feature_dim, int) or feature_dim < 1:
            raise ConfigError(f"`feature_dim` must be an int >= 1, got {feature_dim!r}")
        f = feature_dim
        self.feature_dim = f
        self.enc1 = nn.LSTM(f, 2 * f, batch_first=True)
        self.enc2 = nn.LSTM(2 * f, f, batch_first=True)
        self.dec1 = nn.LSTM(f, f, batch_first=True)
        self.dec2 = nn.LSTM(f, 2 * f, batch_first=True)
        self.out = nn.Linear(2 * f, f)

    def _check(self, x: Tensor) -> None:
        if x.dim() not in (2, 3) or x.shape[-1] != self.feature_dim or x.shape[-2] < 1:
            raise DataFormatError(
                f"expected windows of shape (B, T, {self.feature_dim}) or "
                f"(T, {self.feature_dim}), got {tuple(x.shape)}"
            )

    def encode(self, x: Tensor) -> Tensor:
        """The code of each window: ``(B, T, F) -> (B, F)`` (or ``(T, F) -> (F,)``)."""
        self._check(x)
        single = x.dim() == 2
        if single:
            x = x.unsqueeze(0)
        hidden, _ = self.enc1(x)
        _, (h_n, _) = self.enc2(hidden)
        code = h_n[-1]
        return code[0] if single else code

    def forward(self, x: Tensor) -> Tensor:
        """Reconstruction of each window, same shape as ``x``."""
        self._check(x)
        single = x.dim() == 2
        if single:
            x = x.unsqueeze(0)
        code = self.encode(x)
        repeated = code.unsqueeze(1).expand(-1, x.shape[1], -1)
        y, _ = self.dec1(repeated)
        y, _ = self.dec2(y)
        y = self.out(y)
        return y[0] if single else y


def _checked_windows(windows: np.ndarray) -> np.ndarray:
    x = np.asarray(windows)
    if x.ndim != 3 or min(x.shape) == 0 or x.dtype.kind not in "iuf":
        raise DataFormatError(
            f"`windows` must be a numeric (N, T, F) array with N, T, F >= 1, got {x.dtype} "
            f"with shape {x.shape}"
        )
    if x.shape[0] < 2:
        raise DataFormatError(
            f"`windows` must hold at least 2 windows (train and held out), got {x.shape[0]}"
        )
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise DataFormatError("`windows` holds NaN or infinite values")
    return x


@torch.no_grad()
def _mse(model: SessionAutoencoder, x: Tensor) -> float:
    total = 0.0
    for start in range(0, x.shape[0], _EVAL_BATCH):
        xb = x[start : start + _EVAL_BATCH]
        total += float(torch.sum((model(xb) - xb).double() ** 2))
    return total / x.numel()


def _config_markdown(config: EncoderConfig, n_train: int, n_heldout: int) -> str:
    rows = [*vars(config).items(), ("n_train", n_train), ("n_heldout", n_heldout)]
    return "|param|value|\n|-|-|\n" + "\n".join(f"|{k}|{v}|" for k, v in rows)


def train_autoencoder(
    windows: np.ndarray,
    config: EncoderConfig = _DEFAULT_CONFIG,
    log_dir: str | Path | None = None,
    progress: bool = True,
) -> tuple[SessionAutoencoder, EncoderReport]:
    """Train the session autoencoder with Adam on MSE reconstruction.

    Deterministic: the weights depend only on ``windows`` and ``config`` (same
    PyTorch build and CPU). The seed drives the initialisation (inside
    ``torch.random.fork_rng``, so the caller's global RNG is left alone), the hold-out
    split and the shuffling (a ``torch.Generator``); ``torch.set_num_threads`` is set
    to ``config.threads`` and restored afterwards.

    Args:
        windows: ``(N, T, F)`` windows, e.g. from :func:`musicrec_gym.encoder.make_windows`.
        config: Hyperparameters.
        log_dir: If given, TensorBoard scalars are written there: ``encoder/train_mse``
            per step, ``encoder/heldout_mse`` and ``encoder/mean_baseline_mse`` per
            epoch, and the config as text.
        progress: Show a tqdm progress bar over the batches.

    Returns:
        The trained model (in eval mode) and its report.

    Raises:
        DataFormatError: ``windows`` is not a finite ``(N, T, F)`` array with N >= 2.
        ConfigError: ``config`` is not an :class:`~musicrec_gym.encoder_records.EncoderConfig`.
    """
    if not isinstance(config, EncoderConfig):
        raise ConfigError(f"`config` must be an EncoderConfig, got {type(config).__name__}")
    x_np = _checked_windows(windows)
    n, _, f = x_np.shape
    n_heldout = min(n - 1, max(1, round(config.holdout * n)))
    n_train = n - n_heldout
    x_all = torch.from_numpy(x_np)

    writer = None
    if log_dir is not None:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir=str(log_dir))
        writer.add_text("encoder/config", _config_markdown(config, n_train, n_heldout))
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            generator = torch.Generator().manual_seed(config.seed)
            order = torch.randperm(n, generator=generator)
            held_idx, train_idx = order[:n_heldout], order[n_heldout:]
            x_held = x_all[held_idx]
            total = x_all.sum(0, dtype=torch.float64) - x_held.sum(0, dtype=torch.float64)
            mean_window = total / n_train
            baseline = float(torch.mean((x_held.double() - mean_window) ** 2))

            model = SessionAutoencoder(f)
            optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
            steps_per_epoch = -(-n_train // config.batch_size)
            epoch_losses: list[float] = []
            heldout = float("nan")
            step = 0
            for epoch in range(config.epochs):
                model.train()
                perm = train_idx[torch.randperm(n_train, generator=generator)]
                running = 0.0
                with tqdm(
                    total=steps_per_epoch,
                    desc=f"encoder epoch {epoch + 1}/{config.epochs}",
                    unit="batch",
                    disable=not progress,
                    leave=False,
                ) as bar:
                    for start in range(0, n_train, config.batch_size):
                        xb = x_all[perm[start : start + config.batch_size]]
                        loss = nn.functional.mse_loss(model(xb), xb)
                        optimizer.zero_grad(set_to_none=True)
                        loss.backward()
                        optimizer.step()
                        value = loss.item()
                        running += value * xb.shape[0]
                        step += 1
                        if writer is not None:
                            writer.add_scalar("encoder/train_mse", value, step)
                        bar.update()
                        if step % 50 == 0:
                            bar.set_postfix(mse=f"{value:.4f}")
                epoch_losses.append(running / n_train)
                model.eval()
                heldout = _mse(model, x_held)
                if writer is not None:
                    writer.add_scalar("encoder/heldout_mse", heldout, step)
                    writer.add_scalar("encoder/mean_baseline_mse", baseline, step)
    finally:
        torch.set_num_threads(threads)
        if writer is not None:
            writer.close()
    model.eval()
    report = EncoderReport(
        n_train=n_train,
        n_heldout=n_heldout,
        heldout_mse=heldout,
        mean_baseline_mse=baseline,
        epoch_losses=tuple(epoch_losses),
    )
    return model, report


# --------------------------------------------------------------------------- artifacts


def save_state_dict(model: SessionAutoencoder, path: str | Path) -> None:
    """Save ``model.state_dict()`` with ``torch.save``, byte-for-byte reproducibly.

    ``torch.save`` to a path names the archive's records after the file, so the same
    weights saved as ``a.pt`` and ``b.pt`` differ; saving through an ``io.BytesIO``
    gives the same bytes for the same weights under any file name.

    Args:
        model: The model.
        path: The file to write (parent directories are created).
    """
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    write_bytes_atomic(path, buffer.getvalue())


def load_state_dict(path: str | Path, feature_dim: int = 9) -> SessionAutoencoder:
    """Load a model saved by :func:`save_state_dict` (``weights_only=True``).

    Args:
        path: The state-dict file.
        feature_dim: The model's ``F``; must match the file.

    Returns:
        The model, in eval mode.

    Raises:
        ArtifactError: The file is missing or unreadable, or its keys or shapes are not
            those of a ``SessionAutoencoder(feature_dim)`` (names the path and the key).
    """
    path = Path(path)
    expected = f"expected a SessionAutoencoder(feature_dim={feature_dim}) state dict"
    if not path.is_file():
        raise ArtifactError(f"{path}: no such file; {expected} written by save_state_dict")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ArtifactError(f"{path}: not a readable torch file ({exc}); {expected}") from exc
    if not isinstance(state, Mapping):
        raise ArtifactError(f"{path}: holds a {type(state).__name__}; {expected}")
    model = SessionAutoencoder(feature_dim)
    reference = model.state_dict()
    for key, ref in reference.items():
        if key not in state:
            raise ArtifactError(f"{path}: missing key {key!r}; {expected}")
        value = state[key]
        if not isinstance(value, Tensor) or value.shape != ref.shape:
            shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            hint = ""
            enc2 = state.get("enc2.weight_hh_l0")
            if isinstance(enc2, Tensor) and enc2.dim() == 2:
                hint = f" (the file looks like feature_dim={enc2.shape[1]})"
            raise ArtifactError(
                f"{path}: key {key!r} has shape {shape}, expected {tuple(ref.shape)}; "
                f"{expected}{hint}"
            )
    extra = sorted(set(state) - set(reference))
    if extra:
        raise ArtifactError(f"{path}: unexpected key {extra[0]!r}; {expected}")
    model.load_state_dict(state)
    model.eval()
    return model


def encoder_weights(model: SessionAutoencoder) -> dict[str, np.ndarray]:
    """The encoder half's weights in the layout of :data:`~musicrec_gym.numpy_encoder.WEIGHT_KEYS`.

    float64: the float32 weights exactly, and ``b_ih + b_hh`` without rounding.

    Args:
        model: The model.

    Returns:
        Arrays keyed ``l1_w_ih, l1_w_hh, l1_b, l2_w_ih, l2_w_hh, l2_b``.
    """
    out: dict[str, np.ndarray] = {}
    for layer, lstm in (("l1", model.enc1), ("l2", model.enc2)):
        params = {name: p.detach().cpu().double().numpy() for name, p in lstm.named_parameters()}
        out[f"{layer}_w_ih"] = params["weight_ih_l0"].copy()
        out[f"{layer}_w_hh"] = params["weight_hh_l0"].copy()
        out[f"{layer}_b"] = params["bias_ih_l0"] + params["bias_hh_l0"]
    return out


def export_numpy(model: SessionAutoencoder, path: str | Path) -> None:
    """Write the encoder half's weights for :class:`~musicrec_gym.numpy_encoder.NumpyEncoder`.

    An ``.npz`` archive (written at ``path`` exactly, no suffix added) of the float64
    arrays of :func:`encoder_weights`, written by
    :func:`musicrec_gym.artifacts.npz_bytes`: the same weights give the same bytes.

    Args:
        model: The model.
        path: The file to write (parent directories are created).
    """
    weights = encoder_weights(model)
    NumpyEncoder(weights, source="export_numpy")  # fail here, not at load time
    write_bytes_atomic(path, npz_bytes(weights))
