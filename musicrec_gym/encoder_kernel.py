"""The session encoder compiled for one window at a time (numba), for the simulator's kernels.

:class:`~musicrec_gym.encoder.NumpyEncoder` amortises NumPy's per-call cost over a batch;
inside a compiled environment step there is no per-call cost to amortise, so a window
is encoded on its own, in the slot's own loop iteration: the same two LSTM layers in
float32, with

* layer 1's input projections (biases included) looked up per (track, listened) pair
  and its first step (from zeros) looked up whole, as in ``encode_ids``;
* a rational ``tanh`` (Eigen's float approximation, within 2e-7 of the exact value
  over the whole line) that the compiler vectorises, where ``math.tanh`` is a scalar
  library call; every gate is one ``tanh`` (``sigmoid(a) = (1 + tanh(a/2)) / 2``, the
  1/2 inside folded into the weights).

Codes agree with PyTorch's encoder and with ``NumpyEncoder`` within 1e-6 (tests).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from musicrec_gym.encoder import NumpyEncoder

# Layout of the packed encoder (an int64 array ``lay``): sizes, then offsets into the
# float32 arena ``ce``.
E_F, E_H1, E_H2, E_NCODES, E_W1H, E_T1, E_S0, E_W2, E_ACT1, E_ACT2 = range(10)

_CLAMP = np.float32(7.90531110763549805)
_TINY = np.float32(0.0004)
_A1 = np.float32(4.89352455891786e-03)
_A3 = np.float32(6.37261928875436e-04)
_A5 = np.float32(1.48572235717979e-05)
_A7 = np.float32(5.12229709037114e-08)
_A9 = np.float32(-8.60467152213735e-11)
_A11 = np.float32(2.00018790482477e-13)
_A13 = np.float32(-2.76076847742355e-16)
_B0 = np.float32(4.89352518554385e-03)
_B2 = np.float32(2.26843463243900e-03)
_B4 = np.float32(1.18534705686654e-04)
_B6 = np.float32(1.19825839466702e-06)


@njit(cache=True, inline="always", error_model="numpy")
def tanh32(a: np.float32) -> np.float32:
    """``tanh`` of a float32 by Eigen's rational approximation (vectorisable)."""
    x = min(max(a, -_CLAMP), _CLAMP)
    x2 = x * x
    p = x2 * _A13 + _A11
    p = x2 * p + _A9
    p = x2 * p + _A7
    p = x2 * p + _A5
    p = x2 * p + _A3
    p = x2 * p + _A1
    p = x * p
    q = x2 * _B6 + _B4
    q = x2 * q + _B2
    q = x2 * q + _B0
    return a if abs(a) < _TINY else p / q


def _scaled(w: np.ndarray, h: int) -> np.ndarray:
    """Gate rows (torch order i, f, g, o) with i, f, o halved, for the one-``tanh`` gates."""
    out = np.array(w, dtype=np.float64)
    for k in (0, 1, 3):
        out[k * h : (k + 1) * h] *= 0.5
    return out


def _activation(h: int) -> np.ndarray:
    """``(2, 4h)``: per gate value, ``tanh(z) * mul + add`` (sigmoid for i, f, o; tanh for g)."""
    act = np.full((2, 4 * h), 0.5, np.float32)
    act[0, 2 * h : 3 * h] = 1.0
    act[1, 2 * h : 3 * h] = 0.0
    return act


def pack_encoder(enc: NumpyEncoder) -> tuple[np.ndarray, np.ndarray]:
    """The encoder's weights and track tables as one float32 arena and its int64 layout.

    Needs ``enc.bind_tracks`` first. Memory: ``2 n_tracks (4 H1 + 2 H1)`` float32s for
    the tables (86 MB at 100,000 tracks for the built-in encoder's ``H1 = 18``).
    """
    w, h1, h2, f = enc._w, enc._h1, enc._h2, enc.feature_dim
    feats = enc._features.astype(np.float64)  # (2 n, F): [vector, flag] per (track, flag)
    n_codes = feats.shape[0]
    w1h = _scaled(w["l1_w_hh"], h1).T  # (H1, 4 H1)
    t1 = feats @ _scaled(w["l1_w_ih"], h1).T + _scaled(w["l1_b"], h1)  # (2n, 4 H1)
    s0 = np.concatenate(
        [enc._state0[:, :h1], enc._state0[:, h1 + h2 : 2 * h1 + h2]], axis=1
    )  # (2n, 2 H1): [h, c] of layer 1 after its first step
    w2 = np.concatenate(
        [_scaled(w["l2_w_ih"], h2).T, _scaled(w["l2_w_hh"], h2).T, _scaled(w["l2_b"], h2)[None]]
    )  # (H1 + H2 + 1, 4 H2): rows [h1 | h2 | 1]
    parts = [w1h, t1, s0, w2, _activation(h1), _activation(h2)]
    sizes = [p.size for p in parts]
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    arena = np.concatenate([np.asarray(p, np.float32).ravel() for p in parts])
    lay = np.array([f, h1, h2, n_codes, *offsets], dtype=np.int64)
    return arena, lay


BLOCK = 16
"""Windows encoded together: the compiled loops run across a block's windows (SIMD lanes)."""


