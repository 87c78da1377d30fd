"""TensorBoard logging of a training run, CleanRL style.

Tags (x-axis: env steps, all listeners summed):

- ``charts/episode_return``: return of a finished training episode.
- ``charts/return_fraction_of_optimal``: that return divided by the sum of
  ``info["optimal_reward"]`` along the same episode.
- ``charts/cumulative_regret``: sum over every training step so far of
  ``optimal_reward - expected_reward`` (all listeners).
- ``charts/listen_rate``: listens / recommendations in the episode.
- ``charts/episode_length``: recommendations in the episode.
- ``eval/*``: the greedy evaluation's means, one point at the end of training.
- ``hyperparameters`` (text): the agent's hyperparameters and the cell's settings as
  a Markdown table.

Every finished episode is a row of the cell's ``curve.csv``. In TensorBoard, the
episodes that finish at the same env step (several listeners are stepped at once) are
averaged into one point, and so are those that finish within a window of ``log_every``
env steps: writing a scalar costs ~0.2 ms (the event file's CRC is pure Python) and
TensorBoard shows at most 1,000 points per tag anyway, so a million-step run would
otherwise spend minutes logging. The runner uses ``log_every = train_steps // 1000``,
so a small run gets one point per step with a finished episode.
"""

from __future__ import annotations

import csv
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: Columns of a cell's ``curve.csv`` (one row per finished training episode).
CURVE_COLUMNS = (
    "steps",
    "episode_return",
    "optimal_return",
    "length",
    "listens",
    "cumulative_regret",
)


def hparams_markdown(params: dict[str, Any]) -> str:
    """A two-column Markdown table ``| param | value |``, as CleanRL logs it."""
    lines = ["| param | value |", "|---|---|"]
    for key, value in params.items():
        text = str(value).replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {key} | {text} |")
    return "\n".join(lines)


@dataclass
class TrainingLogger:
    """The ``EpisodeCallback`` of a cell: TensorBoard scalars and the curve rows.

    Args:
        writer: A ``torch.utils.tensorboard.SummaryWriter`` (or ``None``: rows only).
        regret: Returns the cumulative training regret so far (the metered environment's).
        log_every: Episodes that finish within this many env steps of each other are
            averaged into one TensorBoard point (1: every episode is a point).
    """

    writer: Any
    regret: Any
    log_every: int = 1
    rows: list[tuple[int, float, float, int, int, float]] = field(default_factory=list)
    _window: list[tuple[float, float, float, float]] = field(default_factory=list)
    _window_start: int = -1
    _window_last: int = -1

    def __call__(
        self, steps: int, episode_return: float, optimal_return: float, length: int, listens: int
    ) -> None:
        """Record one finished training episode."""
        cumulative = float(self.regret())
        self.rows.append(
            (int(steps), float(episode_return), float(optimal_return), int(length), int(listens),
             cumulative)
        )  # fmt: skip
        if self.writer is None:
            return
        # Close the window at a step boundary, so a step's episodes share one point.
        if (
            self._window
            and steps != self._window_last
            and steps - self._window_start >= self.log_every
        ):
            self.flush()
        if not self._window:
            self._window_start = int(steps)
        self._window_last = int(steps)
        self._window.append(
            (
                float(episode_return),
                episode_return / optimal_return if optimal_return > 0 else math.nan,
                listens / length if length > 0 else math.nan,
                float(length),
            )
        )

    def flush(self) -> None:
        """Write the pending window's means to TensorBoard."""
        if not self._window or self.writer is None:
            return
        values = np.asarray(self._window, dtype=np.float64)
        step = self._window_last
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            means = np.nanmean(values, axis=0)
        w = self.writer
        w.add_scalar("charts/episode_return", means[0], step)
        if np.isfinite(means[1]):
            w.add_scalar("charts/return_fraction_of_optimal", means[1], step)
        w.add_scalar("charts/cumulative_regret", self.rows[-1][5], step)
        if np.isfinite(means[2]):
            w.add_scalar("charts/listen_rate", means[2], step)
        w.add_scalar("charts/episode_length", means[3], step)
        self._window = []

    @property
    def episodes(self) -> int:
        """Finished training episodes so far."""
        return len(self.rows)

    def write_csv(self, path: Path) -> None:
        """Write the rows as ``curve.csv``."""
        with open(path, "w", newline="", encoding="utf-8") as fh:
            out = csv.writer(fh)
            out.writerow(CURVE_COLUMNS)
            for row in self.rows:
                out.writerow(_fmt(v) for v in row)


def _fmt(value: float | int) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    return str(value)
