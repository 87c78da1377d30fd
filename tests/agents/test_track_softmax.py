"""The fused softmax over tracks (``agents.track_softmax``) and the PPO distribution on it."""

import os
import subprocess
import sys

import numba
import numpy as np
import pytest
import torch as th

from agents.embedding_heads import EmbeddingHead, FusedCategorical, TakenLogProb
from agents.track_softmax import LOGIT_FLOOR, TrackSoftmax, _shift_exp, sample_tracks


def _problem(rows=70, k=6, n=37, seed=0):
    """A projected latent, features, bias, actions, a mask allowing the taken actions."""
    gen = th.Generator().manual_seed(seed)
    state = (th.randn(rows, k, generator=gen) * 1.5).requires_grad_(True)
    features = th.randn(n, k, generator=gen)
    bias = (th.randn(n, generator=gen) * 0.5).requires_grad_(True)
    actions = th.randint(0, n, (rows,), generator=gen)
    allowed = th.rand(rows, n, generator=gen) > 0.4
    allowed[th.arange(rows), actions] = True
    return state, features, bias, actions, allowed


def _leaves(*tensors):
    """Fresh leaf copies that collect gradients."""
    return [t.detach().clone().requires_grad_(True) for t in tensors]


def _reference(state, features, bias, actions, allowed, w_lp, w_h):
    """Values and gradients in float64 through materialised logits and ``TakenLogProb``."""
    s64 = state.detach().double().requires_grad_(True)
    b64 = bias.detach().double().requires_grad_(True)
    logits = s64 @ features.double().T + b64
    if allowed is not None:
        logits = th.where(allowed, logits, -th.inf)
    log_prob, entropy = TakenLogProb.apply(logits, actions)
    ((log_prob * w_lp.double()).sum() + (entropy * w_h.double()).sum()).backward()
    return log_prob.detach(), entropy.detach(), s64.grad, b64.grad


@pytest.mark.parametrize("masked", [False, True])
def test_values_and_gradients_match_the_float64_softmax(masked):
    """Log-probabilities, entropies, dA and db: float64's, to float32 rounding."""
    state, features, bias, actions, allowed = _problem()
    mask = allowed if masked else None
    gen = th.Generator().manual_seed(1)
    w_lp, w_h = th.randn(len(state), generator=gen), th.randn(len(state), generator=gen)
    log_prob, entropy = TrackSoftmax.apply(state, bias, features, mask, actions)
    ((log_prob * w_lp).sum() + (entropy * w_h).sum()).backward()
    ref = _reference(state, features, bias, actions, mask, w_lp, w_h)
    for got, want in zip((log_prob, entropy, state.grad, bias.grad), ref, strict=True):
        assert th.allclose(got.double(), want, atol=2e-5, rtol=1e-5)
    if masked:  # a blocked track gets no gradient: its bias grad is only from open rows
        closed = ~allowed.any(dim=0)
        assert (bias.grad[closed] == 0).all()


def test_one_output_at_a_time_and_a_blocked_taken_track():
    """Each output's gradient alone; a blocked taken track gets ``LOGIT_FLOOR``.

    The blocked taken track adds no gradient of its own (its row's log-probability term is
    left out of the comparison: the reference's gradient there is through -inf).
    """
    state, features, bias, actions, allowed = _problem(rows=5, n=9, seed=2)
    allowed[0, actions[0]] = False
    allowed[0, (actions[0] + 1) % 9] = True
    for use in (0, 1):
        s, b = _leaves(state, bias)
        out = TrackSoftmax.apply(s, b, features, allowed, actions)
        out[use].sum().backward()
        w = th.zeros(5)
        ref = _reference(s, features, b, actions, allowed, w + (use == 0), w + (use == 1))
        assert th.allclose(s.grad.double()[1:], ref[2][1:], atol=2e-5)
        if use == 1:
            assert th.allclose(s.grad.double(), ref[2], atol=2e-5)
    assert out[0][0] == LOGIT_FLOOR


def test_results_do_not_depend_on_the_number_of_threads():
    """Fixed row chunks and an ordered sum of the bias gradient: same bits on 1 or 2 threads."""
    state, features, bias, actions, allowed = _problem(rows=200, n=300)
    results = []
    before = numba.get_num_threads()
    try:
        for threads in (1, numba.config.NUMBA_NUM_THREADS):
            numba.set_num_threads(threads)
            s, b = _leaves(state, bias)
            lp, h = TrackSoftmax.apply(s, b, features, allowed, actions)
            (lp.sum() + h.sum()).backward()
            th.manual_seed(5)
            drawn = sample_tracks(s.detach(), b.detach(), features, allowed)
            results.append((lp, h, s.grad, b.grad, *drawn))
    finally:
        numba.set_num_threads(before)
    assert all(th.equal(x, y) for x, y in zip(*results, strict=True))


def _misaligned(tensor, offset):
    """A copy of ``tensor`` whose data starts ``offset`` elements into a fresh buffer."""
    flat = th.empty(tensor.numel() + offset, dtype=tensor.dtype)
    return flat[offset:].view(tensor.shape).copy_(tensor)


def test_results_do_not_depend_on_where_the_arrays_sit_in_memory():
    """The same bits whatever the inputs' alignment in memory (one process, one compile).

    A run must repeat itself bit for bit, as the README's contract says; inputs that sit
    elsewhere in memory must not change a vectorised sum's order.
    """
    state, features, bias, actions, allowed = _problem(rows=40, n=1000)
    results = []
    for offset in (0, 1, 3, 7):
        s = _misaligned(state.detach(), offset).requires_grad_(True)
        b = _misaligned(bias.detach(), offset).requires_grad_(True)
        f = _misaligned(features, offset)
        lp, h = TrackSoftmax.apply(s, b, f, allowed, actions)
        (lp.sum() * 0.3 + h.sum()).backward()
        th.manual_seed(2)
        drawn = sample_tracks(s.detach(), b.detach(), f, allowed)
        results.append((lp, h, s.grad, b.grad, *drawn))
    for other in results[1:]:
        assert all(th.equal(x, y) for x, y in zip(results[0], other, strict=True))


