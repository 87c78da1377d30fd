"""Results of a run: per-agent tables (CSV, Markdown) and the learning-curve plot.

Per agent, over seeds: mean and 95% t-interval half-width (``n/a`` with one seed) of
the greedy evaluation's return, its fraction of the optimal return (total return /
total ``optimal_reward`` along the same trajectories), the normalised score
``(agent - random) / (oracle - random)`` computed per seed from the evaluation
returns, the listen rate, the mean session length, and the cumulative training
regret. Rows are sorted by normalised score.

Then, as Agarwal et al. (2021) recommend (``experiments.statistics``, which defines them):
the IQM of the per-seed normalised scores and the probability of improvement over the
best linear bandit, with 95% bootstrap intervals, and the training seconds until the
training-episode return reaches 0.9 of the way from random to the oracle.

In a grid (``sweep:``), every variant is a row of its own, the swept values are extra
columns (``params.alpha``, ``env.reward``, ...; empty where a variant does not have the
setting), and a variant's normalised score is against the references evaluated at
the same environment grid point and seed.

Results are range-checked before they are reported (``check_result``, the runner's
``CellResult.problems``): a result whose numbers are not finite, not plausible (returns
within a session cap of the step reward's range, a listen rate in [0, 1], a session
length in [1, max_steps], a fraction of optimal equal to return / optimal return, ...)
or not those of its cell (agent, type, seed, number of evaluation episodes) is
*excluded* from every table and the plot, with a
``ResultWarning`` naming its ``cells/<cell>/result.json`` and what is wrong, and an
"Excluded results" section in ``results.md``. A hand-edited or corrupted
``result.json`` is thereby never trusted, and the rest of the run is still reported.
Delete the file and rerun to recompute the cell. A ``curve.csv`` that cannot be read or
holds non-finite numbers is left out of the plot (and of the seconds to 0.9) with the same
warning.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from experiments.schema import ExperimentConfig
from experiments.statistics import (
    SECONDS_TO,
    STEPS_TO,
    add_improvement,
    agent_columns,
    baseline_label,
    footnote,
    markdown_cells,
    markdown_headers,
    time_to_threshold,
)

if TYPE_CHECKING:
    from experiments.cells import Cell, CellResult

#: Largest plausible training steps of a cell (the config allows 10**8; SB3 may round up).
MAX_REPORTED_TRAIN_STEPS = 10**9
#: The columns a ``curve.csv`` must have.
CURVE_COLUMNS = ("steps", "episode_return", "optimal_return")


class ResultWarning(UserWarning):
    """A saved result or curve was left out of the report (the message says why)."""


#: The metrics of the tables: (column, Markdown header, format).
METRICS = (
    ("normalised_score", "Normalised score", "{:.3f}"),
    ("return", "Eval return", "{:.3f}"),
    ("fraction_of_optimal", "Fraction of optimal", "{:.3f}"),
    ("listen_rate", "Listen rate", "{:.3f}"),
    ("session_length", "Session length", "{:.2f}"),
    ("train_regret", "Training regret", "{:,.0f}"),
)


@dataclass(frozen=True)
class Stat:
    """Mean over seeds and the half-width of its 95% t-interval (``nan`` for n < 2).

    Attributes:
        mean: Mean over seeds (``nan`` when there is no value).
        ci95: Half-width of the 95% t-interval; ``nan`` with fewer than 2 seeds.
        n: Number of seeds with a value.
    """

    mean: float
    ci95: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Stat:
        """Mean and t-interval of the finite ``values``."""
        from scipy.special import stdtrit  # Student t quantile (lighter than scipy.stats)

        arr = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
        n = len(arr)
        if n == 0:
            return cls(math.nan, math.nan, 0)
        if n == 1:
            return cls(float(arr[0]), math.nan, 1)
        half = stdtrit(n - 1, 0.975) * arr.std(ddof=1) / math.sqrt(n)
        return cls(float(arr.mean()), float(half), n)

    def format(self, fmt: str) -> str:
        """``mean ± ci``, ``mean ± n/a`` with one seed, ``–`` with none."""
        if self.n == 0:
            return "–"
        ci = "n/a" if self.n < 2 else fmt.format(self.ci95)
        return f"{fmt.format(self.mean)} ± {ci}"


def check_result(result: CellResult, cell: Cell) -> list[str]:
    """What is implausible about a cell's result (empty when nothing is).

    The same check that decides on resume whether a saved result is trusted
    (``CellResult.problems``): one definition of a plausible result.

    Args:
        result: The result (fresh, or read back from ``cells/<key>/result.json``).
        cell: The cell it claims to be the result of.

    Returns:
        One line per problem: the field, its value and what was expected.
    """
    return result.problems(cell)


def screen_results(
    run_dir: Path, cells: Sequence[Cell], results: dict[str, CellResult]
) -> tuple[dict[str, CellResult], list[tuple[Path, list[str]]]]:
    """The results that pass ``check_result``, and the excluded ones' files and problems.

    Every excluded result is reported with a ``ResultWarning`` naming its file.
    """
    kept: dict[str, CellResult] = {}
    excluded: list[tuple[Path, list[str]]] = []
    for cell in cells:
        result = results.get(cell.key)
        if result is None:
            continue
        problems = check_result(result, cell)
        if problems:
            path = Path(run_dir) / "cells" / cell.key / "result.json"
            excluded.append((path, problems))
            warnings.warn(
                f"{path}: excluded from the report: {'; '.join(problems)} (delete the file "
                "and rerun to recompute the cell)",
                ResultWarning,
                stacklevel=2,
            )
        else:
            kept[cell.key] = result
    return kept, excluded


def per_seed_table(
    config: ExperimentConfig,
    cells: Sequence[Cell],
    results: dict[str, CellResult],
    run_dir: Path | None = None,
) -> pd.DataFrame:
    """One row per finished cell, with its normalised score against its seed's references.

    With ``run_dir``, also the steps and seconds until its training curve (``curve.csv``)
    reaches 0.9 (``experiments.statistics.time_to_threshold``).
    """
    random_name = config.reference("random").name
    oracle_name = config.upper_reference.name
    refs = {
        (cell.base or cell.agent.name, cell.point, cell.seed): results.get(cell.key)
        for cell in cells
        if (cell.base or cell.agent.name) in (random_name, oracle_name)
    }
    rows = []
    for cell in cells:
        r = results.get(cell.key)
        if r is None:
            continue
        lo = refs.get((random_name, cell.point, cell.seed))
        hi = refs.get((oracle_name, cell.point, cell.seed))
        score, reached = math.nan, (math.nan, math.nan)
        if lo is not None and hi is not None:
            curve = _learning_curve(run_dir, cell, r)
            if curve is not None:
                steps, returns = curve["steps"].to_numpy(), curve["episode_return"].to_numpy()
                reached = time_to_threshold(steps, returns, lo.eval.mean_return,
                                            hi.eval.mean_return, r.train_steps,
                                            r.train_time_s)  # fmt: skip
            span = hi.eval.mean_return - lo.eval.mean_return
            if span > 0:
                score = (r.eval.mean_return - lo.eval.mean_return) / span
        rows.append(
            {
                "agent": r.agent,
                "type": r.type,
                **dict(cell.swept),
                "seed": r.seed,
                "normalised_score": score,
                "return": r.eval.mean_return,
                "optimal_return": r.eval.mean_optimal_return,
                "fraction_of_optimal": r.eval.fraction_of_optimal,
                "listen_rate": r.eval.listen_rate,
                "session_length": r.eval.mean_length,
                "eval_regret": r.eval.mean_regret,
                "train_regret": math.nan if r.train_regret is None else r.train_regret,
                "train_steps": r.train_steps,
                "train_time_s": r.train_time_s,
                "cpu_time_s": r.cpu_time_s,
                "eval_episodes": r.eval.episodes,
                STEPS_TO: reached[0],
                SECONDS_TO: reached[1],
            }
        )
    table = pd.DataFrame(rows)
    swept = [c for c in swept_columns(cells) if c in table]
    rest = [c for c in table.columns if c not in swept and c not in ("agent", "type")]
    return table[["agent", "type", *swept, *rest]] if len(table) else table


def _learning_curve(run_dir: Path | None, cell: Cell, result: CellResult) -> pd.DataFrame | None:
    """The ``curve.csv`` of a cell that trained, if it has a readable one (else ``None``)."""
    if run_dir is None or not result.learns:
        return None
    return _read_curve(run_dir / "cells" / cell.key / "curve.csv", "the seconds to 0.9")


def swept_columns(cells: Sequence[Cell]) -> list[str]:
    """The swept settings' columns, in the order of the ``sweep:`` block."""
    return list(dict.fromkeys(column for cell in cells for column, _ in cell.swept))


