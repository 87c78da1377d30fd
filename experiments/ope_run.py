"""``musicrec ope``'s run: estimates per seed, graded against the truth, and the report.

For each replicate seed: the dataset (logged with that seed, or the given dataset's
episodes resampled with replacement with that seed), every target replayed along it
(``experiments.ope_targets``), the cross-fitted models (``experiments.ope_models``) and
every estimator (``experiments.ope``). Each target's session truth comes from its own
on-policy rollouts, once. The outputs, each written atomically into the output
directory:

- ``ope_seeds.csv``: one row per seed, target and estimator.
- ``ope.csv`` and ``ope.md``: per target and estimator, over the seeds: the mean
  estimate, the truth, bias (mean of estimate − truth), RMSE, the first seed's 95%
  interval and whether it covers that seed's truth, and how many seeds' intervals do.
- ``ope.png``: every seed's estimate and interval beside the truth, per target.
- ``config.yaml``: the config as run.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from experiments.logged import log_sessions
from experiments.ope import DECISION_ESTIMATORS, DR_COUNTERPARTS, estimate, rmse
from experiments.ope_config import OPEConfig
from experiments.ope_models import DEFAULT_Q_MODEL, fit_models
from experiments.ope_targets import SessionTruth, TargetReplay, replay_targets, session_truth
from musicrec_gym.artifacts import write_bytes_atomic
from musicrec_gym.errors import ConfigError
from musicrec_gym.logged_data import LoggedDataset, load_dataset

#: Estimators that need the models.
MODEL_ESTIMATORS = ("dm", "dr", "sdr", "wdr")


@dataclass(frozen=True)
class OPEResult:
    """What a run measured.

    Attributes:
        seeds: One row per seed, target and estimator (``ope_seeds.csv``).
        table: One row per target and estimator (``ope.csv``).
        markdown: ``ope.md``'s text.
        out_dir: Where the outputs are.
        elapsed_s: Wall time.
    """

    seeds: pd.DataFrame
    table: pd.DataFrame
    markdown: str
    out_dir: Path
    elapsed_s: float


def level_of(estimator: str) -> str:
    """``decision`` or ``session``."""
    return "decision" if estimator in DECISION_ESTIMATORS else "session"


def resample_episodes(dataset: LoggedDataset, rng: np.random.Generator) -> np.ndarray:
    """The rows of a resample of the episodes with replacement, episodes kept whole."""
    starts = dataset.episode_starts()
    picks = np.sort(rng.integers(0, dataset.n_episodes, dataset.n_episodes))
    lengths = starts[picks + 1] - starts[picks]
    first = np.repeat(starts[picks], lengths)
    return first + np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)


def estimate_replicate(
    dataset: LoggedDataset,
    rows: np.ndarray,
    replay: TargetReplay,
    estimators: tuple[str, ...],
    reps: int,
    folds: int,
    seed: int,
    q_model: str = DEFAULT_Q_MODEL,
) -> list[tuple[str, Any, float]]:
    """Every estimator on ``rows`` of ``dataset`` for one target; with the step truth.

    Only the logged columns and the target's distribution enter the estimators (never
    the ``truth_*`` columns nor ``replay.truth_step``).

    Returns:
        ``(estimator, OPEEstimate, per-decision truth)`` per estimator.
    """
    sub = replay.subset(rows)
    # episodes renumbered so that a resampled episode's copies are separate episodes
    episode = np.cumsum(np.r_[True, (np.diff(rows) != 1) | (dataset.step[rows][1:] == 0)]) - 1
    action, reward, pscore = dataset.action[rows], dataset.reward[rows], dataset.pscore[rows]
    target_prob = sub.dist.prob(action)
    models = None
    if any(e in MODEL_ESTIMATORS for e in estimators):
        horizon = int(dataset.meta.get("env_kwargs", {}).get("max_steps") or 0) or None
        models = fit_models(
            episode,
            dataset.step[rows],
            dataset.obs[rows],
            action,
            reward,
            dataset.action_context,
            sub.dist,
            user=dataset.user[rows],
            horizon=horizon,
            folds=folds,
            seed=seed,
            logger=sub.logger,
            q_model=q_model,
        ).as_dict()
    truth = float(sub.truth_step.mean())
    return [
        (name, estimate(name, episode, reward, pscore, target_prob, models, reps, seed), truth)
        for name in estimators
    ]


def run_ope(
    config: OPEConfig, out_dir: str | Path, say: Callable[[str], None] | None = print
) -> OPEResult:
    """Run a validated config and write its outputs into ``out_dir``.

    Raises:
        ConfigError, DataFormatError, ArtifactError: Bad settings or dataset (named).
    """
    say = say or (lambda _: None)
    t0 = time.perf_counter()
    out = Path(out_dir)
    base: LoggedDataset | None = None
    world: Any = None
    if config.dataset is not None:
        base = load_dataset(config.dataset)
        world = None if base.meta.get("world") == "built-in" else base.meta.get("world")
        env_kwargs = dict(base.meta.get("env_kwargs") or {})
        base_replays = replay_targets(base, list(config.targets), world=world)
    else:
        assert config.log is not None
        world = config.log.world
        env_kwargs = config.log.env_kwargs()
    truths: dict[str, SessionTruth] = {}
    if any(level_of(e) == "session" for e in config.estimators):
        for spec in config.targets:
            say(f"truth: {config.truth_sessions} on-policy sessions of {spec}")
            truths[str(spec)] = session_truth(spec, env_kwargs, config.truth_sessions, world)
    records: list[dict[str, Any]] = []
    for seed in config.seeds:
        if base is None:
            assert config.log is not None
            say(f"seed {seed}: logging {config.log.sessions} sessions of {config.log.policy}")
            data = log_sessions(
                world=world,
                policy=config.log.policy,
                sessions=config.log.sessions,
                seed=seed,
                progress=False,
                ref_sessions=0,
                **config.log.env_kwargs(),
            )
            rows = np.arange(data.n_rows)
            replays = replay_targets(data, list(config.targets), world=world)
        else:
            data, replays = base, base_replays
            rows = resample_episodes(base, np.random.default_rng(seed))
        for replay in replays:
            name = str(replay.spec)
            say(f"seed {seed}: estimating {name}")
            for est_name, est, step_truth in estimate_replicate(
                data,
                rows,
                replay,
                config.estimators,
                config.bootstrap,
                config.folds,
                seed,
                config.q_model,
            ):
                level = level_of(est_name)
                truth = step_truth if level == "decision" else truths[name].value
                records.append(
                    {
                        "seed": seed,
                        "target": name,
                        "estimator": est_name,
                        "level": level,
                        "estimate": est.value,
                        "low": est.low,
                        "high": est.high,
                        "truth": truth,
                        "error": est.value - truth,
                        "covers": est.covers(truth),
                        "truth_low": truths[name].low if level == "session" else math.nan,
                        "truth_high": truths[name].high if level == "session" else math.nan,
                        "logging_policy": str(data.meta.get("policy")),
                        "episodes": int(np.sum(data.step[rows] == 0)),
                    }
                )
    seeds = pd.DataFrame.from_records(records)
    table = summarise(seeds, config, truths)
    elapsed = time.perf_counter() - t0
    markdown = render_markdown(table, config, truths, elapsed, seeds)
    write_outputs(out, seeds, table, markdown, config)
    return OPEResult(seeds, table, markdown, out, elapsed)


def summarise(
    seeds: pd.DataFrame, config: OPEConfig, truths: dict[str, SessionTruth]
) -> pd.DataFrame:
    """One row per target and estimator, over the seeds."""
    rows = []
    first = config.seeds[0]
    for (target, estimator), group in seeds.groupby(["target", "estimator"], sort=False):
        one = group[group["seed"] == first].iloc[0]
        truth = truths.get(target)
        rows.append(
            {
                "target": target,
                "estimator": estimator,
                "level": one["level"],
                "estimate": float(group["estimate"].mean()),
                "truth": float(group["truth"].mean()),
                "bias": float(group["error"].mean()),
                "rmse": rmse(group["error"].to_numpy()),
                "low": float(one["low"]),
                "high": float(one["high"]),
                "covers": "yes" if bool(one["covers"]) else "no",
                "covered_seeds": f"{int(group['covers'].sum())}/{len(group)}",
                "truth_low": truth.low if truth and one["level"] == "session" else math.nan,
                "truth_high": truth.high if truth and one["level"] == "session" else math.nan,
            }
        )
    return pd.DataFrame.from_records(rows)


VERDICT_HEADER = (
    "| target | check | DR RMSE | IS RMSE | holds | support |\n|---|---|---:|---:|---|---:|"
)
"""The head of the table of :func:`dr_verdicts`' lines."""
SUPPORT_RESAMPLES = 2000
"""Resamples of the seeds behind each DR-versus-IS check's support (:func:`dr_support`)."""


