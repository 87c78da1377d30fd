"""``task: embeddings``: a grid of skip-gram settings scored on playlist completion.

Each cell trains gensim skip-gram embeddings on a source's sessions with one grid
point's ``EmbeddingConfig`` and one seed, and scores them with
``musicrec_gym.embeddings.evaluate_completion`` (hold out the last two tracks of each
session, predict the last from the one before by cosine nearest neighbours; Hit@K and
NDCG@K next to a most-popular baseline). It is ``musicrec_gym.embeddings.sweep`` cut
into cells, so that the grid runs in parallel processes or on Ray Tune and resumes like
any experiment; for the same sessions, settings and seed a cell gives exactly the
numbers ``sweep`` gives.

Sessions: ``synthetic`` regenerates a synthetic world's logged sessions from its seed
(``musicrec_gym.sim.sessions``, the logging policy ``musicrec build`` uses; seed 0 and the
default sizes are the built-in world's world, with fewer sessions); any other kind is
read by ``musicrec_gym.data.sources.token_sessions(kind, path, **options)`` (``mssd``,
``lastfm``, ``playlists``, ``events``; rows the reader drops are logged as a warning,
once by the preflight and once per worker process). A worker process loads the
sessions once and reuses them for its cells.

Run directory: as for agents (``cells/<variant>__seed<k>/result.json``,
``tb/embeddings__<name>__<variant>__seed<k>/``), with ``results.csv`` / ``results.md``
holding one row per grid point (mean ± 95% t-interval over seeds, the swept values as
columns), ``results_per_seed.csv`` one row per cell, and ``completion.png`` (Hit@K and
NDCG@K against a numeric swept setting, next to the popularity baseline).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from experiments.limits import out_of_range
from experiments.outputs import atomic_write_json, write_output
from experiments.progress import Progress
from experiments.report import Stat
from experiments.schema import EmbeddingExperimentConfig, SessionSource
from experiments.sweep import columns, grid, value_label, variant_name
from experiments.task import Task
from musicrec_gym.errors import ConfigError, MusicRecError

#: Name of the embedding method in cell names (skip-gram with negative sampling).
METHOD = "sgns"
#: The score columns: (column, Markdown header).
SCORES = (("hit", "Hit@{k}"), ("ndcg", "NDCG@{k}"), ("pop_hit", "Popularity Hit@{k}"),
          ("pop_ndcg", "Popularity NDCG@{k}"))  # fmt: skip


@functools.lru_cache(maxsize=4)
def load_sessions(source: SessionSource) -> tuple[tuple[str, ...], ...]:
    """The sessions of a source, as track-id tokens (cached per process).

    Raises:
        ConfigError: A real source is asked for and ``musicrec_gym.data.sources`` is
            not installed.
    """
    if source.kind == "synthetic":
        from musicrec_gym.data.synthetic import SyntheticConfig, generate_world
        from musicrec_gym.sim.params import SimulatorParams
        from musicrec_gym.sim.sessions import logging_simulator_factory, simulate_sessions

        world = SyntheticConfig(
            n_tracks=source.n_tracks,
            n_artists=min(SyntheticConfig().n_artists, source.n_tracks),
            n_listeners=source.n_listeners,
            seed=source.seed,
        )
        catalog, _, truth = generate_world(world)
        artist = pd.factorize(catalog["artist_id"], sort=True)[0]
        factory = logging_simulator_factory(
            truth, artist, catalog["popularity"].to_numpy(), SimulatorParams()
        )
        _, lengths, tracks, _ = simulate_sessions(
            factory, source.n_sessions, seed=source.seed, progress=False
        )
        ids = catalog["track_id"].to_numpy(dtype=object)
        return tuple(tuple(ids[row[:n]]) for row, n in zip(tracks, lengths, strict=True))
    try:
        from musicrec_gym.data.sources import token_sessions
    except ImportError as err:
        raise ConfigError(
            f"session source {source.kind!r} needs musicrec_gym.data.sources, which this "
            "installation does not have; use kind: synthetic"
        ) from err
    return tuple(tuple(s) for s in token_sessions(source.kind, source.path, **dict(source.options)))


# ------------------------------------------------------------------------ records


@dataclass(frozen=True)
class EmbeddingCellResult:
    """What an embeddings cell's ``result.json`` holds.

    Attributes:
        cell: The cell's key.
        agent: The grid point's name (``sgns@ns_exponent=0.5``; ``agent`` so that the
            runner's messages and tables treat it like an agent variant).
        seed: The embeddings' training seed.
        scores: ``CompletionScores`` as a dict (k, n_queries, hit, ndcg, pop_hit, pop_ndcg).
        n_sessions: Sessions of the source.
        time_s: Wall time of training and evaluation.
        cpu_time_s: CPU time of the cell.
        settings: ``EmbeddingCell.settings()`` of the cell that produced it.
        hyperparameters: The ``EmbeddingConfig`` used.
        finished: ISO time the cell finished.
    """

    cell: str
    agent: str
    seed: int
    scores: dict[str, Any]
    n_sessions: int
    time_s: float
    cpu_time_s: float
    settings: dict[str, Any]
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    finished: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EmbeddingCellResult:
        """Inverse of ``dataclasses.asdict``."""
        return cls(**data)

    def problems(self, cell: EmbeddingCell) -> list[str]:
        """Why this cannot be a result of ``cell`` (empty when it can).

        Hit@K and NDCG@K (one relevant track per query) and the popularity baseline's
        lie in [0, 1]; K is the cell's; counts and times are finite and not negative.
        """
        if not isinstance(self.scores, dict):
            return [f"scores is {self.scores!r}, not a mapping"]
        s, inf = self.scores, math.inf
        checks = [(f"scores.{c}", s.get(c), 0.0, 1.0) for c, _ in SCORES]
        checks += [
            ("scores.n_queries", s.get("n_queries"), 0, inf),
            ("n_sessions", self.n_sessions, 0, inf),
            ("time_s", self.time_s, 0.0, inf),
            ("cpu_time_s", self.cpu_time_s, 0.0, inf),
        ]
        found = [p for p in (out_of_range(*check) for check in checks) if p is not None]
        if s.get("k") != cell.k:
            found.append(f"scores.k is {s.get('k')!r}, the cell has {cell.k}")
        return found

    def describe(self) -> str:
        """One line for the log when the cell finishes."""
        s = self.scores
        return (
            f"Hit@{s['k']} {s['hit']:.4f} (popularity {s['pop_hit']:.4f}), "
            f"NDCG@{s['k']} {s['ndcg']:.4f}, {self.time_s:.0f} s"
        )


@dataclass(frozen=True)
class EmbeddingCell:
    """One (grid point, seed) of an embeddings experiment.

    Attributes:
        experiment: Experiment name.
        name: The grid point's name, ``sgns@<label>=<value>,...``.
        sessions: Where the sessions come from.
        embedding: ``EmbeddingConfig`` fields of the grid point (without ``seed``).
        k: Length of the recommendation list.
        seed: The embeddings' training seed.
        swept: ``(column, value)`` of every swept setting.
    """

    experiment: str
    name: str
    sessions: SessionSource
    embedding: dict[str, Any]
    k: int
    seed: int
    swept: tuple[tuple[str, Any], ...] = ()

    result_type: ClassVar[type] = EmbeddingCellResult

    @property
    def key(self) -> str:
        """Directory name under ``cells/``: ``<name>__seed<k>``."""
        return f"{self.name}__seed{self.seed}"

    @property
    def tb_name(self) -> str:
        """Directory name under ``tb/``: ``embeddings__<experiment>__<name>__seed<k>``."""
        return f"embeddings__{self.experiment}__{self.name}__seed{self.seed}"

    def settings(self) -> dict[str, Any]:
        """Everything that determines the cell's result (compared when resuming)."""
        return {
            "sessions": dataclasses.asdict(self.sessions),
            "embedding": dict(self.embedding),
            "k": self.k,
            "seed": self.seed,
        }

    def cost(self) -> int:
        """Relative cost (epochs over the corpus)."""
        return int(self.embedding.get("epochs", 10))

    def run(self, run_dir: str | Path, progress: Progress | None = None) -> EmbeddingCellResult:
        """Train and score the embeddings; ``result.json`` is written last."""
        from torch.utils.tensorboard import SummaryWriter

        from experiments.tblog import hparams_markdown
        from musicrec_gym.embeddings import EmbeddingConfig, evaluate_completion

        progress = progress or Progress()
        run_dir = Path(run_dir)
        cell_dir, tb_dir = run_dir / "cells" / self.key, run_dir / "tb" / self.tb_name
        for stale in (cell_dir, tb_dir):
            if stale.exists():
                shutil.rmtree(stale)
        cell_dir.mkdir(parents=True)
        tb_dir.mkdir(parents=True)
        cpu0, t0 = time.process_time(), time.perf_counter()
        writer = SummaryWriter(log_dir=str(tb_dir))
        try:
            progress.phase(self.key, "eval", 1)
            sessions = load_sessions(self.sessions)
            config = EmbeddingConfig(**self.embedding, seed=self.seed)
            scores = evaluate_completion(sessions, config, k=self.k)
            hparams = dataclasses.asdict(config)
            writer.add_text(
                "hyperparameters",
                hparams_markdown(
                    {
                        "grid point": self.name,
                        **hparams,
                        "k": self.k,
                        **{
                            f"sessions.{k}": v for k, v in dataclasses.asdict(self.sessions).items()
                        },
                    }
                ),
            )
            for name, value in (
                (f"eval/hit@{self.k}", scores.hit),
                (f"eval/ndcg@{self.k}", scores.ndcg),
                (f"eval/popularity_hit@{self.k}", scores.pop_hit),
                (f"eval/popularity_ndcg@{self.k}", scores.pop_ndcg),
            ):
                writer.add_scalar(name, value, config.epochs)
            writer.flush()
            progress.advance(self.key, 1)
            result = EmbeddingCellResult(
                cell=self.key,
                agent=self.name,
                seed=self.seed,
                scores=dataclasses.asdict(scores),
                n_sessions=len(sessions),
                time_s=round(time.perf_counter() - t0, 3),
                cpu_time_s=round(time.process_time() - cpu0, 3),
                settings=self.settings(),
                hyperparameters=hparams,
                finished=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            )
            atomic_write_json(cell_dir / "result.json", dataclasses.asdict(result))
            return result
        except BaseException:
            import traceback

            (cell_dir / "error.txt").write_text(traceback.format_exc(), encoding="utf-8")
            raise
        finally:
            writer.close()
            progress.done(self.key)


