"""The PNGs of ``musicrec realism``, rendered in memory (the report writes them at the end).

``skip_by_position.png``, ``session_length.png``, ``reliability.png`` and
``policy_groups.png``; see :mod:`musicrec_gym.realism` for what each shows.
"""

from __future__ import annotations

import io
import math
import textwrap
from typing import Any

import numpy as np

from musicrec_gym.realism_records import Grouping, PolicyFidelity, RealismSummary, Replay
from musicrec_gym.sim.fitted import WINDOW

__all__ = ["PNG_FILES", "render_plots"]

PNG_FILES = ("skip_by_position.png", "session_length.png", "reliability.png", "policy_groups.png")


def render_plots(rep: Replay, y: np.ndarray, p: np.ndarray, s: RealismSummary) -> dict[str, bytes]:
    """Every PNG of the report, by file name (nothing is written).

    Args:
        rep: The replay.
        y: Real listen flags of the held-out plays from position 6.
        p: Their predicted listen probabilities.
        s: The report's figures.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = {}
    for name, draw, size in (
        ("skip_by_position.png", lambda ax: _skip_by_position(ax, rep, s), (7, 4.2)),
        ("session_length.png", lambda ax: _session_length(ax, rep, s), (7, 4.2)),
        ("reliability.png", lambda ax: _reliability(ax, y, p, s), (5.2, 5.2)),
    ):
        fig, ax = plt.subplots(figsize=size, dpi=120)
        try:
            draw(ax)
            out[name] = _png(fig)
        finally:
            plt.close(fig)
    out["policy_groups.png"] = _policy_groups(plt, s.policy_groups)
    return out


def _png(fig: Any, **savefig: Any) -> bytes:
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", **savefig)
    return buffer.getvalue()


def _skip_by_position(ax: Any, rep: Replay, s: RealismSummary) -> None:
    max_len = len(rep.real_skip)
    pos = np.arange(1, max_len + 1)
    ax.axvspan(0.5, WINDOW + 0.5, color="0.92", label="warm-up (logged in both)")
    ax.plot(pos, rep.real_skip, "o-", color="tab:blue", label="real held-out sessions")
    ax.plot(pos, rep.sim_skip, "s--", color="tab:orange", label="fitted simulator (replay)")
    ax.set_xticks(pos)
    ax.set_xlim(0.5, max_len + 0.5)
    ax.set_ylim(0, 1)
    ax.set_xlabel("position in session")
    ax.set_ylabel("skip rate")
    ax.set_title(
        f"Skip rate by position (positions {WINDOW + 1}-{max_len}: real "
        f"{s.real_skip_rate:.3f}, simulated {s.sim_skip_rate:.3f})",
        fontsize=10,
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=9)


def _session_length(ax: Any, rep: Replay, s: RealismSummary) -> None:
    max_len = len(rep.real_skip)
    bins = np.arange(0.5, max_len + 1.5)
    ax.hist(
        [rep.real_lengths, rep.sim_lengths],
        bins=bins,
        label=["real held-out", "simulated"],
        color=["tab:blue", "tab:orange"],
        density=True,
    )
    ax.set_xticks(np.arange(WINDOW + 1, max_len + 1))
    ax.set_xlim(WINDOW + 0.5, max_len + 0.5)
    ax.set_xlabel("session length (plays, warm-up included)")
    ax.set_ylabel("share of sessions")
    ax.set_title(
        f"Session length: real mean {s.real_mean_length:.2f}, simulated "
        f"{s.sim_mean_length:.2f}, KS = {s.length_ks:.3f}",
        fontsize=10,
    )
    ax.grid(alpha=0.3, axis="y")
    ax.legend(loc="upper left", fontsize=9)


def _reliability(ax: Any, y: np.ndarray, p: np.ndarray, s: RealismSummary) -> None:
    from sklearn.calibration import calibration_curve

    observed, predicted = calibration_curve(y, p, n_bins=10, strategy="quantile")
    ax.plot([0, 1], [0, 1], ":", color="0.5", label="perfect calibration")
    ax.plot(predicted, observed, "o-", color="tab:green", label="response model (deciles)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("predicted listen probability")
    ax.set_ylabel("observed listen rate")
    ax.set_title(
        f"Reliability on held-out plays (AUC {s.auc:.3f},\nmean |gap| {s.calibration_error:.3f})",
        fontsize=10,
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=9)


def _policy_groups(plt: Any, policy: PolicyFidelity) -> bytes:
    n = len(policy.groupings)
    fig, axes = plt.subplots(1, n, figsize=(5.2 * n, 6.4), dpi=120, squeeze=False)
    try:
        for ax, grouping in zip(axes[0], policy.groupings, strict=True):
            _policy_panel(ax, grouping, policy)
        return _png(fig, bbox_inches="tight", pad_inches=0.15)  # the keys below the axes
    finally:
        plt.close(fig)


def _policy_panel(ax: Any, g: Grouping, policy: PolicyFidelity) -> None:
    ax.set_xlabel("real skip rate (positions 6+)")
    ax.set_ylabel("simulated skip rate (replay)")
    shown = [x for x in g.groups if not math.isnan(x.real_skip_rate + x.sim_skip_rate)]
    if not shown:
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.text(
            0.5, 0.5, textwrap.fill(g.note or "no groups", 40), ha="center", va="center", fontsize=9
        )
        ax.set_title(f"{g.name}: not computed", fontsize=10)
        return
    values = [v for x in shown for v in (x.real_skip_rate, x.sim_skip_rate)]
    low = max(0.0, min(values) - 0.06)
    high = min(1.0, max(values) + 0.06)
    line = np.array([low, high])
    ax.fill_between(
        line, line - policy.gap_target, line + policy.gap_target, color="0.9",
        label=f"within ±{policy.gap_target} (target)",
    )  # fmt: skip
    ax.plot(line, line, ":", color="0.4", label="simulated = real")
    key = []
    for number, x in enumerate(shown, start=1):
        color = "tab:purple" if x.included else "0.6"
        if x.included:
            ax.vlines(
                x.real_skip_rate, x.real_skip_rate + x.gap_low, x.real_skip_rate + x.gap_high,
                color=color, alpha=0.45, lw=1.5,
            )  # fmt: skip
        ax.plot(
            x.real_skip_rate, x.sim_skip_rate, "o", ms=7, color=color,
            mfc=color if x.included else "white",
        )  # fmt: skip
        ax.plot(x.real_skip_rate, x.predicted_skip_rate, "x", ms=6, color=color)
        ax.annotate(
            str(number), (x.real_skip_rate, x.sim_skip_rate), xytext=(5, 3),
            textcoords="offset points", fontsize=8, color=color, fontweight="bold",
        )  # fmt: skip
        tail = f"gap {x.skip_rate_gap:+.3f}" if x.included else "too few sessions"
        key.append(f"{number} {x.name} (n={x.sessions}): {tail}")
    ax.text(
        0.0, -0.13, "\n".join(key), transform=ax.transAxes, ha="left", va="top",
        fontsize=8, family="monospace",
    )  # fmt: skip
    for marker, mfc, label in (
        ("o", "tab:purple", f"replay, >= {policy.min_group_sessions} sessions (in tau)"),
        ("o", "white", "replay, too few sessions (not in tau)"),
        ("x", "tab:purple", "predicted, teacher forced"),
    ):
        ax.plot([], [], marker, color="tab:purple" if mfc != "white" else "0.6", mfc=mfc,
                label=label)  # fmt: skip
    ax.plot([], [], "|", color="tab:purple", alpha=0.45, ms=10, label="95% interval of the gap")
    ax.plot([], [], " ", label="(bootstrap over the group's sessions)")
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.set_aspect("equal")
    tau = "n/a" if g.tau_skip is None else f"{g.tau_skip:.2f}"
    if g.tau_skip_low is not None and g.tau_skip_high is not None:
        tau += f" [{g.tau_skip_low:.2f}, {g.tau_skip_high:.2f}]"
    gap = "n/a" if g.max_abs_gap is None else f"{g.max_abs_gap:.3f}"
    verdict = "" if g.target_met is None else (" (targets met)" if g.target_met else " (not met)")
    ax.set_title(
        f"{g.name}: Kendall tau {tau}, max |gap| {gap}{verdict}\n"
        f"targets: tau >= {policy.tau_target}, every |gap| <= {policy.gap_target}",
        fontsize=9,
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=7)
