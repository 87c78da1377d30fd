"""Batched NumPy inference of the session encoder's two LSTM layers (torch-free).

:class:`NumpyEncoder` computes the code of a session window from the weights written by
:func:`musicrec_gym.encoder_train.export_numpy` (:data:`WEIGHT_KEYS`); the environment
runs it on every step without importing PyTorch.

How :class:`NumpyEncoder` is fast (NumPy's float32 ``tanh`` is SIMD and, measured on
the 2-core dev machine with AVX-512, about half the price of ``exp`` per element, and a
NumPy call costs ~1 us):

* both LSTM layers run as one *wavefront*: step ``t`` of layer 1 and step ``t-1`` of
  layer 2 take their gates from one matmul of ``[h1, h2, x_t, 1]`` with a fused weight
  matrix (biases included), and share every elementwise call;
* layer 1's first step starts from zeros, so after :meth:`NumpyEncoder.bind_tracks` it
  is a table lookup per (track, listened) pair: a window takes ``T`` waves, not
  ``2T``;
* every gate is one ``tanh`` (``sigmoid(a) = (1 + tanh(a/2)) / 2``, the 1/2 inside
  folded into the weights);
* small batches (B <= 24, e.g. one env) use a row layout: the fewest NumPy calls (8 per
  wave, pre-bound to preallocated views);
* larger batches use a gate-major layout (every elementwise call contiguous; 7 calls
  per wave); their matmuls run on blocks of at most 256 rows, so OpenBLAS stays
  single-threaded (faster on a busy machine, and the codes do not depend on its
  thread count);
* buffers are allocated once and reused: a large-batch plan serves every batch up to
  the next power of two through views, so autoresets' varying batches do not allocate.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from musicrec_gym.errors import ArtifactError, DataFormatError

__all__ = ["WEIGHT_KEYS", "NumpyEncoder"]

WEIGHT_KEYS = ("l1_w_ih", "l1_w_hh", "l1_b", "l2_w_ih", "l2_w_hh", "l2_b")
"""Keys of the exported encoder weights, in PyTorch's layout and gate order (i, f, g, o).

