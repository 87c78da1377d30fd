"""The optimal return of the long-term world (satisfaction on): DP, bound, planner, CLI."""

import dataclasses
import json

import numpy as np
import pytest

from musicrec_gym.cli import main
from musicrec_gym.errors import ConfigError
from musicrec_gym.optimum import weighted_return, world_params
from musicrec_gym.optimum_exact import greedy_policy, optimal_value, policy_value
from musicrec_gym.optimum_kernels import kind_candidates, survive_states, transitions
from musicrec_gym.optimum_long import long_term_bound, session_bound
from musicrec_gym.optimum_model import (
    SessionStart,
    greedy_values,
    played_values,
    state_index,
    state_survival,
    state_values,
    upper_bound,
)
from musicrec_gym.optimum_plan import Planner, PlanState
from musicrec_gym.optimum_search import OpenLoopSearch
from musicrec_gym.sim.constants import WINDOW
from musicrec_gym.sim.params import SatisfactionParams
from musicrec_gym.world import load_world, make_simulator
from tests.test_optimum import SmallWorld, started, tiny_world


def long_term_tiny(seed, k=2, weight=0.4, levels=2):
    """The tiny world with satisfaction: track 0 popular, 1-2 neutral, 3-4 discoveries."""
    truth, artist, _, params = tiny_world(seed, k)
    sat = SatisfactionParams(enabled=True, weight=weight, levels=levels)
    return (
        truth,
        artist,
        np.array([0.4, 0.3, 0.2, 0.1, 0.0]),
        dataclasses.replace(params, satisfaction=sat),
    )


# (world seed, skip_window, weight, levels); greedy is strictly suboptimal in each
LONG_CASES = [(3, 2, 0.4, 2), (8, 3, 0.4, 2), (21, 1, 0.3, 3)]


@pytest.mark.parametrize("case", LONG_CASES, ids=lambda c: f"world{c[0]}-k{c[1]}")
def test_planner_equals_exact_dp_on_tiny_long_term_worlds(case):
    seed, k, weight, levels = case
    world = long_term_tiny(seed, k, weight, levels)
    n = 3
    seeds = np.arange(n)
    sim = started(world, n, seeds)
    assert list(sim.track_kind) == [-1, 0, 0, 1, 1]
    bound = session_bound(sim, SessionStart.from_simulator(sim))
    greedy_exact, _ = greedy_values(started(world, n, seeds))
    _, open_loop = OpenLoopSearch().plans(started(world, n, seeds))
    full = Planner(top_k=5, depth=4, per_kind=5)  # every track, to the horizon
    gaps = []
    for i in range(n):
        dp = optimal_value(sim, i)
        assert policy_value(sim, i, full.actions) == pytest.approx(dp, abs=1e-9)
        greedy = policy_value(sim, i, greedy_policy)
        assert greedy_exact[i] == pytest.approx(greedy, abs=1e-9)  # state programme = tree
        assert greedy - 1e-9 <= open_loop[i] <= dp + 1e-9
        assert policy_value(sim, i, Planner(1, 1).actions) <= dp + 1e-12
        assert dp <= bound[i] + 1e-12
        gaps.append(dp - greedy)
    assert max(gaps) > 1e-2  # the greedy oracle is strictly suboptimal here


@pytest.fixture(scope="module")
def small():
    world = SmallWorld()
    world.params = dataclasses.replace(
        world.params, satisfaction=dataclasses.replace(world.params.satisfaction, enabled=True)
    )
    return world


def test_planner_model_tracks_the_simulators_satisfaction(small):
    n = 200
    sim = small.sim(n, np.arange(n))
    rng = np.random.default_rng(0)
    k, levels = sim.params.leave.skip_window, sim.params.satisfaction.levels
    next1, next0 = transitions(2**k, levels)
    table = kind_candidates(sim, 16)
    assert np.array_equal(table.kind, sim.track_kind[table.index])
    surv = np.empty(next0.shape[0])
    for _ in range(sim.max_steps):
        x = state_index(sim, sim.win_listened[:, WINDOW - k :], sim.satisfaction)
        planned = Planner(1, 2, per_kind=16).actions(sim)
        actions = np.where(rng.random(n) < 0.5, sim.opt_action, planned)
        actions = np.where(rng.random(n) < 0.2, sim.hist[:, 0], actions)  # some repeats
        repeated = (sim.hist == actions[:, None]).any(axis=1)
        delta = np.where(repeated, -1, sim.track_kind[actions])
        result = sim.step(actions)
        after = state_index(sim, sim.win_listened[:, WINDOW - k :], sim.satisfaction)
        model = np.where(result.listened, next1[x, delta + 1], next0[x])
        assert np.array_equal(model, after)
        hazard = sim.leave.hazard(
            sim.user, sim.win_listened[:, WINDOW - k :], sim.satisfaction,
            sim.params.satisfaction.weight,
        )  # fmt: skip
        table_stay = state_survival(sim, sim.user)[np.arange(n), after]
        assert np.allclose(table_stay, 1.0 - hazard, rtol=0, atol=1e-15)
        for i in range(0, n, 37):
            survive_states(sim.leave.base_rate[sim.user[i]], sim.params.leave.per_skip, k,
                           levels, sim.params.satisfaction.weight, surv)  # fmt: skip
            assert surv[after[i]] == pytest.approx(1.0 - hazard[i], abs=1e-15)