def summary_table(
    per_seed: pd.DataFrame,
    agent_order: Sequence[str],
    swept: Sequence[str] = (),
    points: dict[str, object] | None = None,
) -> pd.DataFrame:
    """Per agent: n seeds, mean and 95% CI of every metric; sorted by normalised score.

    Then ``experiments.statistics.agent_columns`` and ``add_improvement``: the
    normalised score's IQM and the probability of improvement over the best linear
    bandit, with their bootstrap intervals, and the median seconds to 0.9.

    Args:
        per_seed: ``per_seed_table``.
        agent_order: The agents (variants) in the order of the config.
        swept: The swept settings' columns of ``per_seed``, copied to the summary.
        points: Each agent's environment grid point (``Cell.point``); the baseline of
            the probability of improvement is the best bandit at the same point.
    """
    rows = []
    scores: dict[str, np.ndarray] = {}
    for name in agent_order:
        part = per_seed[per_seed["agent"] == name] if len(per_seed) else per_seed
        if not len(part):
            continue
        row: dict[str, object] = {"agent": name, "type": part["type"].iloc[0]}
        for column in swept:
            row[column] = part[column].iloc[0] if column in part else None
        row["n_seeds"] = len(part)
        for column, _, _ in METRICS:
            stat = Stat.of(part[column].tolist())
            row[f"{column}_mean"] = stat.mean
            row[f"{column}_ci95"] = stat.ci95
        row["train_steps"] = float(part["train_steps"].mean())
        row["train_time_s"] = float(part["train_time_s"].mean())
        row["cpu_time_s"] = float(part["cpu_time_s"].mean())
        scores[name] = part["normalised_score"].to_numpy(dtype=float)
        seconds = part.get(SECONDS_TO, [])
        row.update(agent_columns(scores[name], np.asarray(seconds, dtype=float)))
        rows.append(row)
    add_improvement(rows, scores, points or {})
    table = pd.DataFrame(rows)
    if len(table):
        table = table.sort_values(
            "normalised_score_mean", ascending=False, na_position="last", kind="stable"
        ).reset_index(drop=True)
    return table


