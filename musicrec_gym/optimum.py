"""The optimal return of a synthetic world, computed and bracketed, not assumed.

The benchmark scores agents against the greedy oracle (the track of best immediate
expected reward). How far is that from the optimal return? For sessions of a synthetic
world under its true model (listen reward), from the state after the warm-up:

* **upper bound**: :func:`musicrec_gym.optimum_model.upper_bound`, provably at least
  the optimal expected return of each session (proof in its docstring); in the
  long-term world (``OptimumConfig.long_term``: satisfaction on)
  :func:`musicrec_gym.optimum_long.long_term_bound`;
* **lower bounds**: the values of policies that use the true model: an open-loop plan
  searched over whole sessions (:class:`~musicrec_gym.optimum_search.OpenLoopSearch`,
  valued exactly), and a re-planning lookahead
  (:class:`~musicrec_gym.optimum_plan.Planner`, valued by Monte Carlo with a 95%
  confidence interval);
* **the greedy oracle**, valued exactly on the same session starts (and by Monte
  Carlo, as a check), and a uniformly random policy.

Monte Carlo runs every policy on the same sessions (same listeners, same warm-ups, same
random draws for the listens: common random numbers) and plays every session to
``max_steps``, weighting step ``t`` by the probability that the listener is still there
(the product of ``1 - hazard`` so far) rather than drawing the leaving: an unbiased,
lower-variance estimate of the same expected return. The planner's value is estimated
as the greedy oracle's exact value plus the mean paired difference of the two runs (in
the long-term world: the open-loop plans', much closer to the planner's).
``musicrec optimum`` (:mod:`musicrec_gym.optimum_cli`) writes the report.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from musicrec_gym.checks import is_int
from musicrec_gym.errors import ConfigError, OutputWriteError
from musicrec_gym.optimum_long import session_bound
from musicrec_gym.optimum_model import SessionStart, greedy_values
from musicrec_gym.optimum_plan import Planner
from musicrec_gym.optimum_search import OpenLoopSearch
from musicrec_gym.sim.constants import WINDOW
from musicrec_gym.sim.params import SimulatorParams
from musicrec_gym.sim.simulator import BatchSimulator
from musicrec_gym.world import World, load_world

TARGET_GAP = 0.02
"""The gap (upper - lower) / upper the method aims at."""

COLUMNS = (
    "upper", "greedy_exact", "open_loop", "greedy_mc", "open_loop_mc", "planner_mc", "random_mc"
)  # fmt: skip
"""The per-session values (``sessions.csv``'s columns)."""


@dataclass(frozen=True)
class OptimumConfig:
    """What ``musicrec optimum`` computes.

    Args:
        sessions: Session starts (listener and warm-up), >= 1.
        seed: Session ``i`` uses the random stream of seed ``seed * 10**9 + i``.
        batch: Sessions simulated at once, >= 1.
        planner: The re-planning lookahead.
        search: The open-loop sequence search.
        long_term: The world's long-term variant (``MusicRecLongTerm-v0``: satisfaction
            on), whose bounds and policies carry the satisfaction in their state.
    """

    sessions: int = 1000
    seed: int = 0
    batch: int = 500
    planner: Planner = field(default_factory=Planner)
    search: OpenLoopSearch = field(default_factory=OpenLoopSearch)
    long_term: bool = False

    def __post_init__(self) -> None:
        if not (is_int(self.sessions) and self.sessions >= 1):
            raise ConfigError(f"`sessions` must be an int >= 1, got {self.sessions!r}")
        if not (is_int(self.seed) and 0 <= self.seed < 2**32):
            raise ConfigError(f"`seed` must be an int in [0, 2**32), got {self.seed!r}")
        if not (is_int(self.batch) and self.batch >= 1):
            raise ConfigError(f"`batch` must be an int >= 1, got {self.batch!r}")
        if not isinstance(self.long_term, bool):
            raise ConfigError(f"`long_term` must be a bool, got {self.long_term!r}")


@dataclass
class OptimumResult:
    """Per-session values (arrays of length ``sessions``) and the summary."""

    config: OptimumConfig
    world: str
    upper: np.ndarray
    greedy_exact: np.ndarray
    open_loop: np.ndarray
    greedy_mc: np.ndarray
    open_loop_mc: np.ndarray
    planner_mc: np.ndarray
    random_mc: np.ndarray
    summary: dict[str, Any]


def world_params(world: World, long_term: bool) -> SimulatorParams:
    """The world's params, with satisfaction on for its long-term variant."""
    params = world.params
    if long_term:
        params = replace(params, satisfaction=replace(params.satisfaction, enabled=True))
    return params


def _simulator(world: World, n: int, seeds: np.ndarray, long_term: bool = False) -> BatchSimulator:
    """A fresh NumPy reference simulator of ``n`` sessions, reset from ``seeds``."""
    sim = BatchSimulator(
        world.truth, world.artist_index, world.popularity, world_params(world, long_term), n,
        candidates=world.candidates,
    )  # fmt: skip
    slots = np.arange(n)
    sim.seed(slots, seeds)
    sim.reset(slots)
    return sim


def _uniform(seed: int, batch_start: int):
    """The uniformly random policy, from its own generator."""
    rng = np.random.default_rng([seed, batch_start])
    return lambda sim: rng.integers(0, sim.n_tracks, sim.n_slots)


def hazard(sim: BatchSimulator) -> np.ndarray:
    """(B,) each slot's leave hazard after its last play (with satisfaction if the world has it)."""
    k = sim.params.leave.skip_window
    recent = sim.win_listened[:, WINDOW - k :]
    sat = sim.params.satisfaction
    if sat.enabled:
        return sim.leave.hazard(sim.user, recent, sim.satisfaction, sat.weight)
    return sim.leave.hazard(sim.user, recent)


def weighted_return(sim: BatchSimulator, policy) -> np.ndarray:
    """Play ``policy`` (``sim -> actions``) for ``max_steps`` from ``sim``'s reset state.

    Returns:
        (B,) ``sum_t S_t p_t``: each step's listen probability weighted by the
        probability ``S_t`` that the listener has not left before it (given the flags so
        far); its expectation is the policy's expected return.
    """
    alive = np.ones(sim.n_slots)
    total = np.zeros(sim.n_slots)
    for _ in range(sim.max_steps):
        result = sim.step(np.asarray(policy(sim), dtype=np.int64))
        total += alive * result.expected_reward
        alive = alive * (1.0 - hazard(sim))
    return total


def _fixed(tracks: np.ndarray):
    """The policy that plays ``tracks[:, t]`` at step ``t`` (an open-loop plan)."""
    return lambda sim: tracks[np.arange(sim.n_slots), sim.steps]


def mean_ci(x: np.ndarray) -> dict[str, float]:
    """Mean and normal 95% confidence interval of the mean."""
    x = np.asarray(x, dtype=np.float64)
    half = 1.96 * x.std(ddof=1) / math.sqrt(len(x)) if len(x) > 1 else math.inf
    return {
        "mean": float(x.mean()),
        "ci_low": float(x.mean() - half),
        "ci_high": float(x.mean() + half),
    }


def run_optimum(
    world: World | str | None = None,
    config: OptimumConfig | None = None,
    progress: bool = True,
) -> OptimumResult:
    """Bracket the optimal return of a synthetic world's sessions (see the module doc).

    Args:
        world: A loaded world, a world directory, or ``None`` for the built-in one.
        config: What to compute (default :class:`OptimumConfig`).
        progress: Show a progress bar.

    Raises:
        ConfigError: The world has no hidden truth (a fitted world).
    """
    config = OptimumConfig() if config is None else config
    if not isinstance(world, World):
        world = load_world(world)
    if world.truth is None:
        raise ConfigError(
            f"{world.directory}: a fitted world has no hidden truth; the optimum is computed "
            "for synthetic worlds (the built-in one, or `musicrec build`)"
        )
    n = config.sessions
    parts: dict[str, list[np.ndarray]] = {k: [] for k in COLUMNS}
    bar = tqdm(total=n, desc="optimum", unit="session", disable=not progress)
    for start in range(0, n, config.batch):
        ids = np.arange(start, min(start + config.batch, n))
        seeds = np.int64(config.seed) * 10**9 + ids
        b = len(ids)

        def fresh(seeds=seeds, b=b):
            return _simulator(world, b, seeds, config.long_term)

        sim = fresh()
        parts["upper"].append(session_bound(sim, SessionStart.from_simulator(sim)))
        parts["greedy_exact"].append(greedy_values(fresh())[0])
        plan, plan_value = config.search.plans(fresh())
        parts["open_loop"].append(plan_value)
        parts["open_loop_mc"].append(weighted_return(fresh(), _fixed(plan)))
        parts["greedy_mc"].append(weighted_return(fresh(), lambda s: s.opt_action.copy()))
        parts["planner_mc"].append(weighted_return(fresh(), config.planner.actions))
        parts["random_mc"].append(weighted_return(fresh(), _uniform(config.seed, start)))
        bar.update(b)
    bar.close()
    arrays = {k: np.concatenate(v) for k, v in parts.items()}
    summary = summarise(arrays, config.long_term)
    summary["long_term"] = config.long_term
    return OptimumResult(config=config, world=str(world.directory), summary=summary, **arrays)


def summarise(a: dict[str, np.ndarray], long_term: bool = False) -> dict[str, Any]:
    """The report's figures from the per-session values.

    The planner's value is a baseline's exact mean plus the mean paired difference of the
    two Monte Carlo runs (the CI is the Monte Carlo error on these session starts): the
    greedy oracle's, or in the long-term world the open-loop plans' (much closer to the
    planner there, so the difference varies less).
    """
    upper = float(a["upper"].mean())
    base = "open_loop" if long_term else "greedy"
    exact = a["open_loop"] if long_term else a["greedy_exact"]
    diff = mean_ci(a["planner_mc"] - a[f"{base}_mc"])
    planner = {k: float(exact.mean()) + v for k, v in diff.items()}
    open_loop = float(a["open_loop"].mean())
    # conservative: the planner counts with the low end of its confidence interval
    lower = max(open_loop, planner["ci_low"])
    lower_name = (
        "open-loop plan (exact)" if open_loop >= planner["ci_low"] else "planner (95% CI low end)"
    )
    greedy = float(a["greedy_exact"].mean())
    return {
        "sessions": len(a["upper"]),
        "upper_bound": upper,
        "open_loop_exact": open_loop,
        "planner": planner,
        "greedy_exact": greedy,
        "greedy_mc": mean_ci(a["greedy_mc"]),
        "random_mc": mean_ci(a["random_mc"]),
        "planner_minus_greedy": mean_ci(a["planner_mc"] - a["greedy_mc"]),
        "planner_minus_open_loop": mean_ci(a["planner_mc"] - a["open_loop_mc"]),
        "planner_baseline": base,
        "open_loop_mc": mean_ci(a["open_loop_mc"]),
        "lower_bound": lower,
        "lower_bound_from": lower_name,
        "gap": (upper - lower) / upper,
        "greedy_share_of_upper": greedy / upper,
        "greedy_share_of_lower": greedy / lower,
        "target_gap": TARGET_GAP,
        "target_met": (upper - lower) / upper <= TARGET_GAP,
        "sessions_bound_below_greedy": int((a["upper"] < a["greedy_exact"] - 1e-9).sum()),
        "sessions_bound_below_open_loop": int((a["upper"] < a["open_loop"] - 1e-9).sum()),
    }


def markdown(result: OptimumResult, command: str = "") -> str:
    """The report as Markdown."""
    s, c = result.summary, result.config

    def ci(d: dict[str, float]) -> str:
        return f"{d['mean']:.4f} [{d['ci_low']:.4f}, {d['ci_high']:.4f}]"

    met = "met" if s["target_met"] else "NOT met"
    lt_planner = (
        f" (per kind of move);\n  continuation rules lambda {list(c.planner.lams)}, "
        f"{c.planner.per_kind} candidates per kind"
        if c.long_term
        else ""
    )
    baseline = "open-loop plans'" if s["planner_baseline"] == "open_loop" else "greedy oracle's"
    upper = s["upper_bound"]

    def share(x: float) -> str:
        return f"{x / upper:.4f}"

    rows = [
        ("upper bound (provable)", f"{upper:.4f}", share(upper)),
        ("open-loop plan, exact", f"{s['open_loop_exact']:.4f}", share(s["open_loop_exact"])),
        ("planner (MC, 95% CI)", ci(s["planner"]), share(s["planner"]["mean"])),
        ("greedy oracle, exact", f"{s['greedy_exact']:.4f}", share(s["greedy_exact"])),
        ("greedy oracle (MC, 95% CI)", ci(s["greedy_mc"]), share(s["greedy_mc"]["mean"])),
        ("random (MC, 95% CI)", ci(s["random_mc"]), share(s["random_mc"]["mean"])),
    ]
    table = "\n".join(f"| {a} | {b} | {r} |" for a, b, r in rows)
    variant = " (long-term: satisfaction on, MusicRecLongTerm-v0)" if c.long_term else ""
    return f"""# Optimal return of {result.world}{variant}

{s["sessions"]} session starts (seed {c.seed}); expected listens per session from the
state after the warm-up (reward mode `listen`, `max_steps` recommendations at most).

| value | expected return | share of the upper bound |
|---|---|---|
{table}

- gap (upper - lower) / upper: **{100 * s["gap"]:.2f}%** (lower bound: {s["lower_bound_from"]},
  {s["lower_bound"]:.4f}); target <= {100 * s["target_gap"]:.0f}%: **{met}**.
- greedy oracle's share of the upper bound: {100 * s["greedy_share_of_upper"]:.2f}%
  (of the best policy found: {100 * s["greedy_share_of_lower"]:.2f}%).
- planner minus greedy (paired, same draws): {ci(s["planner_minus_greedy"])};
  minus the open-loop plans: {ci(s["planner_minus_open_loop"])}. The planner's row is
  the {baseline} exact value plus its paired difference.
- planner: top_k {c.planner.top_k}, depth {c.planner.depth}{lt_planner}.
- open-loop search: up to {c.search.rounds} improving moves.
- sessions whose bound is below the greedy / open-loop value (must be 0):
  {s["sessions_bound_below_greedy"]} / {s["sessions_bound_below_open_loop"]}.

Command: `{command}`. Method and proof: docs/optimum.md.
"""


def write_report(result: OptimumResult, out: str | Path, command: str = "") -> Path:
    """Write ``optimum.md``, ``optimum.json`` and per-session ``sessions.csv`` into ``out``.

    Raises:
        OutputWriteError: ``out`` cannot be written (names it).
    """
    out = Path(out)
    cfg = result.config
    payload = {
        "command": command,
        "world": result.world,
        "config": {
            "sessions": cfg.sessions, "seed": cfg.seed, "batch": cfg.batch,
            "long_term": cfg.long_term,
            "planner": asdict(cfg.planner), "search": asdict(cfg.search),
        },
        "summary": result.summary,
    }  # fmt: skip
    columns = COLUMNS
    lines = ["session," + ",".join(columns)]
    for i in range(len(result.upper)):
        lines.append(f"{i}," + ",".join(f"{getattr(result, c)[i]:.6f}" for c in columns))
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "optimum.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        (out / "optimum.md").write_text(markdown(result, command), encoding="utf-8")
        (out / "sessions.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    except OSError as err:
        raise OutputWriteError(f"{out}: cannot write the optimum report ({err})") from err
    return out / "optimum.md"