def dr_support(dr_errors: np.ndarray, is_errors: np.ndarray) -> float:
    """Share of paired resamples of the seeds in which the DR RMSE <= the IS RMSE.

    The seeds (one logged dataset each) are drawn with replacement, the same draw for
    both estimators, :data:`SUPPORT_RESAMPLES` times from a generator seeded with 0: how
    firmly the seeds back the check's verdict (near 0.5: a tie that other seeds could
    turn). NaN with one seed.
    """
    n = len(dr_errors)
    if n < 2:
        return math.nan
    draws = np.random.default_rng(0).integers(0, n, size=(SUPPORT_RESAMPLES, n))
    dr_mse = (np.asarray(dr_errors, np.float64)[draws] ** 2).mean(axis=1)
    is_mse = (np.asarray(is_errors, np.float64)[draws] ** 2).mean(axis=1)
    return float(np.mean(dr_mse <= is_mse))


def dr_verdicts(table: pd.DataFrame, seeds: pd.DataFrame) -> list[str]:
    """Per target, each doubly-robust estimator's RMSE against its IS counterpart's.

    With the check's support over the seeds (:func:`dr_support`).
    """
    lines = []
    by = {(r.target, r.estimator): r for r in table.itertuples()}
    errors = seeds.pivot_table(index="seed", columns=["target", "estimator"], values="error")
    for target in dict.fromkeys(table["target"]):
        for dr, is_ in DR_COUNTERPARTS.items():
            if (target, dr) in by and (target, is_) in by:
                a, b = by[(target, dr)].rmse, by[(target, is_)].rmse
                verdict = "yes" if a <= b else "no"
                support = dr_support(errors[(target, dr)], errors[(target, is_)])
                shown = "–" if math.isnan(support) else f"{support:.2f}"
                lines.append(
                    f"| {target} | {dr} ≤ {is_} | {a:.4g} | {b:.4g} | {verdict} | {shown} |"
                )
    return lines