# ----------------------------------------------------------------------- planning


def plan_embedding_cells(config: EmbeddingExperimentConfig) -> list[EmbeddingCell]:
    """One cell per grid point and seed, grid points in the order of the sweep block."""
    cells = []
    for assignment in grid(config.sweep):
        embedding = dict(config.embedding)
        for axis, value in assignment:
            embedding[axis.field[1]] = value
        name = variant_name(METHOD, assignment)
        for seed in config.seeds:
            cells.append(
                EmbeddingCell(
                    experiment=config.name,
                    name=name,
                    sessions=config.sessions,
                    embedding=embedding,
                    k=config.k,
                    seed=seed,
                    swept=columns(assignment),
                )
            )
    return cells


def preflight(config: EmbeddingExperimentConfig) -> None:
    """Load the sessions once, so that a bad source fails before any cell starts."""
    try:
        sessions = load_sessions(config.sessions)
    except MusicRecError as err:
        raise ConfigError(f"{config.source}: sessions {config.sessions}: {err}") from err
    if not any(len(s) >= 3 for s in sessions):
        raise ConfigError(
            f"{config.source}: the {len(sessions)} sessions of {config.sessions.kind!r} have "
            "no session of 3 or more tracks; playlist completion holds out the last two"
        )


# ------------------------------------------------------------------------- report