def test_open_loop_values_are_the_simulators(small):
    n = 100
    tracks, values = OpenLoopSearch(rounds=200).plans(small.sim(n, np.arange(n)))
    sim = small.sim(n, np.arange(n))
    start = SessionStart.from_simulator(sim)
    k, levels = sim.params.leave.skip_window, sim.params.satisfaction.levels
    p, delta = np.empty((n, sim.max_steps)), np.empty((n, sim.max_steps), np.int64)
    for t in range(sim.max_steps):
        repeated = (sim.hist == tracks[:, t, None]).any(axis=1)
        delta[:, t] = np.where(repeated, -1, sim.track_kind[tracks[:, t]])
        p[:, t] = sim.step(tracks[:, t]).expected_reward
    x0 = state_index(sim, start.win_listened[:, WINDOW - k :], np.zeros(n))
    expected = state_values(p, delta, x0, state_survival(sim, start.user), levels)
    assert np.allclose(values, expected, rtol=0, atol=1e-12)
    step = iter(range(sim.max_steps))
    replay, _ = played_values(small.sim(n, np.arange(n)), lambda s: tracks[:, next(step)])
    assert np.allclose(values, replay, rtol=0, atol=1e-12)
    greedy, _ = greedy_values(small.sim(n, np.arange(n)))
    assert np.all(values >= greedy - 1e-12) and values.mean() > greedy.mean() + 0.5


def test_long_term_bound_is_above_every_policy(small):
    n = 2000
    seeds = np.arange(n) + 10_000
    sim = small.sim(n, seeds)
    bound = long_term_bound(sim, SessionStart.from_simulator(sim), iterations=10)  # any prices
    greedy, _ = greedy_values(small.sim(n, seeds))
    _, open_loop = OpenLoopSearch(rounds=20, per_kind=16).plans(small.sim(n, seeds))
    assert np.all(bound >= open_loop - 1e-12) and np.all(open_loop >= greedy - 1e-12)
    rng = np.random.default_rng(1)
    policies = {
        "random": lambda s: rng.integers(0, s.n_tracks, s.n_slots),
        "greedy": lambda s: s.opt_action.copy(),
        "planner": Planner(1, 2).actions,
    }
    means = {}
    for name, policy in policies.items():
        x = weighted_return(small.sim(n, seeds), policy)
        means[name] = x.mean()
        assert x.mean() + 3 * x.std() / np.sqrt(n) < bound.mean(), name
    x = weighted_return(small.sim(n, seeds), policies["greedy"])
    assert abs(x.mean() - greedy.mean()) < 4 * x.std() / np.sqrt(n)  # unbiased
    assert means["random"] < means["greedy"] < means["planner"]


def test_long_term_bound_holds_per_listener_state(small):
    states, reps = 4, 400
    n = states * reps
    seeds = np.repeat(np.arange(states) + 500, reps)
    sim = small.sim(n, seeds)
    start = SessionStart.from_simulator(sim)
    first = slice(None, None, reps)  # one session per start
    parts = (start.user, start.hist, start.win_artist, start.win_listened)
    bound = session_bound(sim, SessionStart(*(a[first] for a in parts)))
    sim.seed(np.arange(n), np.arange(n) + 90_000)  # the futures differ, the starts do not
    x = weighted_return(sim, Planner(1, 2).actions).reshape(states, reps)
    se = x.std(axis=1) / np.sqrt(reps)
    assert np.all(x.mean(axis=1) - 3 * se <= bound)


def test_batch_planner_reads_a_compiled_simulator_and_changes_nothing():
    world = load_world(None)
    sim = make_simulator(world, 64, world_params(world, long_term=True))
    sim.seed(np.arange(64), np.arange(64))
    sim.reset(np.arange(64))
    planner = Planner(top_k=1, depth=2, lams=(1.0,))
    rng = np.random.default_rng(0)
    for t in range(6):
        ints, floats = sim.int_state.copy(), sim.float_state.copy()
        actions = planner.actions(sim)
        assert np.array_equal(ints, sim.int_state) and np.array_equal(floats, sim.float_state)
        live = np.flatnonzero(rng.random(64) < 0.5)
        assert np.array_equal(planner.actions(sim, slots=live), actions[live])
        assert np.array_equal(planner.actions(sim, PlanState.of(sim, live)), actions[live])
        sim.step(actions)
        if t == 2:
            sim.reset(np.arange(0, 64, 3))  # sessions at different steps
    assert sim.params.satisfaction.enabled and np.any(sim.satisfaction != 0)
    assert len(np.unique(sim.steps)) > 1


def test_the_flag_only_bound_refuses_the_long_term_world(small):
    sim = small.sim(2, [0, 1])
    with pytest.raises(ConfigError, match="long_term_bound"):
        upper_bound(sim, SessionStart.from_simulator(sim))


def test_bad_planner_options_are_refused():
    with pytest.raises(ConfigError, match=r"`Planner.lams` must be a non-empty tuple"):
        Planner(lams=())
    with pytest.raises(ConfigError, match=r"`Planner.per_kind` must be an int >= 1"):
        Planner(per_kind=0)
    with pytest.raises(ConfigError, match=r"`OpenLoopSearch.lams`"):
        OpenLoopSearch(lams=(-1.0,))


def test_cli_long_term_writes_the_report(tmp_path, capsys):
    out = tmp_path / "opt"
    assert main(["optimum", "--long-term", "--sessions", "30", "--out", str(out), "--quiet"]) == 0
    report = json.loads((out / "optimum.json").read_text())
    s = report["summary"]
    assert s["long_term"] and report["config"]["long_term"]
    assert s["sessions_bound_below_greedy"] == 0 and s["sessions_bound_below_open_loop"] == 0
    assert s["upper_bound"] >= s["lower_bound"] > s["greedy_exact"] > s["random_mc"]["mean"]
    assert "long-term" in (out / "optimum.md").read_text()
    assert len((out / "sessions.csv").read_text().splitlines()) == 31
    assert "upper bound" in capsys.readouterr().out
