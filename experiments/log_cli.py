"""``musicrec log``: the subcommand's parser and handler (kept light: imports on use).

``musicrec log --policy world --sessions 10000 --seed 0 --out runs/logs/NAME`` rolls
out a logging policy (``experiments.logged.log_sessions``) and writes the
:class:`~musicrec_gym.logged_data.LoggedDataset` directory; ``--obp`` adds an Open
Bandit Pipeline-style ``bandit_feedback.npz``, ``--minari ID`` a Minari dataset
(``minari.load_dataset(ID)``). See ``docs/logged-data.md``.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
from pathlib import Path
from typing import Any

OBP_FILE = "bandit_feedback.npz"
"""The Open Bandit Pipeline-style file ``--obp`` writes into the dataset directory."""
MINARI_ENV_ID = {False: "MusicRec-v0", True: "MusicRecLongTerm-v0"}


def add_command(subparsers) -> argparse.ArgumentParser:
    """Register ``log`` on ``musicrec``'s subparsers."""
    p = subparsers.add_parser(
        "log",
        help="log sessions of a logging policy with exact propensities (for OPE, offline RL)",
        description="Roll out a logging policy on a world and write the logged sessions "
        "(observation, action, reward, the policy's exact propensity, episode and step ids, "
        "and the simulator-only truth columns) as a dataset directory; optionally also an "
        "Open Bandit Pipeline-style bandit_feedback.npz and a Minari dataset. "
        "Format: docs/logged-data.md.",
    )
    p.add_argument(
        "--policy", default="world",
        help="world (the world's own logger), uniform, oracle, popularity or planner "
        "softened by epsilon-greedy (oracle:0.1), or any agent softened by a softmax over "
        "its scores or epsilon-greedy: softmax:AGENT:TAU or egreedy:AGENT:EPS, then "
        "optional ,key=value options (train_steps, train_seed, state=FILE, the agent's "
        "hyperparameters), e.g. softmax:linucb:0.05,train_steps=20000 (default: world)",
    )  # fmt: skip
    p.add_argument("--sessions", default="10000", help="sessions to log (10000)")
    p.add_argument("--seed", default="0", help="seed: episode e is reset with seed*10**7+e (0)")
    p.add_argument("--world", default=None, metavar="DIR", help="world directory (built-in)")
    p.add_argument("--long-term", action="store_true", help="MusicRecLongTerm-v0 (synthetic)")
    p.add_argument("--reward", default="listen", help="listen, time or event (listen)")
    p.add_argument("--max-steps", default=None, help="recommendations per session (world's)")
    p.add_argument(
        "--epsilon", default=None, help="epsilon of a softened policy given without one (0.1)"
    )
    p.add_argument("--num-envs", default="256", help="concurrent sessions (speed only; 256)")
    p.add_argument(
        "--ref-sessions", default="500",
        help="sessions behind ref_min_score (uniform) and ref_max_score (oracle; planner "
        "with --long-term), 0 to skip (500)",
    )  # fmt: skip
    p.add_argument("--out", required=True, help="dataset directory, e.g. runs/logs/NAME")
    p.add_argument("--obp", action="store_true", help=f"also write OUT/{OBP_FILE}")
    p.add_argument(
        "--minari", default=None, metavar="DATASET_ID",
        help="also write a Minari dataset (under MINARI_DATASETS_PATH) with this id",
    )  # fmt: skip
    p.add_argument(
        "--force", action="store_true",
        help="replace a non-empty --out (and an existing Minari dataset of that id)",
    )  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary line")
    p.set_defaults(func=run_command)
    return p


def _int(text: Any, name: str, low: int) -> int:
    from musicrec_gym.errors import ConfigError

    try:
        value = int(str(text))
    except ValueError:
        raise ConfigError(f"argument {name}: must be an integer >= {low}, got {text!r}") from None
    if value < low:
        raise ConfigError(f"argument {name}: must be an integer >= {low}, got {text!r}")
    return value


def _epsilon(text: Any) -> float | None:
    from musicrec_gym.errors import ConfigError

    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ConfigError(f"argument --epsilon: must be a number in [0, 1], got {text!r}")
    return value