def per_seed_table(cells: Sequence[EmbeddingCell], results: dict[str, Any]) -> pd.DataFrame:
    """One row per finished cell."""
    rows = []
    for cell in cells:
        r = results.get(cell.key)
        if r is None:
            continue
        rows.append(
            {
                "grid_point": cell.name,
                **dict(cell.swept),
                "seed": cell.seed,
                **{c: r.scores[c] for c, _ in SCORES},
                "k": r.scores["k"],
                "n_queries": r.scores["n_queries"],
                "time_s": r.time_s,
                "cpu_time_s": r.cpu_time_s,
            }
        )
    return pd.DataFrame(rows)


def summary_table(per_seed: pd.DataFrame, swept: Sequence[str]) -> pd.DataFrame:
    """One row per grid point (in grid order): mean and 95% CI over seeds of every score."""
    rows = []
    if not len(per_seed):
        return pd.DataFrame(rows)
    for name, part in per_seed.groupby("grid_point", sort=False):
        row: dict[str, Any] = {"grid_point": name}
        row.update({c: part[c].iloc[0] for c in swept})
        row["n_seeds"] = len(part)
        for column, _ in SCORES:
            stat = Stat.of(part[column].tolist())
            row[f"{column}_mean"], row[f"{column}_ci95"] = stat.mean, stat.ci95
        row["n_queries"] = int(part["n_queries"].iloc[0])
        row["time_s"] = float(part["time_s"].mean())
        rows.append(row)
    return pd.DataFrame(rows)