def markdown_table(
    config: ExperimentConfig, summary: pd.DataFrame, swept: Sequence[str] = ()
) -> str:
    """The Markdown of ``results.md`` (with a column per swept setting of a grid)."""
    baselines = list(summary.get("prob_improvement_over", []))
    versus = baseline_label(baselines)
    headers = [
        "Agent", "Type", *swept, "Seeds", *(h for _, h, _ in METRICS), "Train steps", "Train s",
        *markdown_headers(versus),
    ]  # fmt: skip
    lines = [
        f"# {config.name}: results",
        "",
        f"{config.env.id}{f' {config.env.kwargs}' if config.env.kwargs else ''}, "
        f"{len(config.seeds)} seed(s), "
        f"{config.budget.eval_episodes} greedy evaluation episodes per (agent, seed). "
        "Mean ± 95% t-interval half-width over seeds (n/a with one seed); the last three "
        "columns as Agarwal et al. (2021) recommend (below the table).",
        "",
        "| " + " | ".join(headers) + " |",
        "|"
        + "|".join(["---"] * (3 + len(swept)) + ["---:"] * (len(headers) - 3 - len(swept)))
        + "|",
    ]
    for row in summary.to_dict("records"):
        cells = [str(row["agent"]), str(row["type"])]
        cells += [_swept_value(row[column]) for column in swept]
        cells.append(str(row["n_seeds"]))
        for column, _, fmt in METRICS:
            stat = Stat(row[f"{column}_mean"], row[f"{column}_ci95"], int(row["n_seeds"]))
            if not np.isfinite(stat.mean):
                stat = Stat(math.nan, math.nan, 0)
            cells.append(stat.format(fmt))
        steps = row["train_steps"]
        cells.append(f"{steps:,.0f}" if steps else "–")
        trained = steps or row["train_time_s"] >= 0.5  # offline RL trains without env steps
        cells.append(f"{row['train_time_s']:.0f}" if trained else "–")
        cells += markdown_cells(row)
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Normalised score: (agent − random) / ({config.upper_reference.name} − random) "
        "of the evaluation return, per seed"
        + (
            " (the planner: the lookahead policy on the true model, docs/optimum.md; the "
            "greedy oracle is far from optimal in this world)"
            if config.upper_reference.type == "planner"
            else ""
        )
        + ". Fraction of optimal: evaluation return / sum of the best immediate expected "
        "reward along the same trajectories (the greedy oracle's per-step reference). "
        "Training regret: sum over all training steps "
        "of (best expected reward − expected reward of the chosen track, or of the shown "
        "slate); – for fixed "
        "policies, which do not train.",
        "",
        footnote(versus, per_point=len({b for b in baselines if isinstance(b, str)}) > 1),
    ]
    return "\n".join(lines) + "\n"


