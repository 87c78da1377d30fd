"""The optimal return: exact DP on tiny worlds, the bounds, the planner, the CLI."""

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from musicrec_gym.cli import main
from musicrec_gym.data.synthetic import SyntheticConfig, WorldTruth, generate_world
from musicrec_gym.errors import ConfigError
from musicrec_gym.optimum import OptimumConfig, run_optimum, weighted_return
from musicrec_gym.optimum_artist import fewest_pairs, level_bounds
from musicrec_gym.optimum_exact import greedy_policy, optimal_value, policy_value
from musicrec_gym.optimum_model import (
    SessionStart,
    flag_code,
    flag_values,
    greedy_values,
    survival_table,
    track_options,
    upper_bound,
)
from musicrec_gym.optimum_plan import Planner, PlanState
from musicrec_gym.optimum_search import OpenLoopSearch
from musicrec_gym.sim.constants import WINDOW
from musicrec_gym.sim.params import LeaveParams, ResponseParams, SimulatorParams
from musicrec_gym.sim.simulator import BatchSimulator


def tiny_world(seed, skip_window=2, repeat=1.5, artist=0.8, per_skip=0.5, steps=4):
    """Four tracks by two artists, and a fifth no one listens to (below every candidate)."""
    rng = np.random.default_rng(seed)
    factors = rng.normal(size=(5, 3))
    factors /= np.linalg.norm(factors, axis=1, keepdims=True)
    pop_z = np.append(rng.normal(size=4), -60.0)
    taste = rng.normal(size=(3, 3))
    taste /= np.linalg.norm(taste, axis=1, keepdims=True)
    truth = WorldTruth(
        track_factors=factors.astype(np.float32),
        pop_z=pop_z.astype(np.float32),
        listener_taste=taste.astype(np.float32),
        listener_bias=(0.5 * rng.normal(size=3)).astype(np.float32),
        patience=np.array([3.0, 6.0, 10.0], np.float32),
    )
    params = SimulatorParams(
        response=ResponseParams(bias=1.0, taste=2.0, pop=0.5, repeat=repeat, artist=artist),
        leave=LeaveParams(per_skip=per_skip, skip_window=skip_window, max_steps=steps),
        warmup=2,
        logging_pool=3,
        continuation_pool=1,
    )
    return truth, np.array([0, 0, 1, 1, 2]), np.array([0.25, 0.25, 0.25, 0.25, 0.0]), params


def started(world, n, seeds):
    sim = BatchSimulator(*world, n)
    sim.seed(np.arange(n), np.asarray(seeds))
    sim.reset(np.arange(n))
    return sim


# (world seed, skip_window, repeat, artist, per_skip, session seeds)
TINY_CASES = [
    (0, 2, 1.5, 0.8, 0.5, range(4)),
    (1, 3, 1.5, 0.8, 0.5, range(4)),
    (2, 1, 1.5, 0.8, 0.5, range(4)),  # skip_window 1: the Lagrangian bound alone
    (33, 3, 1.0, 1.5, 0.8, range(33, 36)),  # slot 0: the greedy oracle is not optimal
]


@pytest.mark.parametrize("case", TINY_CASES, ids=lambda c: f"world{c[0]}-k{c[1]}")
def test_planner_equals_exact_dp_on_tiny_worlds(case):
    seed, k, repeat, artist, per_skip, seeds = case
    world = tiny_world(seed, k, repeat, artist, per_skip)
    seeds = np.array(list(seeds))
    n = len(seeds)
    sim = started(world, n, seeds)
    bound = upper_bound(sim, SessionStart.from_simulator(sim))
    greedy_exact, _ = greedy_values(started(world, n, seeds))
    _, open_loop = OpenLoopSearch().plans(started(world, n, seeds))
    full = Planner(top_k=4, depth=4)  # every candidate, to the horizon: exact expectimax
    for i in range(n):
        dp = optimal_value(sim, i)
        assert policy_value(sim, i, full.actions) == pytest.approx(dp, abs=1e-9)
        greedy = policy_value(sim, i, greedy_policy)
        assert greedy_exact[i] == pytest.approx(greedy, abs=1e-9)  # flag programme = tree
        assert greedy <= dp + 1e-12
        assert greedy - 1e-9 <= open_loop[i] <= dp + 1e-9
        assert policy_value(sim, i, Planner(2, 1).actions) <= dp + 1e-12
        assert dp <= bound[i] + 1e-12
    if seed == 33:
        assert policy_value(sim, 0, greedy_policy) < optimal_value(sim, 0) - 1e-3