@njit(cache=True, inline="always", error_model="numpy")
def _cell(z: np.ndarray, act: np.ndarray, c: np.ndarray, h: np.ndarray, n: int) -> None:
    """LSTM cells of a block from gate pre-activations ``z`` (4n, nb), gates (i, f, g, o)."""
    nb = z.shape[1]
    if nb == 1:  # one window: the loop runs down the gates instead
        z1, mul1, add1 = z.reshape(4 * n), act[0], act[1]
        for j in range(4 * n):
            z1[j] = tanh32(z1[j]) * mul1[j] + add1[j]
    else:
        for j in range(4 * n):
            mul, add = act[0, j], act[1, j]
            for s in range(nb):
                z[j, s] = tanh32(z[j, s]) * mul + add
    for j in range(n):
        for s in range(nb):
            c[j, s] = z[n + j, s] * c[j, s] + z[j, s] * z[2 * n + j, s]
            h[j, s] = z[3 * n + j, s] * tanh32(c[j, s])


@njit(cache=True, inline="always", error_model="numpy")
def _accumulate(z: np.ndarray, w: np.ndarray, h: np.ndarray) -> None:
    """``z += w.T @ h``: ``z`` (G, nb), ``w`` (K, G), ``h`` (K, nb); ``k`` ascending."""
    nb = z.shape[1]
    if nb == 1:  # one window: the loop runs down the gates instead
        z1 = z.reshape(z.shape[0])
        for k in range(w.shape[0]):
            wk, hk = w[k], h[k, 0]
            for j in range(w.shape[1]):
                z1[j] += wk[j] * hk
        return
    for k in range(w.shape[0]):
        wk = w[k]
        for j in range(w.shape[1]):
            wkj = wk[j]
            for s in range(nb):
                z[j, s] += wkj * h[k, s]


@njit(cache=True, error_model="numpy")
def encode_block(
    ce: np.ndarray,
    lay: np.ndarray,
    tracks: np.ndarray,
    listened: np.ndarray,
    out: np.ndarray,
    work: np.ndarray,
) -> None:
    """Encode up to :data:`BLOCK` windows, ``(nb, T)`` track rows and flags, into ``out`` (nb, H2).

    ``work`` is float32 scratch of at least :func:`work_size`. Each window's numbers are
    the same whatever the block holds (the loops across windows never mix them).
    """
    nb, window = tracks.shape
    h1n, h2n, n_codes = lay[E_H1], lay[E_H2], lay[E_NCODES]
    g1, g2 = 4 * h1n, 4 * h2n
    w1h = ce[lay[E_W1H] : lay[E_W1H] + h1n * g1].reshape((h1n, g1))
    t1 = ce[lay[E_T1] : lay[E_T1] + n_codes * g1].reshape((n_codes, g1))
    s0 = ce[lay[E_S0] : lay[E_S0] + n_codes * 2 * h1n].reshape((n_codes, 2 * h1n))
    w2 = ce[lay[E_W2] : lay[E_W2] + (h1n + h2n + 1) * g2].reshape((h1n + h2n + 1, g2))
    act1 = ce[lay[E_ACT1] : lay[E_ACT1] + 2 * g1].reshape((2, g1))
    act2 = ce[lay[E_ACT2] : lay[E_ACT2] + 2 * g2].reshape((2, g2))
    at = 0
    z1 = work[at : at + g1 * nb].reshape((g1, nb))
    at += g1 * nb
    hc1 = work[at : at + 2 * h1n * nb].reshape((2 * h1n, nb))
    at += 2 * h1n * nb
    z2 = work[at : at + g2 * nb].reshape((g2, nb))
    at += g2 * nb
    hc2 = work[at : at + 2 * h2n * nb].reshape((2 * h2n, nb))
    h1, c1, h2, c2 = hc1[:h1n], hc1[h1n:], hc2[:h2n], hc2[h2n:]
    code = np.empty(nb, np.int64)
    for t in range(window):
        for s in range(nb):
            k = 2 * tracks[s, t] + (1 if listened[s, t] != 0 else 0)
            code[s] = k + n_codes if k < 0 else k  # an empty place (-1): the last track
        if t == 0:  # layer 1's first step, from zeros: looked up
            for j in range(2 * h1n):
                for s in range(nb):
                    hc1[j, s] = s0[code[s], j]
        else:
            for j in range(g1):
                for s in range(nb):
                    z1[j, s] = t1[code[s], j]
            _accumulate(z1, w1h, h1)
            _cell(z1, act1, c1, h1, h1n)
        for j in range(g2):
            bias = w2[h1n + h2n, j]
            for s in range(nb):
                z2[j, s] = bias
        _accumulate(z2, w2[:h1n], h1)
        if t == 0:
            for j in range(h2n):
                for s in range(nb):
                    c2[j, s] = 0.0
        else:
            _accumulate(z2, w2[h1n : h1n + h2n], h2)
        _cell(z2, act2, c2, h2, h2n)
    for s in range(nb):
        for j in range(h2n):
            out[s, j] = h2[j, s]


def work_size(lay: np.ndarray) -> int:
    """float32 scratch that :func:`encode_block` needs for a full block."""
    h1, h2 = int(lay[E_H1]), int(lay[E_H2])
    return (6 * h1 + 6 * h2) * BLOCK
