"""The embedding head's softmax over all tracks, fused: PPO's update without a (B, n) tensor.

PPO with the embedding head (``agents.embedding_heads``) needs, per state, the taken
track's log-probability and the entropy of ``softmax(logits)`` over every track, with
``logits = x @ F.T + b`` (``x = h(s) W``: the projected latent, ``F`` the fixed track
features, ``b`` the per-track bias). Written in PyTorch that is a (B, n_tracks) logits
tensor and about fifteen passes over it forward and backward; with a 512-row minibatch
and 1,000 tracks they were most of the update's time (docs/speed.md). Here one compiled
kernel does a row at a time while the row sits in the processor's cache: its logits
(``k`` multiply-adds per track), their maximum, ``exp`` (a polynomial, vectorised: numba
has no vector ``exp`` without Intel's SVML) and the sums; the backward recomputes the
row's logits and returns ``dx`` and ``db`` directly. Sampling for the rollout is the same
row pass and one uniform per row (inverse CDF), where the Gumbel-max trick needed a
uniform and two logarithms per track.

Numbers: the same functions as ``TakenLogProb`` on materialised logits, to float32
rounding (tests compare them in float64). Rows are split into fixed chunks of
``CHUNK_ROWS`` and the bias gradient summed over the chunks in order, so a result does not
depend on the number of threads. The sums are vectorised by ``fastmath`` reassociation,
whose order depends on the processor and on the compilation (fresh or from numba's
cache), so the kernels are compiled fresh in every process (``_JIT``): the bits are those
of one machine, as PyTorch's own matrix products are. Sums in a fixed order written out
as running sums per vector lane were tried: no reassociation needed, but the compiled
code did not vectorise them and the backward took 1.1-1.6 ms instead of 0.3-0.6.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from numba import njit, prange

CHUNK_ROWS = 32
"""Rows per chunk of the parallel loop (fixed, so results do not depend on the threads)."""

LOGIT_FLOOR = -1e9
"""Lower logits (``-inf`` included) are raised to this, relative to the row's maximum, by
``agents.embedding_heads.TakenLogProb``: their probability is 0 in float32 either way, and
the sums stay finite. Here, a taken track that the mask blocks gets it as log-probability;
the clustered head scores blocked slots with it."""

_FAST = {"reassoc", "nsz", "contract"}
_LOG2E = np.float32(1.4426950408889634)
_C1, _C2, _C3, _C4, _C5, _C6, _C7 = (
    np.float32(np.log(2.0) ** i / np.prod(np.arange(1.0, i + 1))) for i in range(1, 8)
)
_JIT = {"cache": False, "error_model": "numpy", "fastmath": _FAST}
"""Compiled in every process, never loaded from numba's cache: with ``fastmath``
reassociation the cached code gave other bits than a fresh compile (measured: every fresh
compile agreed with every other, none with the cached code), which would make a machine's
first run differ from its later ones. Compiling costs about 5 s per process."""


@njit(inline="always", **_JIT)
def _logits(x: np.ndarray, r: int, ft: np.ndarray, b: np.ndarray, z: np.ndarray) -> None:
    """``z = x[r] @ ft + b``: row ``r``'s logits, four features per pass over the row."""
    n, k = len(z), x.shape[1]
    for j in range(n):
        z[j] = b[j]
    c = 0
    while c + 4 <= k:
        a0, a1, a2, a3 = x[r, c], x[r, c + 1], x[r, c + 2], x[r, c + 3]
        for j in range(n):
            z[j] += a0 * ft[c, j] + a1 * ft[c + 1, j] + a2 * ft[c + 2, j] + a3 * ft[c + 3, j]
        c += 4
    while c < k:
        a0 = x[r, c]
        for j in range(n):
            z[j] += a0 * ft[c, j]
        c += 1


@njit(inline="always", **_JIT)
def _shift_exp(z: np.ndarray, m: np.float32, e: np.ndarray, bits: np.ndarray) -> None:
    """``z -= m`` and ``e = exp(z)`` (``z <= 0``) as ``2^y = 2^q 2^f``, ``y = z log2(e)``.

    ``q`` is ``y`` rounded, ``2^f`` (``|f| <= 1/2``) Taylor's polynomial of degree 7 and
    ``2^q`` is made from its exponent bits in ``bits`` (an int32 scratch read back as
    float32). ``y`` is kept in [-126, 0], so ``2^q`` stays a normal float: a track more
    than 87 below the row's best gets about 1e-38, not 0. The error is float32's rounding
    of ``y``: relative 3e-7 where ``z`` is within 5 of the best, growing to 4e-6 at 87
    below it, where it is 1e-37 of the row's sum.
    """
    scale = bits.view(np.float32)
    for j in range(len(z)):
        x = z[j] - m
        z[j] = x
        y = x * _LOG2E
        y = y if y > np.float32(-126.0) else np.float32(-126.0)
        q = np.floor(y + np.float32(0.5))
        f = y - q
        e[j] = np.float32(1.0) + f * (
            _C1 + f * (_C2 + f * (_C3 + f * (_C4 + f * (_C5 + f * (_C6 + f * _C7)))))
        )
        bits[j] = (np.int32(q) + np.int32(127)) << np.int32(23)
    for j in range(len(z)):
        e[j] *= scale[j]