def test_exact_dp_refuses_a_large_world(small):
    with pytest.raises(ConfigError, match="tiny worlds"):
        optimal_value(small.sim(1, [0]), 0)


class SmallWorld:
    """A 120-track world (the planner's candidate lists do not hold the catalog)."""

    def __init__(self) -> None:
        catalog, _, truth = generate_world(
            SyntheticConfig(n_tracks=120, n_artists=40, n_listeners=60, seed=3)
        )
        self.truth = truth
        self.artist = pd.factorize(catalog["artist_id"], sort=True)[0]
        self.popularity = catalog["popularity"].to_numpy()
        self.params = SimulatorParams(leave=LeaveParams(max_steps=12))
        self.candidates = None

    def sim(self, n, seeds, params=None, mode="listen"):
        sim = BatchSimulator(
            self.truth, self.artist, self.popularity, params or self.params, n, mode,
            candidates=self.candidates,
        )  # fmt: skip
        self.candidates = sim.candidates
        sim.seed(np.arange(n), np.asarray(seeds))
        sim.reset(np.arange(n))
        return sim


@pytest.fixture(scope="module")
def small():
    return SmallWorld()


def test_compiled_model_matches_the_simulator(small):
    n = 200
    sim = small.sim(n, np.arange(n))
    rng = np.random.default_rng(0)
    greedy_one = Planner(top_k=1, depth=1)
    k = sim.params.leave.skip_window
    for _ in range(sim.max_steps):
        # the planner's greedy (its re-implemented dynamics) is the simulator's oracle
        assert np.array_equal(greedy_one.actions(sim), sim.opt_action)
        planned = Planner(3, 2).actions(sim)
        actions = np.where(rng.random(n) < 0.5, sim.opt_action, planned)
        actions = np.where(rng.random(n) < 0.2, sim.hist[:, 0], actions)  # some repeats
        sim.step(actions)
        stay = survival_table(sim, sim.user)[
            np.arange(n), flag_code(sim.win_listened[:, WINDOW - k :])
        ]
        hazard = sim.leave.hazard(sim.user, sim.win_listened[:, WINDOW - k :])
        assert np.allclose(stay, 1.0 - hazard, rtol=0, atol=1e-15)


def test_open_loop_values_are_the_simulators(small):
    n = 100
    tracks, values = OpenLoopSearch().plans(small.sim(n, np.arange(n)))
    sim = small.sim(n, np.arange(n))
    start = SessionStart.from_simulator(sim)
    p = np.stack([sim.step(tracks[:, t]).expected_reward for t in range(sim.max_steps)], axis=1)
    k = sim.params.leave.skip_window
    code0 = flag_code(start.win_listened[:, WINDOW - k :])
    assert np.allclose(values, flag_values(p, code0, survival_table(sim, start.user)), atol=1e-12)
    greedy, _ = greedy_values(small.sim(n, np.arange(n)))
    assert np.all(values >= greedy - 1e-12) and values.mean() > greedy.mean()