def render_markdown(
    table: pd.DataFrame,
    config: OPEConfig,
    truths: dict[str, SessionTruth],
    elapsed: float,
    seeds: pd.DataFrame,
) -> str:
    """``ope.md``: the table, the DR-versus-IS check and how it was measured."""
    source = (
        f"dataset `{config.dataset}` (episodes resampled per seed)"
        if config.dataset
        else f"{config.log.sessions:,} sessions logged by `{config.log.policy}` per seed"  # type: ignore[union-attr]
    )
    lines = [
        f"# Off-policy evaluation: {config.name}",
        "",
        f"{source}; seeds {', '.join(map(str, config.seeds))}; {config.bootstrap} bootstrap "
        f"resamples of the episodes per interval; models cross-fitted over {config.folds} "
        f"fold(s), Q-model `{config.q_model}`; session truth from "
        f"{config.truth_sessions:,} on-policy sessions per target; "
        f"{elapsed:.0f} s.",
        "",
        "Per-decision estimators (`decision`) estimate the target's mean expected reward per "
        "logged step (truth: the replay's exact mean); session-level ones (`session`) its "
        "expected session return (truth: on-policy rollouts, 95% interval in brackets). "
        "Interval: the first seed's 95% bootstrap interval; covers: whether it holds that "
        "seed's truth; covered: over all seeds.",
        "",
        "| target | estimator | level | estimate | truth | bias | RMSE | 95% interval | covers "
        "| covered |",
        "|---|---|---|---:|---:|---:|---:|---|---|---|",
    ]
    for r in table.itertuples():
        truth = f"{r.truth:.4f}"
        if r.level == "session" and math.isfinite(r.truth_low):
            truth += f" [{r.truth_low:.3f}, {r.truth_high:.3f}]"
        lines.append(
            f"| {r.target} | {r.estimator} | {r.level} | {r.estimate:.4f} | {truth} | "
            f"{r.bias:+.4f} | {r.rmse:.4f} | [{r.low:.4f}, {r.high:.4f}] | {r.covers} | "
            f"{r.covered_seeds} |"
        )
    verdicts = dr_verdicts(table, seeds)
    if verdicts:
        lines += [
            "",
            "Doubly robust against importance sampling (RMSE over the seeds). Support: the "
            f"share of {SUPPORT_RESAMPLES:,} paired resamples of the seeds in which DR's "
            "RMSE is at most IS's (near 0.5: a tie that other seeds could turn).",
            "",
            VERDICT_HEADER,
            *verdicts,
        ]
    return "\n".join(lines) + "\n"