def markdown_table(
    config: EmbeddingExperimentConfig, summary: pd.DataFrame, swept: Sequence[str]
) -> str:
    """The Markdown of ``results.md``."""
    k = config.k
    source = config.sessions
    what = (
        f"synthetic world seed {source.seed} ({source.n_tracks} tracks, "
        f"{source.n_listeners} listeners), {source.n_sessions:,} logged sessions"
        if source.kind == "synthetic"
        else f"{source.kind} sessions from {source.path}"
    )
    fixed = ", ".join(f"{k_}={v}" for k_, v in config.embedding.items()) or "defaults"
    headers = ["Grid point", *swept, "Seeds", *(h.format(k=k) for _, h in SCORES), "Queries"]
    lines = [
        f"# {config.name}: playlist completion",
        "",
        f"Skip-gram embeddings (gensim; fixed settings: {fixed}) on {what}. Last track of "
        f"each session predicted from the one before by cosine nearest neighbours among "
        f"{k} recommendations; mean ± 95% t-interval half-width over "
        f"{len(config.seeds)} seed(s) (n/a with one seed).",
        "",
        "| " + " | ".join(headers) + " |",
        "|"
        + "|".join(["---"] * (1 + len(swept)) + ["---:"] * (len(headers) - 1 - len(swept)))
        + "|",
    ]
    for row in summary.to_dict("records"):
        cells = [str(row["grid_point"]), *(value_label(row[c]) for c in swept)]
        cells.append(str(row["n_seeds"]))
        for column, _ in SCORES:
            stat = Stat(row[f"{column}_mean"], row[f"{column}_ci95"], int(row["n_seeds"]))
            cells.append(stat.format("{:.4f}"))
        cells.append(f"{row['n_queries']:,}")
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Popularity: the most frequent training tracks, the same for every query (it does "
        "not depend on the embeddings, so it only varies with the sessions).",
    ]
    return "\n".join(lines) + "\n"


def plot_completion(
    run_dir: Path,
    config: EmbeddingExperimentConfig,
    per_seed: pd.DataFrame,
    column: str,
) -> Path:
    """``completion.png``: Hit@K and NDCG@K against one numeric swept setting."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    k = config.k
    means = per_seed.groupby(column, sort=True)
    for ax, (metric, base, title) in zip(
        axes, (("hit", "pop_hit", f"Hit@{k}"), ("ndcg", "pop_ndcg", f"NDCG@{k}")), strict=True
    ):
        x = np.asarray(sorted(per_seed[column].unique()), dtype=float)
        mean = means[metric].mean().to_numpy()
        lo, hi = means[metric].min().to_numpy(), means[metric].max().to_numpy()
        ax.plot(x, mean, "o-", color="#1f77b4", lw=2, label="skip-gram nearest neighbours")
        if per_seed["seed"].nunique() > 1:
            ax.fill_between(x, lo, hi, color="#1f77b4", alpha=0.2, lw=0, label="range over seeds")
        pop = float(per_seed[base].mean())
        ax.axhline(pop, color="#555555", ls=":", lw=1.6, label=f"most popular ({pop:.3f})")
        ax.set_title(title)
        ax.set_xlabel(column)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=9)
    seeds = per_seed["seed"].nunique()
    fig.suptitle(
        f"{config.name}: playlist completion against {column} "
        f"(mean over {seeds} seed{'s' if seeds > 1 else ''})",
        fontsize=11,
    )
    path = run_dir / "completion.png"
    write_output(path, lambda tmp: fig.savefig(tmp, dpi=110))
    return path


def write_report(
    run_dir: Path,
    config: EmbeddingExperimentConfig,
    cells: Sequence[EmbeddingCell],
    results: dict[str, Any],
) -> str:
    """Write ``results_per_seed.csv``, ``results.csv``, ``results.md`` (and the plot).

    The plot is drawn when exactly one setting is swept and it is numeric. Each file is
    written by ``experiments.outputs.write_output`` (temporary name, then renamed; an
    ``OSError`` becomes an ``OutputWriteError`` naming the file).

    Returns:
        The Markdown of ``results.md``.
    """
    swept = list(dict.fromkeys(c for cell in cells for c, _ in cell.swept))
    per_seed = per_seed_table(cells, results)
    write_output(
        run_dir / "results_per_seed.csv",
        lambda tmp: per_seed.to_csv(tmp, index=False, float_format="%.6g"),
    )
    summary = summary_table(per_seed, swept)
    write_output(
        run_dir / "results.csv", lambda tmp: summary.to_csv(tmp, index=False, float_format="%.6g")
    )
    text = markdown_table(config, summary, swept)
    write_output(run_dir / "results.md", lambda tmp: tmp.write_text(text, encoding="utf-8"))
    numeric = len(swept) == 1 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        for v in per_seed.get(swept[0], [])
    )
    if numeric and len(per_seed):
        plot_completion(run_dir, config, per_seed, swept[0])
    return text


EMBEDDINGS_TASK = Task(plan=plan_embedding_cells, preflight=preflight, report=write_report)