``lK_w_ih`` is ``(4 H_K, input)``, ``lK_w_hh`` is ``(4 H_K, H_K)`` and ``lK_b`` is
``b_ih + b_hh``, ``(4 H_K,)``, for layer ``K`` in 1, 2.
"""

# Our gate order is (g, f, i, o); PyTorch's is (i, f, g, o).
_TORCH_BLOCK = (2, 1, 0, 3)
# Batches up to this size take the row-layout tanh path (fewest NumPy calls); larger
# ones the gate-major exp path (cheapest per element).
_SMALL_BATCH = 24
# Buffers are kept for this many (batch, window) shapes.
_MAX_PLANS = 8
# Matmuls run on at most this many rows at a time: OpenBLAS then stays single-threaded
# (it threads a gemm when m*n*k > 262144), which is faster on a busy machine and makes
# the codes independent of the BLAS thread count.
_ROWS_PER_MATMUL = 256

_Op = tuple[Any, tuple[Any, ...]]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * np.tanh(0.5 * x) + 0.5


def _wave_ops(
    mm: Any, z: np.ndarray, m: np.ndarray, g: np.ndarray, p: np.ndarray, tmp: np.ndarray,
    half: np.ndarray, h_out: np.ndarray,
) -> list[_Op]:  # fmt: skip
    """One wave in the row layout ``g = [c | g | f | i | o]`` (blocks ``H`` wide).

    ``sigmoid(a) = (1 + tanh(a/2)) / 2``, the 1/2 inside folded into the weights.
    """
    h = tmp.shape[1]
    gates, fio = g[:, h:], g[:, 2 * h :]
    return [
        (mm, (z, m, gates)),
        (np.tanh, (gates, gates)),
        (np.multiply, (fio, half, fio)),
        (np.add, (fio, half, fio)),
        (np.multiply, (g[:, : 2 * h], g[:, 2 * h : 4 * h], p)),  # [f * c, i * tanh(g)]
        (np.add, (p[:, :h], p[:, h:], g[:, :h])),  # c
        (np.tanh, (g[:, :h], tmp)),
        (np.multiply, (g[:, 4 * h :], tmp, h_out)),  # h = o * tanh(c)
    ]


class _RowPlan:
    """Buffers and pre-bound NumPy calls for small batches: row layout, tanh path.

    ``z[t] = [h (H) | x_t (F) | 1]`` is wave ``t``'s matmul input (``H = H1 + H2``), so
    one matmul gives both layers' gates, biases included. Fewest NumPy calls: what
    matters when a call costs more than its arithmetic.
    """

    def __init__(self, enc: NumpyEncoder, batch: int, window: int) -> None:
        f, h1, h2 = enc.feature_dim, enc._h1, enc._h2
        h = h1 + h2
        self.window = window
        self.z = np.zeros((window + 1, batch, h + f + 1), np.float32)
        self.z[:, :, h + f] = 1.0
        self.x = self.z[:window, :, h : h + f]
        self.x_rest = self.x[1:]
        self.h1 = self.z[1, :, :h]
        g = np.empty((batch, 5 * h), np.float32)
        self.c, self.c2, self.h1_layer2 = g[:, :h], g[:, h1:h], self.z[1, :, h1:h]
        self.code = np.empty((batch, window), np.int64)
        self.flag = np.empty((batch, window), np.bool_)
        p, tmp = np.empty((batch, 2 * h), np.float32), np.empty((batch, h), np.float32)
        mm = np.dot if batch == 1 else np.matmul  # np.dot is faster but needs C-order out
        m, half = enc._row_m, enc._row_half
        self.first = _wave_ops(mm, self.z[0], m, g, p, tmp, half, self.h1)
        self.ops: list[_Op] = []
        for t in range(1, window + 1):
            h_out = self.z[t + 1, :, :h] if t < window else tmp  # (the last one is dropped)
            self.ops += _wave_ops(mm, self.z[t], m, g, p, tmp, half, h_out)
        # The last wave's layer-1 half is wasted work, cheaper than a call at this size:
        # its final product keeps layer 2 only, written to the caller's array.
        self.ops.pop()
        self.o2, self.tanh_c2 = g[:, 4 * h + h1 :], tmp[:, h1:]

    def load_ids(self, enc: NumpyEncoder, code_t: np.ndarray) -> None:
        state0 = enc._state0[code_t[0]]  # raises IndexError first, before any write
        if self.window > 1:
            np.copyto(self.x_rest, enc._features[code_t[1:]])
        h = self.h1.shape[1]
        np.copyto(self.h1, state0[:, :h])
        np.copyto(self.c, state0[:, h:])

    def load_windows(self, x: np.ndarray) -> None:
        np.copyto(self.x, x.transpose(1, 0, 2))
        self.c[...] = 0.0
        for fn, args in self.first:
            fn(*args)
        self.h1_layer2[...] = 0.0  # wave 0 is layer 1's first step only
        self.c2[...] = 0.0

    def run(self, out: np.ndarray) -> None:
        for fn, args in self.ops:
            fn(*args)
        np.multiply(self.o2, self.tanh_c2, out)


class _GatePlan:
    """Buffers for larger batches: gate-major layout, tanh path.

    Every elementwise call runs on C-contiguous blocks (strided row views cost a loop
    per row): ``gm`` is ``(5, capacity, H)`` with blocks ``[c, g, f, i, o]``, so ``[c, g]
    * [f, i]`` is one call. ``sigmoid(a) = (1 + tanh(a/2)) / 2`` with the 1/2 inside
    folded into the weights, so one ``tanh`` call (NumPy's cheapest transcendental in
    float32, SIMD) serves all four gates. A plan serves every batch up to its
    ``capacity`` through views of its first rows, so the varying batches of autoreset
    slots reuse a few plans instead of allocating. Matmuls run on row blocks of at
    most ``_ROWS_PER_MATMUL``.
    """

    def __init__(self, enc: NumpyEncoder, capacity: int, window: int) -> None:
        f, h1, h2 = enc.feature_dim, enc._h1, enc._h2
        h = h1 + h2
        self.f, self.h, self.h1, self.window = f, h, h1, window
        self.hb = np.empty((capacity, h), np.float32)  # h of both layers
        self.gm = np.empty((5, capacity, h), np.float32)  # c, then the gates
        self.p = np.empty((2, capacity, h), np.float32)
        self.tmp = np.empty((capacity, h), np.float32)
        self.gml = np.empty((5, capacity, h2), np.float32)  # the last wave: layer 2 only
        self.pl = np.empty((2, capacity, h2), np.float32)
        self.tmpl = np.empty((capacity, h2), np.float32)
        self.code = np.empty((capacity, window), np.int64)
        self.flag = np.empty((capacity, window), np.bool_)
        self._xa: np.ndarray | None = None  # encode(): [x_t | 1], (T, capacity, F+1)
        self._xp: np.ndarray | None = None  # encode(): projections, (4, T, capacity, H)

    @staticmethod
    def _blocks(batch: int) -> list[slice]:
        return [
            slice(start, min(start + _ROWS_PER_MATMUL, batch))
            for start in range(0, batch, _ROWS_PER_MATMUL)
        ]

    def encode_ids(self, enc: NumpyEncoder, code_t: np.ndarray, out: np.ndarray) -> None:
        b = code_t.shape[1]
        state0 = enc._state0[code_t[0]]  # raises IndexError before any write
        # Input projections of steps 1 .. T-1, biases included: (4, T-1, B, H).
        xp = np.take(enc._gm_table, code_t[1:], axis=1)
        np.copyto(self.hb[:b], state0[:, : self.h])
        np.copyto(self.gm[0, :b], state0[:, self.h :])
        self._run(enc, b, xp, 1, out)

    def encode(self, enc: NumpyEncoder, x: np.ndarray, out: np.ndarray) -> None:
        b = x.shape[0]
        if self._xa is None or self._xp is None:
            capacity = len(self.hb)
            self._xa = np.ones((self.window, capacity, self.f + 1), np.float32)
            self._xp = np.empty((4, self.window, capacity, self.h), np.float32)
        xa, xp = self._xa[:, :b], self._xp[:, :, :b]
        np.copyto(xa[:, :, :-1], x.transpose(1, 0, 2))
        for rows in self._blocks(b):
            np.matmul(xa[None, :, rows], enc._gm_x[:, None], out=xp[:, :, rows])
        gm, hb = self.gm[:, :b], self.hb[:b]
        gm[0] = 0.0
        np.copyto(gm[1:], xp[:, 0])
        self._cell(gm, self.p[:, :b], self.tmp[:b], hb)
        hb[:, self.h1 :] = 0.0  # wave 0 is layer 1's first step only
        gm[0, :, self.h1 :] = 0.0
        self._run(enc, b, xp, 0, out)

    @staticmethod
    def _cell(gm: np.ndarray, p: np.ndarray, tmp: np.ndarray, h_out: np.ndarray) -> None:
        """Gates in ``gm[1:]`` (f, i, o pre-halved) -> ``c`` in ``gm[0]``, ``h`` in ``h_out``."""
        gates, fio = gm[1:], gm[2:]
        np.tanh(gates, out=gates)  # tanh(g), tanh(f/2), tanh(i/2), tanh(o/2)
        np.multiply(fio, 0.5, out=fio)
        np.add(fio, 0.5, out=fio)  # sigmoid(f), sigmoid(i), sigmoid(o)
        np.multiply(gm[:2], gm[2:4], out=p)  # [f * c, i * tanh(g)]
        np.add(p[0], p[1], out=gm[0])  # c
        np.tanh(gm[0], out=tmp)
        np.multiply(gm[4], tmp, out=h_out)  # h = o * tanh(c)

    def _run(self, enc: NumpyEncoder, b: int, xp: np.ndarray, first: int, out: np.ndarray) -> None:
        """Waves 1 .. T on the first ``b`` rows; ``xp[:, t - first]`` is step ``t``'s input."""
        gm, hb, m = self.gm[:, :b], self.hb[:b], enc._gm_h
        gates, p, tmp = gm[1:], self.p[:, :b], self.tmp[:b]
        blocks = self._blocks(b)
        for t in range(1, self.window):
            for rows in blocks:
                np.matmul(hb[rows], m, out=gates[:, rows])
            np.add(gates, xp[:, t - first], out=gates)
            self._cell(gm, p, tmp, hb)
        gml, m = self.gml[:, :b], enc._gm_h_last
        np.copyto(gml[0], gm[0, :, self.h1 :])
        for rows in blocks:
            np.matmul(hb[rows], m, out=gml[1:, rows])
        np.add(gml[1:], enc._gm_b_last, out=gml[1:])
        self._cell(gml, self.pl[:, :b], self.tmpl[:b], out)


