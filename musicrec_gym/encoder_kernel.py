"""The session encoder compiled (numba), for the simulator's kernels.

:class:`~musicrec_gym.numpy_encoder.NumpyEncoder` amortises NumPy's per-call cost over a batch;
inside a compiled environment step there is no per-call cost to amortise. Two kernels
compute the same two LSTM layers in float32, with the same operations in the same
order, so a window's code is the same bits from either:

* :func:`encode_window`: one window, the loops running down the gates (a single
  environment's step);
* :func:`encode_block`: up to :data:`BLOCK` windows side by side, the loops running
  across the windows (a batch: 2-3x faster per window than one at a time).

Both use

* layer 1's input projections (biases included) looked up per (track, listened) pair,
  and both layers' first step (from zeros, so depending on that play alone) looked up
  whole;
* a rational ``tanh`` (Eigen's float approximation, within 2e-7 of the exact value
  over the whole line) that the compiler vectorises, where ``math.tanh`` is a scalar
  library call; every gate is one ``tanh`` (``sigmoid(a) = (1 + tanh(a/2)) / 2``, the
  1/2 inside folded into the weights);
* unsigned (uint64) indices: numba wraps a negative signed index around, and that
  check turns every vector load into a gather (3x slower);
* weight rows padded to 16 floats and 64-byte aligned, read three rows per pass over
  the gates (one store of the sum per three multiply-adds; still summed in row order).

Codes agree with PyTorch's encoder and with ``NumpyEncoder`` within 1e-6 (tests).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from musicrec_gym.numpy_encoder import NumpyEncoder

# Layout of the packed encoder (an int64 array ``lay``): sizes, padded row strides, then
# offsets into the float32 arena ``ce``.
(
    E_F, E_H1, E_H2, E_NCODES, E_S1, E_S2, E_SS, E_SQ,
    E_W1H, E_T1, E_S0, E_W2, E_ACT1, E_ACT2, E_Q0,
) = range(15)  # fmt: skip
_ALIGN = 16  # floats: 64 bytes
U = np.uint64

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


def aligned_empty(shape: int | tuple[int, ...], dtype: type = np.float32) -> np.ndarray:
    """An uninitialised array whose data starts on a 64-byte (cache line) boundary."""
    count = int(np.prod(shape))
    size = np.dtype(dtype).itemsize
    raw = np.empty(count * size + 64, np.uint8)
    start = -raw.ctypes.data % 64
    return raw[start : start + count * size].view(dtype).reshape(shape)


def _padded(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN


def pack_encoder(enc: NumpyEncoder) -> tuple[np.ndarray, np.ndarray]:
    """The encoder's weights and track tables as one aligned float32 arena and its layout.

    Needs ``enc.bind_tracks`` first. Every row is padded to 16 floats. Memory: about
    ``2 n_tracks (4 H1 + 2 H1 + 2 H2)`` float32s for the tables (128 MB at 100,000
    tracks for the built-in encoder's ``H1 = 18``, ``H2 = 9``, rows padded).
    """
    w, h1, h2, f = enc._w, enc._h1, enc._h2, enc.feature_dim
    s1, s2, ss, sq = _padded(4 * h1), _padded(4 * h2), _padded(2 * h1), _padded(2 * h2)
    feats = enc._features.astype(np.float64)  # (2 n, F): [vector, flag] per (track, flag)
    n_codes = feats.shape[0]
    s0 = np.concatenate(
        [enc._state0[:, :h1], enc._state0[:, h1 + h2 : 2 * h1 + h2]], axis=1
    )  # (2n, 2 H1): [h, c] of layer 1 after its first step
    w2 = np.concatenate(
        [_scaled(w["l2_w_ih"], h2).T, _scaled(w["l2_w_hh"], h2).T, _scaled(w["l2_b"], h2)[None]]
    )  # (H1 + H2 + 1, 4 H2): rows [h1 | h2 | 1]
    w1h = _scaled(w["l1_w_hh"], h1).T  # (H1, 4 H1)
    # Layer 2's first step (from zeros) depends on the first play alone: looked up.
    pre = s0[:, :h1].astype(np.float64) @ w["l2_w_ih"].T + w["l2_b"]
    gate_i, _, gate_g, gate_o = (pre[:, k * h2 : (k + 1) * h2] for k in range(4))
    c2 = _sigmoid(gate_i) * np.tanh(gate_g)
    q0 = np.concatenate([_sigmoid(gate_o) * np.tanh(c2), c2], axis=1)  # (2n, 2 H2): [h, c]
    parts = [
        (w1h, s1),
        (feats @ _scaled(w["l1_w_ih"], h1).T + _scaled(w["l1_b"], h1), s1),  # (2n, 4 H1)
        (s0, ss),
        (w2, s2),
        (_activation(h1), s1),
        (_activation(h2), s2),
        (q0, sq),
    ]
    offsets = np.cumsum([0] + [len(rows) * stride for rows, stride in parts])
    arena = aligned_empty(int(offsets[-1]))
    arena[:] = 0.0
    for (rows, stride), at in zip(parts, offsets[:-1], strict=True):
        block = arena[at : at + len(rows) * stride].reshape(len(rows), stride)
        block[:, : rows.shape[1]] = rows
    lay = np.array([f, h1, h2, n_codes, s1, s2, ss, sq, *offsets[:-1]], dtype=np.int64)
    return arena, lay


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


BLOCK = 64
"""Windows :func:`encode_block` encodes together: its loops run across them (SIMD lanes)."""
MIN_BLOCK = 24
"""Fewer windows than this are faster one at a time (:func:`encode_window`)."""


@njit(cache=True, inline="always", error_model="numpy")
def _rows(z, ce, off, stride, h, rows, width, nb):
    """``z[j, s] += sum_k ce[off + k stride + j] h[k, s]`` for ``k < rows``, ``j < width``.

    Rows are added in order, three per pass; ``z`` is (width, nb), ``h`` (rows, nb).
    """
    k = U(0)
    while k + U(3) <= rows:
        ra, rb, rc = off + k * stride, off + (k + U(1)) * stride, off + (k + U(2)) * stride
        ha, hb, hc = h[k], h[k + U(1)], h[k + U(2)]
        for j in range(width):
            wa, wb, wc = ce[ra + j], ce[rb + j], ce[rc + j]
            zj = z[j]
            for s in range(nb):
                zj[s] = ((zj[s] + wa * ha[s]) + wb * hb[s]) + wc * hc[s]
        k += U(3)
    while k < rows:
        ra, ha = off + k * stride, h[k]
        for j in range(width):
            wa, zj = ce[ra + j], z[j]
            for s in range(nb):
                zj[s] += wa * ha[s]
        k += U(1)


@njit(cache=True, inline="always", error_model="numpy")
def _rows1(z, ce, off, stride, h, rows, width):
    """:func:`_rows` for one window: ``z`` (width,), ``h`` (rows,); the same sums."""
    k = U(0)
    while k + U(3) <= rows:
        ra, rb, rc = off + k * stride, off + (k + U(1)) * stride, off + (k + U(2)) * stride
        ha, hb, hc = h[k], h[k + U(1)], h[k + U(2)]
        for j in range(width):
            z[j] = ((z[j] + ce[ra + j] * ha) + ce[rb + j] * hb) + ce[rc + j] * hc
        k += U(3)
    while k < rows:
        ra, ha = off + k * stride, h[k]
        for j in range(width):
            z[j] += ce[ra + j] * ha
        k += U(1)


@njit(cache=True, inline="always", error_model="numpy")
def _cells(z, ce, act, stride, hc, n, nb):
    """Gate activations, then LSTM cells: ``hc`` (2n, nb), ``[h | c]``, from ``z`` (4n, nb).

    Each gate value becomes ``tanh(z) * mul + add`` (``mul``, ``add``: the rows at
    ``ce[act]`` and ``ce[act + stride]``), then ``c = f c + i g`` and ``h = o tanh(c)``.
    """
    two, three = U(2), U(3)
    for j in range(U(4) * n):
        mul, add = ce[act + j], ce[act + stride + j]
        for s in range(nb):
            z[j, s] = tanh32(z[j, s]) * mul + add
    for j in range(n):
        for s in range(nb):
            c = z[n + j, s] * hc[n + j, s] + z[j, s] * z[two * n + j, s]
            hc[n + j, s] = c
            hc[j, s] = z[three * n + j, s] * tanh32(c)


@njit(cache=True, inline="always", error_model="numpy")
def _cells1(z, ce, act, stride, hc, n):
    """:func:`_cells` for one window: ``z`` (4n,), ``hc`` (2n,); the same arithmetic."""
    two, three = U(2), U(3)
    for j in range(U(4) * n):
        z[j] = tanh32(z[j]) * ce[act + j] + ce[act + stride + j]
    for j in range(n):
        c = z[n + j] * hc[n + j] + z[j] * z[two * n + j]
        hc[n + j] = c
        hc[j] = z[three * n + j] * tanh32(c)


@njit(cache=True, inline="always", error_model="numpy")
def _code(track: int, listened: float, n_codes: int) -> np.uint64:
    """Row of a (track, listened) pair in the tables; an empty place (-1) is the last track."""
    k = 2 * track + (1 if listened != 0 else 0)
    return U(k + n_codes if k < 0 else k)


@njit(cache=True, error_model="numpy")
def encode_window(
    ce: np.ndarray,
    lay: np.ndarray,
    tracks: np.ndarray,
    listened: np.ndarray,
    out: np.ndarray,
    work: np.ndarray,
) -> None:
    """Encode one window, ``(T,)`` track rows and flags, into ``out`` (H2,).

    ``work``: aligned float32 scratch of at least :func:`work_size`.
    """
    h1n, h2n, n_codes = U(lay[E_H1]), U(lay[E_H2]), lay[E_NCODES]
    s1, s2, ss = U(lay[E_S1]), U(lay[E_S2]), U(lay[E_SS])
    o_w1h, o_t1, o_s0, o_w2 = U(lay[E_W1H]), U(lay[E_T1]), U(lay[E_S0]), U(lay[E_W2])
    o_a1, o_a2 = U(lay[E_ACT1]), U(lay[E_ACT2])
    o_q0, sq = U(lay[E_Q0]), U(lay[E_SQ])
    g1, g2, two = U(4) * h1n, U(4) * h2n, U(2)
    z1, hc1 = work[:s1], work[s1 : s1 + ss]
    z2, hc2 = work[s1 + ss : s1 + ss + s2], work[s1 + ss + s2 : s1 + ss + two * s2]
    first = _code(tracks[0], listened[0], n_codes)
    base = o_s0 + first * ss  # the first step of both layers, from zeros: looked up
    for j in range(two * h1n):
        hc1[j] = ce[base + j]
    base = o_q0 + first * sq
    for j in range(two * h2n):
        hc2[j] = ce[base + j]
    for t in range(1, tracks.shape[0]):
        code = _code(tracks[t], listened[t], n_codes)
        base = o_t1 + code * s1
        for j in range(g1):
            z1[j] = ce[base + j]
        _rows1(z1, ce, o_w1h, s1, hc1, h1n, g1)
        _cells1(z1, ce, o_a1, s1, hc1, h1n)
        bias = o_w2 + (h1n + h2n) * s2
        for j in range(g2):
            z2[j] = ce[bias + j]
        _rows1(z2, ce, o_w2, s2, hc1, h1n, g2)
        _rows1(z2, ce, o_w2 + h1n * s2, s2, hc2, h2n, g2)
        _cells1(z2, ce, o_a2, s2, hc2, h2n)
    for j in range(h2n):
        out[j] = hc2[j]


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

    ``work``: aligned float32 scratch of at least :func:`work_size`. Each window gets
    the same bits as from :func:`encode_window` (the loops across windows never mix them).
    """
    nb = U(tracks.shape[0])
    h1n, h2n, n_codes = U(lay[E_H1]), U(lay[E_H2]), lay[E_NCODES]
    s1, s2, ss = U(lay[E_S1]), U(lay[E_S2]), U(lay[E_SS])
    o_w1h, o_t1, o_s0, o_w2 = U(lay[E_W1H]), U(lay[E_T1]), U(lay[E_S0]), U(lay[E_W2])
    o_a1, o_a2 = U(lay[E_ACT1]), U(lay[E_ACT2])
    g1, g2, two = U(4) * h1n, U(4) * h2n, U(2)
    at = U(0)
    z1 = work[at : at + g1 * nb].reshape((g1, nb))
    at += g1 * nb
    hc1 = work[at : at + two * h1n * nb].reshape((two * h1n, nb))
    at += two * h1n * nb
    z2 = work[at : at + g2 * nb].reshape((g2, nb))
    at += g2 * nb
    hc2 = work[at : at + two * h2n * nb].reshape((two * h2n, nb))
    o_q0, sq = U(lay[E_Q0]), U(lay[E_SQ])
    first = np.empty(nb, np.uint64)
    code = np.empty(nb, np.uint64)
    for s in range(nb):
        first[s] = _code(tracks[s, 0], listened[s, 0], n_codes)
    for j in range(two * h1n):  # the first step of both layers, from zeros: looked up
        for s in range(nb):
            hc1[j, s] = ce[o_s0 + first[s] * ss + j]
    for j in range(two * h2n):
        for s in range(nb):
            hc2[j, s] = ce[o_q0 + first[s] * sq + j]
    for t in range(1, tracks.shape[1]):
        for s in range(nb):
            code[s] = _code(tracks[s, t], listened[s, t], n_codes)
        for j in range(g1):
            for s in range(nb):
                z1[j, s] = ce[o_t1 + code[s] * s1 + j]
        _rows(z1, ce, o_w1h, s1, hc1, h1n, g1, nb)
        _cells(z1, ce, o_a1, s1, hc1, h1n, nb)
        bias = o_w2 + (h1n + h2n) * s2
        for j in range(g2):
            b = ce[bias + j]
            for s in range(nb):
                z2[j, s] = b
        _rows(z2, ce, o_w2, s2, hc1, h1n, g2, nb)
        _rows(z2, ce, o_w2 + h1n * s2, s2, hc2, h2n, g2, nb)
        _cells(z2, ce, o_a2, s2, hc2, h2n, nb)
    for s in range(nb):
        for j in range(h2n):
            out[s, j] = hc2[j, s]


@njit(cache=True, error_model="numpy")
def encode_slots(ce, lay, si, sf, wt, wl, slots, obs, work) -> None:
    """Windows of simulator ``slots`` into the rows of ``obs``: blocks, then a short tail.

    The simulators' kernels keep a slot's window in its state rows: its tracks at
    ``si[s, wt : wt + 5]`` and flags at ``sf[s, wl : wl + 5]``. Full blocks go through
    :func:`encode_block`, a tail shorter than ``MIN_BLOCK`` one window at a time.
    """
    window = 5
    tracks = np.empty((BLOCK, window), np.int64)
    flags = np.empty((BLOCK, window), np.float64)
    n = slots.shape[0]
    for start in range(0, n, BLOCK):
        nb = min(BLOCK, n - start)
        if nb < MIN_BLOCK:
            for r in range(start, n):
                s = slots[r]
                encode_window(ce, lay, si[s, wt : wt + window], sf[s, wl : wl + window],
                              obs[r], work)  # fmt: skip
            return
        for r in range(nb):
            s = slots[start + r]
            for j in range(window):
                tracks[r, j] = si[s, wt + j]
                flags[r, j] = sf[s, wl + j]
        encode_block(ce, lay, tracks[:nb], flags[:nb], obs[start : start + nb], work)


def work_size(lay: np.ndarray) -> int:
    """float32 scratch (a multiple of 16) that either kernel needs, a full block included."""
    h1, h2 = int(lay[E_H1]), int(lay[E_H2])
    block = (6 * h1 + 6 * h2) * BLOCK
    window = int(lay[E_S1] + lay[E_SS] + 2 * lay[E_S2])
    return _padded(max(block, window))
