"""The exact optimal slate (``musicrec_gym.slate_choice``) against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from musicrec_gym.errors import ConfigError
from musicrec_gym.slate_choice import (
    SlateChoice,
    check_slate_size,
    optimal_slates,
    optimal_slates_ordered,
    top_k,
)


def brute_force(u: np.ndarray, r: np.ndarray, k: int, no_pick: float) -> float:
    """The reference: the best expected reward over every slate of ``k`` distinct tracks."""
    w, w0 = np.exp(u), np.exp(no_pick)
    best = -np.inf
    for s in itertools.combinations(range(len(u)), k):
        idx = list(s)
        best = max(best, float((w[idx] * r[idx]).sum() / (w0 + w[idx].sum())))
    return best


def slate_value(u: np.ndarray, r: np.ndarray, slate: np.ndarray, no_pick: float) -> float:
    w = np.exp(u[slate])
    return float((w * r[slate]).sum() / (np.exp(no_pick) + w.sum()))


@pytest.mark.parametrize("reward_kind", ["listen", "signed", "ties"])
def test_optimum_equals_brute_force(reward_kind: str) -> None:
    rng = np.random.default_rng(18)
    cases = 0
    for _ in range(150):
        n = int(rng.integers(2, 10))
        k = int(rng.integers(1, n + 1))
        no_pick = float(rng.normal(0, 2))
        u = rng.normal(0, 2, size=n)  # negative utilities too
        if reward_kind == "listen":
            r = rng.random(n)
        elif reward_kind == "signed":  # the event mode: a skip is worth -1
            r = rng.uniform(-1, 4, size=n)
        else:  # ties in utility and in reward
            u = rng.integers(-2, 3, size=n).astype(float)
            r = rng.integers(0, 3, size=n) / 2.0
        slates, values = optimal_slates(u[None], r[None], k, no_pick)
        expected = brute_force(u, r, k, no_pick)
        assert values[0] == pytest.approx(expected, rel=1e-12, abs=1e-12)
        assert len(set(slates[0].tolist())) == k
        assert slate_value(u, r, slates[0], no_pick) == pytest.approx(values[0], abs=1e-12)
        cases += 1
    assert cases == 150


@pytest.mark.parametrize("ties", [False, True])
def test_ordered_optimum_equals_brute_force(ties: bool) -> None:
    """The environment's case: ``w = exp(scale l)``, ``r = a + b sigmoid(l)``, any constants."""
    rng = np.random.default_rng(7)
    for _ in range(400):
        n = int(rng.integers(1, 10))
        k = int(rng.integers(1, n + 1))  # both the disjoint ends (2k <= n) and the rest
        scale, no_pick = float(rng.uniform(0.1, 4)), float(rng.normal(0, 3))
        a, b = float(rng.uniform(-2, 2)), float(rng.uniform(0.1, 5))  # every reward mode's kind
        logit = rng.integers(-2, 3, size=n).astype(float) if ties else rng.normal(0, 3, size=n)
        u, r = scale * logit, a + b / (1 + np.exp(-logit))
        slates, values = optimal_slates_ordered(u[None], r[None], k, no_pick)
        expected = brute_force(u, r, k, no_pick)
        assert values[0] == pytest.approx(expected, rel=1e-9, abs=1e-12)
        assert len(set(slates[0].tolist())) == k
        assert slate_value(u, r, slates[0], no_pick) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_ordered_optimum_equals_dinkelbach_at_scale() -> None:
    rng = np.random.default_rng(8)
    logit = rng.normal(-2, 2.5, size=(64, 1000))
    r = 1 / (1 + np.exp(-logit))
    for k in (1, 5, 20):
        _, fast = optimal_slates_ordered(logit, r, k, 0.0)
        _, dinkelbach = optimal_slates(logit, r, k, 0.0)
        np.testing.assert_allclose(fast, dinkelbach, rtol=1e-12)


def test_optimum_vectorised_over_rows_and_blocked() -> None:
    rng = np.random.default_rng(3)
    b, n, k = 40, 8, 3
    u, r = rng.normal(0, 1.5, (b, n)), rng.random((b, n))
    blocked = rng.random((b, n)) < 0.3
    blocked[:, :k] = False  # at least k allowed per row
    slates, values = optimal_slates(u, r, k, 0.5, blocked=blocked)
    for i in range(b):
        allowed = np.flatnonzero(~blocked[i])
        expected = brute_force(u[i, allowed], r[i, allowed], k, 0.5)
        assert values[i] == pytest.approx(expected, rel=1e-12)
        assert not blocked[i, slates[i]].any()


def test_optimum_beats_top_k_by_reward() -> None:
    """The optimum can differ from the k best rewards: a weak-but-likely pick matters."""
    u = np.array([[-3.0, 2.0, 2.0, 0.0]])
    r = np.array([[1.0, 0.5, 0.5, 0.1]])
    slates, values = optimal_slates(u, r, 2, 0.0)
    assert set(slates[0].tolist()) == {1, 2}
    assert values[0] > slate_value(u[0], r[0], top_k(r, 2)[0], 0.0)


def test_choice_probabilities_and_draw() -> None:
    choice = SlateChoice(scale=1.0, no_pick=0.0)
    probs = choice.probabilities(np.log([[1.0, 2.0]]))
    np.testing.assert_allclose(probs, [[0.25, 0.5, 0.25]])
    u = np.array([0.0, 0.24, 0.25, 0.74, 0.75, 0.99])
    picked = choice.draw(np.repeat(probs, len(u), axis=0), u)
    assert picked.tolist() == [0, 0, 1, 1, -1, -1]
    # utilities invert the listen probability: scale * logit(p)
    np.testing.assert_allclose(SlateChoice(scale=2.0).utilities([0.5, 0.8]), [0.0, 2 * np.log(4)])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"scale": 0.0}, "`scale` must be a number > 0"),
        ({"scale": "1"}, "`scale` must be a number"),
        ({"no_pick": float("nan")}, "`no_pick` must be finite"),
        ({"reward_b": -1.0}, "`reward_b` must be > 0"),
    ],
)
def test_choice_bad_input(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        SlateChoice(**kwargs)


@pytest.mark.parametrize(
    ("slate", "match"),
    [
        (0, "an int >= 1"),
        (2.5, "an int >= 1"),
        (True, "an int >= 1"),
        (11, "larger than the catalog"),
    ],
)
def test_slate_size_bad_input(slate: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        check_slate_size(slate, 10)