def check_out(out: Path, force: bool) -> None:
    """Refuse an ``--out`` that is a file, or a non-empty directory without ``--force``."""
    from musicrec_gym.errors import ConfigError

    if out.is_file():
        raise ConfigError(f"argument --out: {out}: is a file, expected a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ConfigError(
            f"argument --out: {out}: exists and is not empty (choose another or add --force)"
        )


def run_command(args: argparse.Namespace) -> int:
    """Handle ``musicrec log``."""
    from musicrec_gym.errors import ConfigError

    sessions = _int(args.sessions, "--sessions", 1)
    seed = _int(args.seed, "--seed", 0)
    num_envs = _int(args.num_envs, "--num-envs", 1)
    ref_sessions = _int(args.ref_sessions, "--ref-sessions", 0)
    max_steps = None if args.max_steps is None else _int(args.max_steps, "--max-steps", 1)
    from experiments.soft_policies import parse_logging_policy

    spec = parse_logging_policy(args.policy, _epsilon(args.epsilon))
    out = Path(args.out)
    check_out(out, args.force)
    if args.world is not None and not Path(args.world).is_dir():
        raise ConfigError(f"argument --world: {args.world}: no such world directory")
    if args.minari is not None:
        minari = import_minari()
        if args.minari in minari.list_local_datasets() and not args.force:
            raise ConfigError(
                f"argument --minari: dataset {args.minari!r} exists (another id, or --force)"
            )
    from experiments.logged import log_sessions

    dataset = log_sessions(
        world=args.world, policy=spec, sessions=sessions, seed=seed, num_envs=num_envs,
        long_term=args.long_term, reward=args.reward, max_steps=max_steps,
        progress=not args.quiet, ref_sessions=ref_sessions,
    )  # fmt: skip
    dataset.meta["command"] = ["musicrec", *getattr(args, "argv", [])]
    write_dataset_dir(dataset, out, obp=args.obp)
    if args.minari is not None:
        write_minari(dataset, args.minari, world=args.world, force=args.force)
    if not args.quiet:
        returns = dataset.episode_returns()
        print(
            f"logged {dataset.n_episodes} sessions ({dataset.n_rows} steps) of {spec} to {out}: "
            f"mean return {returns.mean():.3f}, ref_min_score {dataset.meta['ref_min_score']}, "
            f"ref_max_score {dataset.meta['ref_max_score']}"
        )
    return 0


def write_dataset_dir(dataset: Any, out: Path, obp: bool = False) -> None:
    """Write the dataset (and ``--obp``'s file) to a temporary directory, then move it to ``out``.

    An existing ``out`` (``--force``) is replaced only once the new one is complete.
    """
    from musicrec_gym.logged_data import replace_dir, unused_path

    tmp = unused_path(out)
    try:
        dataset.save(tmp)
        if obp:
            write_obp(dataset, tmp / OBP_FILE)
        if out.is_dir() and any(out.iterdir()):
            old = unused_path(out)
            os.replace(out, old / "old")
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def obp_feedback(dataset: Any) -> dict[str, Any]:
    """The dataset as Open Bandit Pipeline's ``bandit_feedback`` dict (one round per step).

    Keys: ``n_rounds``, ``n_actions``, ``action``, ``position`` (the step in the
    session), ``reward``, ``pscore``, ``context`` (the observation), ``action_context``;
    also ``episode`` and, apart, the truth columns (``truth_expected_reward`` ...).
    """
    return {
        "n_rounds": dataset.n_rows,
        "n_actions": dataset.n_actions,
        "action": dataset.action,
        "position": dataset.step,
        "reward": dataset.reward,
        "pscore": dataset.pscore,
        "context": dataset.obs,
        "action_context": dataset.action_context,
        "episode": dataset.episode,
        **dataset.truth_columns(),
    }


def write_obp(dataset: Any, path: Path) -> None:
    """Write :func:`obp_feedback` as an ``.npz`` (``np.load(path)``), atomically."""
    import io

    import numpy as np

    from musicrec_gym.artifacts import write_bytes_atomic

    buffer = io.BytesIO()
    np.savez(buffer, **{k: np.asarray(v) for k, v in obp_feedback(dataset).items()})
    write_bytes_atomic(path, buffer.getvalue())