def test_upper_bound_is_above_every_policy(small):
    n = 2000
    seeds = np.arange(n) + 10_000
    sim = small.sim(n, seeds)
    bound = upper_bound(sim, SessionStart.from_simulator(sim))
    greedy, _ = greedy_values(small.sim(n, seeds))
    _, open_loop = OpenLoopSearch(rounds=20).plans(small.sim(n, seeds))
    assert np.all(bound >= open_loop - 1e-12) and np.all(open_loop >= greedy - 1e-12)
    rng = np.random.default_rng(1)
    policies = {
        "random": lambda s: rng.integers(0, s.n_tracks, s.n_slots),
        "greedy": lambda s: s.opt_action.copy(),
        "planner": Planner(3, 2).actions,
    }
    means = {}
    for name, policy in policies.items():
        x = weighted_return(small.sim(n, seeds), policy)
        means[name] = x.mean()
        assert x.mean() + 3 * x.std() / np.sqrt(n) < bound.mean(), name
    # the weighted Monte Carlo estimate is unbiased: it meets the greedy's exact value
    x = weighted_return(small.sim(n, seeds), policies["greedy"])
    assert abs(x.mean() - greedy.mean()) < 4 * x.std() / np.sqrt(n)
    assert means["random"] < means["greedy"]


def test_upper_bound_holds_per_listener_state(small):
    """A few session starts, each replayed 400 times (same warm-up, new draws after it)."""
    states, reps = 4, 400
    n = states * reps
    seeds = np.repeat(np.arange(states) + 500, reps)
    sim = small.sim(n, seeds)
    bound = upper_bound(sim, SessionStart.from_simulator(sim))
    sim.seed(np.arange(n), np.arange(n) + 90_000)  # the futures differ, the starts do not
    x = weighted_return(sim, Planner(3, 2).actions).reshape(states, reps)
    se = x.std(axis=1) / np.sqrt(reps)
    assert np.all(x.mean(axis=1) - 3 * se <= bound.reshape(states, reps)[:, 0])
    assert np.ptp(bound.reshape(states, reps), axis=1).max() == 0.0


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: OptimumConfig(sessions=-1), r"`sessions` must be an int >= 1, got -1"),
        (lambda: OptimumConfig(sessions=0), r"`sessions` must be an int >= 1"),
        (lambda: OptimumConfig(sessions=2.5), r"`sessions` must be an int >= 1"),
        (lambda: OptimumConfig(seed=-3), r"`seed` must be an int in \[0, 2\*\*32\)"),
        (lambda: OptimumConfig(batch=0), r"`batch` must be an int >= 1"),
        (lambda: Planner(top_k=0), r"`Planner.top_k` must be an int >= 1, got 0"),
        (lambda: Planner(depth=-1), r"`Planner.depth` must be an int >= 1"),
        (lambda: Planner(top_k=20, depth=4), r"keep it <= 4096"),
        (lambda: OpenLoopSearch(rounds=-1), r"`OpenLoopSearch.rounds` must be an int >= 0"),
    ],
)
def test_bad_input_is_refused_clearly(make, match):
    with pytest.raises(ConfigError, match=match):
        make()


def test_bad_state_and_mode_are_refused(small):
    sim = small.sim(2, [0, 1], mode="time")
    with pytest.raises(ConfigError, match="'listen' reward mode only, got 'time'"):
        upper_bound(sim, SessionStart.from_simulator(sim))
    with pytest.raises(ConfigError, match="'listen' reward mode only, got 'time'"):
        OpenLoopSearch().plans(sim)
    sim = small.sim(2, [0, 1])
    sim.step(sim.opt_action.copy())
    with pytest.raises(ConfigError, match="right after reset"):
        SessionStart.from_simulator(sim)
    with pytest.raises(ConfigError, match="right after reset"):
        greedy_values(sim)
    assert isinstance(PlanState.of(sim), PlanState)