class NumpyEncoder:
    """Batched NumPy inference of the session encoder's two LSTM layers.

    Computes the code ``h_T`` of the second LSTM, what ``SessionAutoencoder.encode``
    computes in PyTorch (float32, within ~1e-6), without importing torch.

    Thread-safe: the weights and track tables are read-only once bound, and the work
    buffers that calls reuse are kept per thread (environments on one world share its
    encoder, and may step in different threads).

    Attributes:
        feature_dim: Input features per play (``d + 1``).
        code_dim: Size of the code (equal to ``feature_dim`` for ``SessionAutoencoder``).
        n_tracks: Tracks bound by :meth:`bind_tracks` (0 before).
    """

    def __init__(self, weights: Mapping[str, np.ndarray], source: str = "weights") -> None:
        """Build an encoder from weights in the layout of :data:`WEIGHT_KEYS`.

        Args:
            weights: The six arrays (extra keys are ignored).
            source: Names the weights' origin in error messages (a path, usually).

        Raises:
            ArtifactError: A key is missing, or an array has the wrong shape, a
                non-float dtype or non-finite values (names ``source`` and the key).
        """
        w = self._checked(weights, source)
        h1 = w["l1_w_hh"].shape[1]
        h2 = w["l2_w_hh"].shape[1]
        h = h1 + h2
        self.feature_dim: int = w["l1_w_ih"].shape[1]
        self.code_dim: int = h2
        self.n_tracks: int = 0
        self._h1, self._h2 = h1, h2
        self._w = w
        f = self.feature_dim
        # Row path: (1 + tanh(a/2)) / 2 = sigmoid(a), so f, i, o are pre-scaled by 1/2.
        m = self._fused(w, (1.0, 0.5, 0.5, 0.5), 1.0)
        self._row_m = m.reshape(h + f + 1, 4 * h).astype(np.float32)
        self._row_half = np.full(3 * h, 0.5, np.float32)
        # Gate path: the same scaled weights, gate-major.
        m = self._fused(w, (1.0, 0.5, 0.5, 0.5), 1.0).transpose(1, 0, 2)  # (4, K, H)
        self._gm_x64 = m[:, h:]
        self._gm_h = np.ascontiguousarray(m[:, :h], np.float32)
        self._gm_x = np.ascontiguousarray(m[:, h:], np.float32)  # rows [x | 1]
        self._gm_h_last = np.ascontiguousarray(m[:, :h, h1:], np.float32)
        self._gm_b_last = np.ascontiguousarray(m[:, -1:, h1:], np.float32)  # (4, 1, H2)
        self._local = threading.local()  # per thread: {(size, window): plan}
        self._features = np.zeros((0, f), np.float32)  # [vector, flag] per (track, flag)
        self._state0 = np.zeros((0, 2 * h), np.float32)  # [h, c] after layer 1's first step
        self._gm_table = np.zeros((4, 0, h), np.float32)  # gate path input projections

    @property
    def _plans(self) -> dict[tuple[int, int], _RowPlan | _GatePlan]:
        """This thread's plans (work buffers), built on demand."""
        plans = getattr(self._local, "plans", None)
        if plans is None:
            plans = self._local.plans = {}
        return plans

    def __getstate__(self) -> dict[str, Any]:
        # The plans hold views of their own buffers, which copy.deepcopy and pickle
        # would turn into separate arrays (and thread-locals do not pickle): drop
        # them, they are rebuilt on demand.
        return {k: v for k, v in self.__dict__.items() if k != "_local"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    # ---------------------------------------------------------------- construction

    @classmethod
    def load(cls, path: str | Path) -> NumpyEncoder:
        """Load the weights written by ``export_numpy``.

        Args:
            path: The ``.npz`` file.

        Returns:
            The encoder.

        Raises:
            ArtifactError: The file is missing, is not an ``.npz`` archive, lacks a key
                or holds an array of the wrong shape (names the path and the key).
        """
        path = Path(path)
        expected = f"expected the session encoder's weights ({', '.join(WEIGHT_KEYS)})"
        if not path.is_file():
            raise ArtifactError(f"{path}: no such file; {expected} written by export_numpy")
        try:
            archive = np.load(path, allow_pickle=False)
        except Exception as exc:
            raise ArtifactError(f"{path}: not a NumPy .npz archive ({exc}); {expected}") from exc
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ArtifactError(f"{path}: a single .npy array, not an .npz archive; {expected}")
        with archive:
            arrays = {}
            for key in WEIGHT_KEYS:
                if key not in archive.files:
                    raise ArtifactError(f"{path}: missing key {key!r}; {expected}")
                try:
                    arrays[key] = archive[key]
                except Exception as exc:
                    raise ArtifactError(f"{path}: key {key!r} is unreadable ({exc})") from exc
        return cls(arrays, source=str(path))

    @staticmethod
    def _checked(weights: Mapping[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for key in WEIGHT_KEYS:
            if key not in weights:
                raise ArtifactError(f"{source}: missing key {key!r}")
            a = np.asarray(weights[key])
            if a.dtype.kind != "f":
                raise ArtifactError(f"{source}: key {key!r} has dtype {a.dtype}, expected float")
            if not np.isfinite(a).all():
                raise ArtifactError(f"{source}: key {key!r} holds NaN or infinite values")
            out[key] = a.astype(np.float64)
        w_ih1 = out["l1_w_ih"]
        if w_ih1.ndim != 2 or w_ih1.shape[0] % 4 or min(w_ih1.shape) == 0:
            raise ArtifactError(
                f"{source}: key 'l1_w_ih' has shape {w_ih1.shape}; expected (4*H1, F)"
            )
        h1, f = w_ih1.shape[0] // 4, w_ih1.shape[1]
        w_ih2 = out["l2_w_ih"]
        if w_ih2.ndim != 2 or w_ih2.shape[0] % 4 or w_ih2.shape[0] == 0:
            raise ArtifactError(
                f"{source}: key 'l2_w_ih' has shape {w_ih2.shape}; expected (4*H2, {h1})"
            )
        h2 = w_ih2.shape[0] // 4
        shapes = {
            "l1_w_hh": (4 * h1, h1),
            "l1_b": (4 * h1,),
            "l2_w_ih": (4 * h2, h1),
            "l2_w_hh": (4 * h2, h2),
            "l2_b": (4 * h2,),
        }
        for key, shape in shapes.items():
            if out[key].shape != shape:
                raise ArtifactError(
                    f"{source}: key {key!r} has shape {out[key].shape}; expected {shape} "
                    f"(F={f}, H1={h1} from 'l1_w_ih', H2={h2} from 'l2_w_ih')"
                )
        return out

    def _fused(
        self, w: dict[str, np.ndarray], scale: tuple[float, ...], h_scale: float
    ) -> np.ndarray:
        """The wavefront weights ``(K, 4, H)``: rows ``[h1 | h2 | x | 1]``, gates (g, f, i, o).

        Gate ``k``'s columns are ``[layer 1 (H1) | layer 2 (H2)]``, scaled by
        ``scale[k]``; the ``h`` rows are also scaled by ``h_scale``. In float64.
        """
        h1, h2, f = self._h1, self._h2, self.feature_dim
        h = h1 + h2
        m = np.zeros((h + f + 1, 4, h))
        for k, tk in enumerate(_TORCH_BLOCK):
            s = scale[k]
            r1, r2 = slice(tk * h1, (tk + 1) * h1), slice(tk * h2, (tk + 1) * h2)
            m[:h1, k, :h1] = w["l1_w_hh"][r1].T * s
            m[:h1, k, h1:] = w["l2_w_ih"][r2].T * s
            m[h1:h, k, h1:] = w["l2_w_hh"][r2].T * s
            m[h : h + f, k, :h1] = w["l1_w_ih"][r1].T * s
            m[h + f, k, :h1] = w["l1_b"][r1] * s
            m[h + f, k, h1:] = w["l2_b"][r2] * s
        m[:h] *= h_scale
        return m

    def bind_tracks(self, vectors: np.ndarray) -> None:
        """Precompute the per-track tables :meth:`encode_ids` looks up.

        For each (track, listened) pair: its input features ``[vector, flag]`` and the
        state of layer 1 after its first step (which starts from zeros, so depends on
        that play alone). Memory: ``2 * n_tracks * (2 F + 2 H + 1)`` float32s, with
        ``H`` the two layers' hidden units (``H = 3 F`` for ``SessionAutoencoder``).

        Args:
            vectors: Track embeddings, ``(n_tracks, feature_dim - 1)``.

        Raises:
            DataFormatError: ``vectors`` has the wrong shape or non-finite values.
        """
        vectors = np.asarray(vectors)
        d = self.feature_dim - 1
        if vectors.ndim != 2 or vectors.shape[1] != d or vectors.dtype.kind not in "iuf":
            raise DataFormatError(
                f"`vectors` must be a numeric (n_tracks, {d}) array, got {vectors.dtype} "
                f"with shape {vectors.shape}"
            )
        if not np.isfinite(vectors).all():
            raise DataFormatError("`vectors` holds NaN or infinite values")
        n = vectors.shape[0]
        feats = np.ones((n, 2, d + 2))
        feats[:, :, :d] = vectors[:, None, :]
        feats[:, 0, d] = 0.0
        feats = feats.reshape(2 * n, d + 2)  # [vector, flag, 1]
        # Layer 1, first step, in float64: c = s(i) tanh(g), h = s(o) tanh(c).
        w = self._w
        h1, h = self._h1, self._h1 + self._h2
        pre = feats[:, :-1] @ w["l1_w_ih"].T + w["l1_b"]
        gate_i, _, gate_g, gate_o = (pre[:, k * h1 : (k + 1) * h1] for k in range(4))
        c = _sigmoid(gate_i) * np.tanh(gate_g)
        state = np.zeros((2 * n, 2 * h))
        state[:, :h1] = _sigmoid(gate_o) * np.tanh(c)
        state[:, h : h + h1] = c
        self._features = feats[:, :-1].astype(np.float32)
        self._state0 = state.astype(np.float32)
        self._gm_table = (feats @ self._gm_x64).astype(np.float32)
        self.n_tracks = n

    # ---------------------------------------------------------------- inference

    def _plan(self, batch: int, window: int) -> _RowPlan | _GatePlan:
        # Row plans fit their batch exactly; gate plans serve every batch up to the next
        # power of two, so that autoresets' varying batches share a few of them.
        size = batch if batch <= _SMALL_BATCH else 1 << (batch - 1).bit_length()
        plan = self._plans.get((size, window))
        if plan is None:
            if len(self._plans) >= _MAX_PLANS:
                del self._plans[next(iter(self._plans))]
            kind = _RowPlan if batch <= _SMALL_BATCH else _GatePlan
            plan = self._plans[size, window] = kind(self, size, window)
        return plan

    def _result(self, batch: int, out: np.ndarray | None) -> np.ndarray:
        if out is None:
            return np.empty((batch, self.code_dim), np.float32)
        result = out[None] if out.ndim == 1 else out
        if result.shape != (batch, self.code_dim) or result.dtype != np.float32:
            raise DataFormatError(
                f"`out` must be float32 with shape ({batch}, {self.code_dim}), got "
                f"{out.dtype} {out.shape}"
            )
        return result

    def encode(self, windows: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Encode session windows.

        Args:
            windows: ``(B, T, F)`` or one window ``(T, F)``; ``T`` is usually
                :data:`musicrec_gym.encoder.WINDOW` (any ``T >= 1`` works).
            out: Optional float32 array of the result's shape to write into.

        Returns:
            float32 codes, ``(B, code_dim)`` (or ``(code_dim,)`` for one window).

        Raises:
            DataFormatError: ``windows`` or ``out`` has the wrong shape.
        """
        x = np.asarray(windows)
        single = x.ndim == 2
        if single:
            x = x[None]
        if x.ndim != 3 or x.shape[1] < 1 or x.shape[2] != self.feature_dim:
            raise DataFormatError(
                f"`windows` must have shape (B, T, {self.feature_dim}) or (T, "
                f"{self.feature_dim}), got {np.shape(windows)}"
            )
        batch, window = x.shape[0], x.shape[1]
        result = self._result(batch, out)
        if batch:
            plan = self._plan(batch, window)
            if isinstance(plan, _RowPlan):
                plan.load_windows(x)
                plan.run(result)
            else:
                plan.encode(self, x, result)
        return result[0] if single else result

    def encode_ids(
        self, track_idx: np.ndarray, listened: np.ndarray, out: np.ndarray | None = None
    ) -> np.ndarray:
        """Encode windows given as track rows and flags (the environment's hot path).

        Equal to ``encode(windows)`` with ``windows[b, t] = [vectors[track_idx[b, t]],
        listened[b, t]]`` (within 1e-6), but faster: table lookups replace the first
        layer's input projection and its whole first step. Track rows index like NumPy
        (``-1`` is the last track); any nonzero flag counts as listened.

        Args:
            track_idx: Integer track rows, ``(B, T)`` or ``(T,)``.
            listened: Flags of the same shape.
            out: Optional float32 array of the result's shape to write into.

        Returns:
            float32 codes, ``(B, code_dim)`` (or ``(code_dim,)``).

        Raises:
            ArtifactError: :meth:`bind_tracks` was not called.
            DataFormatError: Shapes differ or are not 1-/2-D, a track row is out of range,
                ``track_idx`` is not integer, or ``out`` has the wrong shape.
        """
        tracks = np.asarray(track_idx)
        flags = np.asarray(listened)
        single = tracks.ndim == 1
        if single:
            tracks = tracks[None]
            flags = flags[None]
        if tracks.ndim != 2 or tracks.shape != flags.shape or tracks.shape[1] < 1:
            raise DataFormatError(
                "`track_idx` and `listened` must both have shape (B, T) or (T,), got "
                f"{np.shape(track_idx)} and {np.shape(listened)}"
            )
        if not self.n_tracks:
            raise ArtifactError("no track vectors bound: call bind_tracks(vectors) first")
        batch, window = tracks.shape
        result = self._result(batch, out)
        if not batch:
            return result[0] if single else result
        plan = self._plan(batch, window)
        code, flag = plan.code[:batch], plan.flag[:batch]
        try:
            np.multiply(tracks, 2, code)
            np.not_equal(flags, 0, flag)
            np.add(code, flag, code)
            if isinstance(plan, _RowPlan):
                plan.load_ids(self, code.T)
                plan.run(result)
            else:
                plan.encode_ids(self, code.T, result)
        except IndexError:
            raise DataFormatError(
                f"`track_idx` holds a row outside [-{self.n_tracks}, {self.n_tracks})"
            ) from None
        except TypeError as exc:
            raise DataFormatError(f"`track_idx` must be integer, got {tracks.dtype}") from exc
        return result[0] if single else result