def _swept_value(value: object) -> str:
    """A swept value in ``results.md``: as written in the config; ``–`` when not set."""
    from experiments.sweep import value_label

    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return value_label(value) if isinstance(value, (bool, float)) else str(value)


# ------------------------------------------------------------------------- curves


def _binned(curve: pd.DataFrame, edges: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed return and fraction of optimal per bin (moving window over bins)."""
    idx = np.clip(np.searchsorted(edges, curve["steps"].to_numpy(), side="left") - 1, 0, None)
    idx = np.minimum(idx, len(edges) - 2)
    k = len(edges) - 1
    ret = np.bincount(idx, weights=curve["episode_return"].to_numpy(), minlength=k)
    opt = np.bincount(idx, weights=curve["optimal_return"].to_numpy(), minlength=k)
    cnt = np.bincount(idx, minlength=k).astype(float)
    kernel = np.ones(window)
    s_ret = np.convolve(ret, kernel, mode="same")
    s_opt = np.convolve(opt, kernel, mode="same")
    s_cnt = np.convolve(cnt, kernel, mode="same")
    # Bins past the last finished episode stay empty (NaN), not extrapolated.
    last = curve["steps"].max()
    valid = (s_cnt > 0) & (edges[:-1] < last)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_ret = np.where(valid, s_ret / s_cnt, np.nan)
        frac = np.where(valid & (s_opt > 0), s_ret / s_opt, np.nan)
    return mean_ret, frac


def plot_curves(
    run_dir: Path,
    config: ExperimentConfig,
    cells: Sequence[Cell],
    results: dict[str, CellResult],
    path: Path | None = None,
    bins: int = 60,
    window: int = 5,
) -> Path:
    """Draw ``curves.png``: training curves of the learners against the fixed policies.

    Left: training episode return vs env steps (moving average over ``window`` of
    ``bins`` bins, mean over seeds, band = range over seeds), each learner's greedy
    evaluation return as a dot at its last step, and horizontal lines at the
    evaluation return of every fixed policy (oracle, random, popularity, ...). Right:
    the same as a fraction of the optimal return: of the best immediate expected reward
    along the same episodes, or, where the planner is the upper reference
    (``MusicRecLongTerm-v0``, where greedy is far from optimal), of the planner's mean
    evaluation return.

    Returns:
        The PNG's path.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    path = path or run_dir / "curves.png"
    by_agent: dict[str, list[Cell]] = {}
    for cell in cells:
        if cell.key in results:
            by_agent.setdefault(cell.agent.name, []).append(cell)
    # Agents that trained without env steps (offline RL from a log) have no training
    # curve: drawn as lines at their evaluation return, as the fixed policies are.
    learners = [
        a for a, cs in by_agent.items()
        if results[cs[0].key].learns and results[cs[0].key].train_steps > 0
    ]  # fmt: skip
    fixed = [a for a in by_agent if a not in learners]
    planned = [
        results[c.key].eval.mean_return
        for c in by_agent.get(config.upper_reference.name, [])
        if config.upper_reference.type == "planner"
    ]
    scale = float(np.mean(planned)) if planned else None  # None: per-step optimum

    fig = Figure(figsize=(14, 5.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax_ret, ax_frac = fig.subplots(1, 2)
    palette = [
        "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
        "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f",
    ]  # fmt: skip

    max_steps = max([results[c.key].train_steps for a in learners for c in by_agent[a]] or [1])
    edges = np.linspace(0, max_steps, bins + 1)
    centers = 0.5 * (edges[:-1] + edges[1:])
    for i, agent in enumerate(learners):
        color = palette[i % len(palette)]
        rets, fracs = [], []
        for cell in by_agent[agent]:
            curve = _read_curve(run_dir / "cells" / cell.key / "curve.csv")
            if curve is None or not len(curve):
                continue
            r, f = _binned(curve, edges, window)
            rets.append(r)
            fracs.append(f if scale is None else r / scale)
        seeds = len(by_agent[agent])
        label = f"{agent} ({seeds} seed{'s' if seeds > 1 else ''})"
        for ax, series in ((ax_ret, rets), (ax_frac, fracs)):
            if not series:
                continue
            stack = np.vstack(series)
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # bins without episodes
                mean = np.nanmean(stack, axis=0)
                lo, hi = np.nanmin(stack, axis=0), np.nanmax(stack, axis=0)
            ax.plot(centers, mean, color=color, lw=2, label=label)
            if len(series) > 1:
                ax.fill_between(centers, lo, hi, color=color, alpha=0.18, lw=0)
        finals = [results[c.key] for c in by_agent[agent]]
        x_end = float(np.mean([r.train_steps for r in finals]))
        ax_ret.plot(x_end, np.mean([r.eval.mean_return for r in finals]), "o", color=color,
                    ms=7, mec="white", zorder=5)  # fmt: skip
        ax_frac.plot(x_end, _fraction(finals, scale), "o", color=color, ms=7, mec="white",
                     zorder=5)  # fmt: skip

    styles = {"oracle": ("black", "--"), "planner": ("black", "-"), "random": ("#555555", ":")}
    others = ["#8c564b", "#e377c2", "#bcbd22", "#17becf"]
    for j, agent in enumerate(fixed):
        kind = results[by_agent[agent][0].key].type
        color, style = styles.get(kind, (others[j % len(others)], "-."))
        finals = [results[c.key] for c in by_agent[agent]]
        value = float(np.mean([r.eval.mean_return for r in finals]))
        frac = _fraction(finals, scale)
        ax_ret.axhline(value, color=color, ls=style, lw=1.6, label=f"{agent} (eval {value:.2f})")
        ax_frac.axhline(frac, color=color, ls=style, lw=1.6)

    ax_ret.set_title("Episode return (training episodes)")
    ax_ret.set_ylabel("episode return")
    if scale is None:
        ax_frac.set_title("Return as a fraction of the optimal return")
        ax_frac.set_ylabel("return / optimal return (same episodes)")
    else:
        ax_frac.set_title("Return as a fraction of the planner's (the upper reference)")
        ax_frac.set_ylabel(f"return / planner's evaluation return ({scale:.2f})")
    for ax in (ax_ret, ax_frac):
        ax.set_xlabel("env steps (all listeners summed)")
        ax.grid(alpha=0.3)
        ax.set_xlim(0, max_steps * 1.03)
        ax.xaxis.set_major_formatter(FuncFormatter(_steps_label))
    ax_ret.set_ylim(bottom=0)
    ax_frac.set_ylim(0, 1.05)
    n_seeds = len(config.seeds)
    over = "1 seed" if n_seeds == 1 else f"mean over {n_seeds} seeds, band: range over seeds"
    fig.suptitle(
        f"{config.name}: learning curves on {config.env.id}\n"
        f"training episodes ({over}; moving average over {window}/{bins} of the steps)   "
        "dot: greedy evaluation after training   lines: evaluation of the fixed policies",
        fontsize=10.5,
    )
    handles, labels = ax_ret.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", frameon=False, fontsize=9.5)
    fig.savefig(path, dpi=110)
    return path


def _fraction(finals: list[CellResult], scale: float | None) -> float:
    """Mean evaluation fraction of the optimal (per-step), or of ``scale`` (the planner's)."""
    if scale is None:
        return float(np.mean([r.eval.fraction_of_optimal for r in finals]))
    return float(np.mean([r.eval.mean_return for r in finals])) / scale


def _read_curve(path: Path, purpose: str = "the plot") -> pd.DataFrame | None:
    """A cell's ``curve.csv``; ``None`` (with a ``ResultWarning``) if absent or implausible.

    ``purpose`` names what it is left out of, in the warning.
    """
    if not path.is_file():
        return None
    problem = ""
    try:
        curve = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as err:
        problem = f"cannot be read ({err})"
    else:
        missing = [c for c in CURVE_COLUMNS if c not in curve.columns]
        if missing:
            problem = f"lacks the column(s) {', '.join(missing)}"
        else:
            values = curve[list(CURVE_COLUMNS)].apply(pd.to_numeric, errors="coerce")
            if not np.isfinite(values.to_numpy(dtype=float)).all():
                problem = "holds values that are not finite numbers"
            elif (values["steps"] < 0).any() or (values["steps"] > MAX_REPORTED_TRAIN_STEPS).any():
                problem = f"holds steps outside [0, {MAX_REPORTED_TRAIN_STEPS}]"
            else:
                curve = curve.assign(**{c: values[c] for c in CURVE_COLUMNS})
    if problem:
        warnings.warn(f"{path}: left out of {purpose}: it {problem}", ResultWarning, stacklevel=3)
        return None
    return curve


def _steps_label(x: float, _pos: int) -> str:
    """Tick label of an env-step count: 0, 500, 20k, 1.5M."""
    if abs(x) >= 1e6:
        return f"{x / 1e6:g}M"
    if abs(x) >= 1e3:
        return f"{x / 1e3:g}k"
    return f"{x:g}"


def write_report(
    run_dir: Path,
    config: ExperimentConfig,
    cells: Sequence[Cell],
    results: dict[str, CellResult],
) -> str:
    """Write ``results_per_seed.csv``, ``results.csv``, ``results.md`` and ``curves.png``.

    Results that fail ``check_result`` are left out, with a ``ResultWarning`` and an
    "Excluded results" section in ``results.md`` (see the module docstring).

    Returns:
        The Markdown of ``results.md``.
    """
    results, excluded = screen_results(run_dir, cells, results)
    cells = [cell for cell in cells if cell.key in results]
    per_seed = per_seed_table(config, cells, results, run_dir)
    per_seed.to_csv(run_dir / "results_per_seed.csv", index=False, float_format="%.6g")
    order = list(dict.fromkeys(c.agent.name for c in cells))
    swept = swept_columns(cells)
    points = {cell.agent.name: cell.point for cell in cells}
    summary = summary_table(per_seed, order, swept, points)
    summary.to_csv(run_dir / "results.csv", index=False, float_format="%.6g")
    text = markdown_table(config, summary, swept)
    if excluded:
        lines = ["", "## Excluded results", ""]
        lines += [
            "These saved results failed the range checks and are in no table or plot "
            "(delete a file and rerun to recompute its cell):",
            "",
        ]
        lines += [f"- `{path}`: {'; '.join(problems)}" for path, problems in excluded]
        text += "\n".join(lines) + "\n"
    (run_dir / "results.md").write_text(text, encoding="utf-8")
    plot_curves(run_dir, config, cells, results)
    return text