@njit(inline="always", **_JIT)
def _row(
    x: np.ndarray,
    r: int,
    ft: np.ndarray,
    b: np.ndarray,
    allowed: np.ndarray,
    masked: bool,
    m: np.float32,
    z: np.ndarray,
    e: np.ndarray,
    bits: np.ndarray,
) -> np.float32:
    """Row ``r``: ``z`` = logits - ``m``, ``e = exp(z)`` (both 0 where blocked); ``m``.

    ``m`` is the row's largest allowed logit: NaN to compute it, or the forward's.
    """
    _logits(x, r, ft, b, z)
    if masked:
        for j in range(len(z)):
            if not allowed[r, j]:
                z[j] = -np.inf
    if np.isnan(m):
        m = np.float32(-np.inf)
        for j in range(len(z)):
            m = max(m, z[j])
    _shift_exp(z, m, e, bits)
    if masked:
        for j in range(len(z)):
            if not allowed[r, j]:
                e[j] = np.float32(0.0)
                z[j] = np.float32(0.0)
    return m


@njit(inline="always", **_JIT)
def _scratch(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A chunk's row buffers: shifted logits, their exps and the exps' exponent bits."""
    return np.empty(n, np.float32), np.empty(n, np.float32), np.empty(n, np.int32)


@njit(inline="always", **_JIT)
def _chunk_rows(chunk: int, n_rows: int) -> range:
    """The rows of chunk ``chunk`` (``CHUNK_ROWS`` each, the last one shorter)."""
    return range(chunk * CHUNK_ROWS, min(n_rows, (chunk + 1) * CHUNK_ROWS))


@njit(parallel=True, **_JIT)
def _forward(x, ft, b, allowed, masked, actions, log_prob, entropy, sums, maxima):
    """Per row: the taken track's log-probability, the entropy, the sum of exps, the max."""
    n_rows, n = x.shape[0], ft.shape[1]
    for chunk in prange((n_rows + CHUNK_ROWS - 1) // CHUNK_ROWS):
        z, e, bits = _scratch(n)
        for r in _chunk_rows(chunk, n_rows):
            maxima[r] = _row(x, r, ft, b, allowed, masked, np.float32(np.nan), z, e, bits)
            s = np.float32(0.0)
            t = np.float32(0.0)
            for j in range(n):
                s += e[j]
                t += e[j] * z[j]
            log_s = np.log(s)
            a = actions[r]
            blocked = masked and not allowed[r, a]
            log_prob[r] = LOGIT_FLOOR if blocked else z[a] - log_s
            entropy[r] = log_s - t / s
            sums[r] = s


@njit(parallel=True, **_JIT)
def _backward(x, ft, b, allowed, masked, actions, entropy, sums, maxima, g_lp, g_h, g_x, g_b_parts):
    """``dx`` and per-chunk ``db`` of ``sum(g_lp * log_prob + g_h * entropy)``.

    ``d log p_a / dz = onehot(a) - p`` and ``dH / dz = -p (z - log s + H)``, ``p = e / s``;
    ``z`` recomputed with the forward's maxima, four features per pass for ``dx``.
    """
    n_rows, k, n = x.shape[0], x.shape[1], ft.shape[1]
    for chunk in prange((n_rows + CHUNK_ROWS - 1) // CHUNK_ROWS):
        z, e, bits = _scratch(n)
        g_b = g_b_parts[chunk]
        for r in _chunk_rows(chunk, n_rows):
            _row(x, r, ft, b, allowed, masked, maxima[r], z, e, bits)
            s = sums[r]
            slope = -g_h[r] / s
            offset = -(g_lp[r] + g_h[r] * (entropy[r] - np.log(s))) / s
            for j in range(n):
                g = e[j] * (offset + slope * z[j])
                e[j] = g
                g_b[j] += g
            a = actions[r]
            if not (masked and not allowed[r, a]):
                e[a] += g_lp[r]
                g_b[a] += g_lp[r]
            c = 0
            while c + 4 <= k:
                acc0 = acc1 = acc2 = acc3 = np.float32(0.0)
                for j in range(n):
                    acc0 += e[j] * ft[c, j]
                    acc1 += e[j] * ft[c + 1, j]
                    acc2 += e[j] * ft[c + 2, j]
                    acc3 += e[j] * ft[c + 3, j]
                g_x[r, c], g_x[r, c + 1], g_x[r, c + 2], g_x[r, c + 3] = acc0, acc1, acc2, acc3
                c += 4
            while c < k:
                acc = np.float32(0.0)
                for j in range(n):
                    acc += e[j] * ft[c, j]
                g_x[r, c] = acc
                c += 1


@njit(parallel=True, **_JIT)
def _sample(x, ft, b, allowed, masked, uniforms, actions, log_prob):
    """One track per row from ``softmax(logits)`` by inverse CDF, and its log-probability."""
    n_rows, n = x.shape[0], ft.shape[1]
    for chunk in prange((n_rows + CHUNK_ROWS - 1) // CHUNK_ROWS):
        z, e, bits = _scratch(n)
        for r in _chunk_rows(chunk, n_rows):
            _row(x, r, ft, b, allowed, masked, np.float32(np.nan), z, e, bits)
            s = np.float32(0.0)
            for j in range(n):
                s += e[j]
            target = uniforms[r] * s
            pick = -1
            total = np.float32(0.0)
            for j in range(n):
                if e[j] > 0:
                    pick = j  # the last track with mass, should rounding leave target above
                    total += e[j]
                    if total > target:
                        break
            actions[r] = pick
            log_prob[r] = z[pick] - np.log(s)


def _arrays(state: th.Tensor, bias: th.Tensor, features: th.Tensor, allowed: th.Tensor | None):
    """The kernels' NumPy views: x, F.T (contiguous), b, the mask (or a dummy) and its flag."""
    a = state.detach().contiguous().numpy()
    ft = np.ascontiguousarray(features.detach().numpy().T)
    b = bias.detach().contiguous().numpy()
    if allowed is None:
        return a, ft, b, np.ones((1, 1), dtype=np.bool_), False
    mask = allowed.detach().contiguous().numpy()
    if not mask.any(axis=1).all():
        raise ValueError("the action mask blocks every track of some row")
    return a, ft, b, mask, True


def fused_supported(state: th.Tensor) -> bool:
    """Whether the kernels take this projected latent (float32 on the CPU)."""
    return state.device.type == "cpu" and state.dtype == th.float32


class TrackSoftmax(th.autograd.Function):
    """``(x, b)`` -> the taken tracks' log-probabilities and the entropies, fused.

    ``x``: (B, k) projected latents; ``b``: (n,) per-track bias; ``features``: (n, k)
    fixed, no gradient; ``allowed``: (B, n) bool or ``None``; ``actions``: (B,) ints.
    Blocked tracks get probability 0; a blocked taken track the log-probability ``LOGIT_FLOOR``.
    """

    @staticmethod
    def forward(
        ctx: Any,
        state: th.Tensor,
        bias: th.Tensor,
        features: th.Tensor,
        allowed: th.Tensor | None,
        actions: th.Tensor,
    ) -> tuple[th.Tensor, th.Tensor]:
        """(B,) log-probabilities and (B,) entropies."""
        arrays = _arrays(state, bias, features, allowed)
        acts = np.ascontiguousarray(actions.detach().numpy().reshape(-1), dtype=np.int64)
        rows = len(arrays[0])
        if len(acts) == 1 and rows > 1:
            acts = np.repeat(acts, rows)
        log_prob, entropy, sums, maxima = (np.empty(rows, np.float32) for _ in range(4))
        _forward(*arrays, acts, log_prob, entropy, sums, maxima)
        ctx.arrays, ctx.acts, ctx.saved = arrays, acts, (entropy, sums, maxima)
        return th.from_numpy(log_prob), th.from_numpy(entropy)

    @staticmethod
    @th.autograd.function.once_differentiable
    def backward(ctx: Any, g_log_prob: th.Tensor, g_entropy: th.Tensor) -> tuple:
        """``dA`` (B, k) and ``db`` (n,); nothing for the features, mask or actions."""
        a, ft, b, mask, masked = ctx.arrays
        chunks = (len(a) + CHUNK_ROWS - 1) // CHUNK_ROWS
        g_a = np.empty_like(a)
        g_b_parts = np.zeros((chunks, len(b)), dtype=np.float32)
        g_lp = np.ascontiguousarray(g_log_prob.numpy(), dtype=np.float32)
        g_h = np.ascontiguousarray(g_entropy.numpy(), dtype=np.float32)
        _backward(a, ft, b, mask, masked, ctx.acts, *ctx.saved, g_lp, g_h, g_a, g_b_parts)
        return th.from_numpy(g_a), th.from_numpy(g_b_parts.sum(axis=0)), None, None, None


def sample_tracks(
    state: th.Tensor, bias: th.Tensor, features: th.Tensor, allowed: th.Tensor | None
) -> tuple[th.Tensor, th.Tensor]:
    """One draw per row from the softmax over tracks, and its log-probability (no gradient).

    The uniforms come from PyTorch's global generator, so SB3's seeding fixes the draws.
    """
    arrays = _arrays(state, bias, features, allowed)
    rows = len(arrays[0])
    uniforms = th.rand(rows, dtype=th.float32).numpy()
    actions = np.empty(rows, np.int64)
    log_prob = np.empty(rows, np.float32)
    _sample(*arrays, uniforms, actions, log_prob)
    return th.from_numpy(actions), th.from_numpy(log_prob)