def write_outputs(
    out: Path, seeds: pd.DataFrame, table: pd.DataFrame, markdown: str, config: OPEConfig
) -> None:
    """``ope_seeds.csv``, ``ope.csv``, ``ope.md``, ``ope.png`` and ``config.yaml``."""
    out.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out / "ope_seeds.csv", seeds.to_csv(index=False).encode())
    write_bytes_atomic(out / "ope.csv", table.to_csv(index=False).encode())
    write_bytes_atomic(out / "ope.md", markdown.encode())
    write_bytes_atomic(out / "config.yaml", config.text.encode())
    write_bytes_atomic(out / "ope.png", plot_png(seeds, config))


def plot_png(seeds: pd.DataFrame, config: OPEConfig) -> bytes:
    """Each target a panel per level: every seed's estimate and interval, the truth a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = list(dict.fromkeys(seeds["target"]))
    levels = [lv for lv in ("decision", "session") if (seeds["level"] == lv).any()]
    fig, axes = plt.subplots(
        len(levels),
        len(targets),
        figsize=(3.2 * len(targets) + 0.5, 3.0 * len(levels) + 0.6),
        squeeze=False,
    )
    for i, level in enumerate(levels):
        for j, target in enumerate(targets):
            ax = axes[i][j]
            part = seeds[(seeds["level"] == level) & (seeds["target"] == target)]
            names = list(dict.fromkeys(part["estimator"]))
            if level == "session" and len(part):
                band = part.iloc[0]
                ax.axhspan(band["truth_low"], band["truth_high"], color="0.85", zorder=0)
            n_seeds = len(config.seeds)
            for k, name in enumerate(names):
                rows = part[part["estimator"] == name].reset_index(drop=True)
                xs = k + (np.arange(len(rows)) - (len(rows) - 1) / 2) * (0.6 / max(n_seeds, 1))
                color = "tab:green" if name in DR_COUNTERPARTS else "tab:blue"
                if name == "dm":
                    color = "tab:orange"
                ax.errorbar(
                    xs,
                    rows["estimate"],
                    yerr=[rows["estimate"] - rows["low"], rows["high"] - rows["estimate"]],
                    fmt="o",
                    ms=3,
                    color=color,
                    lw=1,
                )
                for x, t in zip(xs, rows["truth"], strict=True):
                    ax.plot([x - 0.08, x + 0.08], [t, t], color="black", lw=1.5)
            ax.set_xticks(range(len(names)), names)
            ax.set_title(f"{target} ({level})", fontsize=9)
            ax.tick_params(labelsize=8)
            if j == 0:
                ax.set_ylabel("mean reward per step" if level == "decision" else "session return")
    fig.suptitle(
        f"{config.name}: each seed's estimate and 95% interval\nblack: the truth "
        "(grey: the session truth's 95% interval)",
        fontsize=10,
    )
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def check_out_dir(out: Path) -> Path:
    """``out`` as a directory to write (refused when it is a file)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: a file, not a directory")
    return out