def import_minari() -> Any:
    """``minari``, or a clear ``ConfigError`` saying how to install it."""
    from musicrec_gym.errors import ConfigError

    try:
        import minari
    except ImportError as err:
        raise ConfigError(
            f"--minari needs the minari package ({err}); install it with "
            "`pip install 'minari>=0.5'`"
        ) from None
    return minari


def minari_buffers(dataset: Any) -> list[Any]:
    """The dataset's episodes as Minari ``EpisodeBuffer``s, infos included.

    Each episode has ``L + 1`` observations (the reset's, then one per step) and
    ``L + 1`` infos with the same keys (the reset's placeholders: ``propensity`` 1,
    ``step`` 0, ``listened`` False, the truth 0): ``propensity`` (the logging
    policy's), ``step``, ``user``, ``listened``, ``truth_expected_reward``,
    ``truth_optimal_reward``, ``warmup_tracks``, ``warmup_listened``.
    """
    import numpy as np
    from minari.data_collector import EpisodeBuffer

    starts = dataset.episode_starts()
    buffers = []
    for e in range(dataset.n_episodes):
        lo, hi = int(starts[e]), int(starts[e + 1])
        n = hi - lo

        def with_reset(column: np.ndarray, first: Any, lo=lo, hi=hi) -> np.ndarray:
            return np.concatenate([np.asarray([first], dtype=column.dtype), column[lo:hi]])

        infos = {
            "propensity": with_reset(dataset.pscore, 1.0),
            "step": np.arange(n + 1, dtype=np.int64),
            "user": np.full(n + 1, dataset.user[lo], dtype=np.int64),
            "listened": with_reset(dataset.listened, False),
            "truth_expected_reward": with_reset(dataset.truth_expected_reward, 0.0),
            "truth_optimal_reward": with_reset(dataset.truth_optimal_reward, 0.0),
            "warmup_tracks": np.repeat(dataset.warmup_tracks[e : e + 1], n + 1, axis=0),
            "warmup_listened": np.repeat(dataset.warmup_listened[e : e + 1], n + 1, axis=0),
        }
        buffers.append(
            EpisodeBuffer(
                id=e,
                seed=int(dataset.reset_seed[e]),
                observations=np.concatenate([dataset.obs[lo : lo + 1], dataset.next_obs[lo:hi]]),
                actions=dataset.action[lo:hi],
                rewards=dataset.reward[lo:hi],
                terminations=dataset.terminated[lo:hi],
                truncations=dataset.truncated[lo:hi],
                infos=infos,
            )
        )
    return buffers


def write_minari(dataset: Any, dataset_id: str, world: Any = None, force: bool = False) -> Any:
    """Write the dataset as a Minari dataset ``dataset_id`` (``ref_*_score`` from ``meta``).

    Returns:
        The ``MinariDataset``.
    """
    import warnings

    import gymnasium as gym

    import musicrec_gym  # noqa: F401  (registers the ids)

    minari = import_minari()
    meta = dataset.meta
    kwargs = dict(meta["env_kwargs"])
    kwargs.pop("profile_features", None)
    long_term = bool(kwargs.pop("long_term", False))
    if world is not None:
        kwargs["world"] = str(Path(world).resolve())
    env = gym.make(MINARI_ENV_ID[long_term], **kwargs)
    if dataset_id in minari.list_local_datasets() and force:
        minari.delete_dataset(dataset_id)
    refs = {
        k: meta.get(k)
        for k in ("ref_min_score", "ref_max_score")
        if meta.get("ref_min_score") is not None and meta.get("ref_max_score") is not None
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # minari's "no code_permalink" notes
        created = minari.create_dataset_from_buffers(
            dataset_id=dataset_id,
            buffer=minari_buffers(dataset),
            env=env,
            algorithm_name=f"musicrec log --policy {meta['policy']}",
            author="musicrec-gym",
            author_email="musicrec-gym@users.noreply.example.org",
            code_permalink="experiments/log_cli.py",
            description=(
                f"MusicRec sessions logged by {meta['policy']} on {meta['world']} (seed "
                f"{meta['seed']}). infos: propensity (the logging policy's exact probability "
                "of the action); truth_* keys are simulator-only, not logged features."
            ),
            **refs,
        )
    env.close()
    return created