_BITS_SCRIPT = """
import sys, torch as th
from agents.track_softmax import TrackSoftmax, sample_tracks
gen = th.Generator().manual_seed(0)
x = th.randn(70, 10, generator=gen).requires_grad_(True)
f, b = th.randn(1000, 10, generator=gen), th.randn(1000, generator=gen).requires_grad_(True)
a = th.randint(0, 1000, (70,), generator=gen)
lp, h = TrackSoftmax.apply(x, b, f, None, a)
(lp.sum() * 0.7 + h.sum()).backward()
th.manual_seed(3)
th.save([lp, h, x.grad, b.grad, *sample_tracks(x.detach(), b.detach(), f, None)], sys.argv[1])
"""


def test_two_processes_give_the_same_bits_and_nothing_is_cached(tmp_path):
    """Each process compiles the kernels afresh, so every run on a machine has the same bits.

    numba's cached code gave other bits than a fresh compile (``fastmath`` reassociation),
    so a machine's first run differed from its later ones; the kernels are not cached.
    """
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    outputs = []
    for run in ("first", "second"):
        out = tmp_path / f"{run}.pt"
        subprocess.run([sys.executable, "-c", _BITS_SCRIPT, str(out)], env=env, check=True)
        outputs.append(th.load(out))
    assert not any((tmp_path / "numba").rglob("track_softmax*"))
    assert all(th.equal(x, y) for x, y in zip(*outputs, strict=True))


def test_the_polynomial_exp_is_within_float32_rounding():
    z = np.linspace(-86.0, 0.0, 20_001, dtype=np.float32)
    e = np.empty_like(z)
    bits = np.empty(len(z), np.int32)
    work = z.copy()
    _shift_exp(work, np.float32(0.0), e, bits)
    want = np.exp(z.astype(np.float64))
    rel = np.abs(e / want - 1)
    assert rel[z >= -5].max() < 4e-7 and rel.max() < 5e-6  # float32's rounding of z log2(e)
    deep = np.array([-90.0, -200.0, -1e9], dtype=np.float32)  # far below the row's best
    e3 = np.empty(3, np.float32)
    _shift_exp(deep.copy(), np.float32(0.0), e3, np.empty(3, np.int32))
    assert (e3 > 0).all() and (e3 < 2e-38).all()


def test_draws_follow_the_softmax_and_never_a_blocked_track():
    features = th.eye(5)
    bias = th.tensor([2.0, 1.0, 0.0, -1.0, 3.0])
    state = th.zeros(40_000, 5)
    allowed = th.ones(40_000, 5, dtype=th.bool)
    allowed[:, 4] = False
    th.manual_seed(0)
    actions, log_prob = sample_tracks(state, bias, features, allowed)
    freq = th.bincount(actions, minlength=5).double() / len(actions)
    probs = th.softmax(th.where(allowed[0], bias, -th.inf).double(), dim=0)
    assert th.allclose(freq, probs, atol=0.01) and freq[4] == 0
    assert th.allclose(log_prob.double(), probs.log()[actions], atol=1e-6)
    th.manual_seed(0)
    assert th.equal(sample_tracks(state, bias, features, allowed)[0], actions)  # seeded


def test_a_row_with_every_track_blocked_is_an_error():
    state, features, bias, actions, allowed = _problem(rows=3, n=4)
    allowed[1] = False
    with pytest.raises(ValueError, match="blocks every track"):
        TrackSoftmax.apply(state, bias, features, allowed, actions)


def test_the_distribution_agrees_with_the_materialised_one():
    """``FusedCategorical`` gives ``GumbelCategorical``'s values on the head's logits.

    The same log-probabilities, entropies, mode and probabilities; float64 falls back to
    that path.
    """
    head = EmbeddingHead(latent_dim=4, n_tracks=11, feature_dim=3)
    head.set_features(np.random.default_rng(0).normal(size=(11, 3)))
    with th.no_grad():
        head.track_bias.normal_()
        head.proj.weight.normal_()
    latent = th.randn(8, 4)
    allowed = th.rand(8, 11) > 0.3
    allowed[:, 0] = True
    actions = th.randint(0, 11, (8,))
    actions[~allowed[th.arange(8), actions]] = 0
    fused = FusedCategorical(11).from_head(head, latent, allowed)
    plain = FusedCategorical(11).proba_distribution(th.where(allowed, head(latent), -th.inf))
    assert fused.logits is not None and th.allclose(fused.logits, plain.logits)
    assert th.allclose(fused.log_prob(actions), plain.log_prob(actions), atol=1e-5)
    assert th.allclose(fused.entropy(), plain.entropy(), atol=1e-5)
    assert th.equal(fused.mode(), plain.mode())
    assert th.allclose(fused.distribution.probs.sum(dim=1), th.ones(8))
    with th.no_grad():
        drawn = fused.sample()
        assert allowed[th.arange(8), drawn].all()
        assert th.allclose(fused.log_prob(drawn), plain.log_prob(drawn), atol=1e-5)
    as64 = FusedCategorical(11).from_head(head.double(), latent.double())
    assert as64._head is None and as64.logits.dtype == th.float64  # GumbelCategorical's path