def test_cli_writes_the_report(tmp_path, capsys):
    out = tmp_path / "opt"
    assert main(["optimum", "--sessions", "40", "--out", str(out), "--quiet"]) == 0
    report = json.loads((out / "optimum.json").read_text())
    s = report["summary"]
    assert s["sessions"] == 40 and s["sessions_bound_below_greedy"] == 0
    assert s["upper_bound"] >= s["lower_bound"] >= s["greedy_exact"] > s["random_mc"]["mean"]
    assert "gap (upper - lower) / upper" in (out / "optimum.md").read_text()
    assert len((out / "sessions.csv").read_text().splitlines()) == 41
    assert "upper bound" in capsys.readouterr().out


def test_cli_refuses_bad_arguments():
    run = subprocess.run(
        [sys.executable, "-m", "musicrec_gym.cli", "optimum", "--sessions", "-5"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 2
    assert "argument --sessions: must be an integer >= 1, got '-5'" in run.stderr


def test_run_optimum_refuses_a_missing_world(tmp_path):
    with pytest.raises(Exception, match="no-such-world"):
        run_optimum(tmp_path / "no-such-world", OptimumConfig(sessions=1), progress=False)
    assert dataclasses.is_dataclass(OptimumConfig())


def test_fewest_pairs_is_the_brute_force_minimum():
    from itertools import combinations

    steps = 8
    for at_least in (0, 1, 2):
        g = fewest_pairs(steps, at_least)
        for mask0 in (0, 0b10000, 0b10101, 0b11111):
            for m in range(steps + 1):
                best = None
                for places in combinations(range(steps), m):
                    occupied = [(mask0 >> j) & 1 for j in range(WINDOW)] + [0] * steps
                    total = 0
                    for p in places:
                        count = sum(occupied[p : p + WINDOW])  # the five places before p
                        total += count if at_least == 0 else int(count >= at_least)
                        occupied[WINDOW + p] = 1
                    best = total if best is None else min(best, total)
                assert g[mask0, m] == best, (at_least, mask0, m)


def test_artist_levels_dominate_every_sessions_logits(small):
    """The r-th largest listen logit of played sessions is at most the bound M_r."""
    n = 300
    sim = small.sim(n, np.arange(n))
    start = SessionStart.from_simulator(sim)
    options = track_options(sim, start)
    levels = level_bounds(
        options.top_static, sim.artist_of[options.top], start.win_artist,
        options.free_logit, sim.params.response.artist, sim.max_steps,
    )  # fmt: skip
    assert np.all(np.diff(levels, axis=1) <= 0)
    tracks, _ = OpenLoopSearch().plans(small.sim(n, np.arange(n)))
    rng = np.random.default_rng(2)
    policies = {
        "open-loop": lambda sim, t: tracks[:, t],
        "greedy": lambda sim, t: sim.opt_action.copy(),
        "planner": lambda sim, t: Planner(3, 1).actions(sim),
        "random": lambda sim, t: rng.integers(0, sim.n_tracks, sim.n_slots),
    }
    for name, policy in policies.items():
        run = small.sim(n, np.arange(n))
        logits = []
        for t in range(run.max_steps):
            actions = policy(run, t)
            users, hist = run.user, run.hist.copy()
            same = (run.win_artist == run.artist_of[actions][:, None]).sum(axis=1)
            repeated = (hist == actions[:, None]).any(axis=1)
            logits.append(
                run.response.static(users, actions) - run.response.fatigue(repeated, same)
            )
            run.step(actions)
        ranked = -np.sort(-np.stack(logits, axis=1), axis=1)
        assert np.all(ranked <= levels + 1e-9), name


def test_bound_is_exact_without_artist_fatigue(small):
    """With no artist penalty the greedy oracle plays the sorted order: bound = greedy."""
    params = dataclasses.replace(
        small.params, response=dataclasses.replace(small.params.response, artist=0.0)
    )
    n = 200
    sim = small.sim(n, np.arange(n), params=params)
    bound = upper_bound(sim, SessionStart.from_simulator(sim))
    greedy, _ = greedy_values(small.sim(n, np.arange(n), params=params))
    assert np.allclose(bound, greedy, rtol=0, atol=1e-12)
