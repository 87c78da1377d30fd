"""``musicrec optimum``: the subcommand's parser and handler (kept light: imports on use)."""

from __future__ import annotations

import argparse
from pathlib import Path

from musicrec_gym.errors import ConfigError


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"must be an integer from 0 to {2**32 - 1}, got {text!r}")
    return value


def add_command(subparsers) -> argparse.ArgumentParser:
    """Register ``optimum`` on ``musicrec``'s subparsers."""
    p = subparsers.add_parser(
        "optimum",
        help="bracket the optimal return of a synthetic world (upper bound, planner, greedy)",
        description="For sessions of a synthetic world under its true model (listen "
        "reward), from the state after the warm-up: a provable upper bound on the optimal "
        "expected return, the exact value of an open-loop plan searched over whole "
        "sessions and the Monte Carlo value (95% CI) of a lookahead planner (lower "
        "bounds), the greedy oracle's exact value and a random policy's; with --long-term, "
        "for the world's long-term variant (satisfaction on). Writes "
        "OUT/optimum.md, OUT/optimum.json and OUT/sessions.csv. Method: docs/optimum.md.",
    )
    p.add_argument("--world", default=None, help="world directory (default: the built-in world)")
    p.add_argument("--sessions", type=_positive, default=1000, help="session starts (1000)")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the sessions (0)")
    p.add_argument(
        "--top-k", type=_positive, default=None,
        help="planner: tracks expanded (4; with --long-term: per kind of move, 2)",
    )  # fmt: skip
    p.add_argument("--depth", type=_positive, default=2, help="planner: plays looked ahead (2)")
    p.add_argument(
        "--long-term", action="store_true",
        help="the world's long-term variant (MusicRecLongTerm-v0: satisfaction on)",
    )  # fmt: skip
    p.add_argument("--out", default="runs/optimum", help="report directory (runs/optimum)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_command)
    return p


def run_command(args: argparse.Namespace) -> int:
    """Handle ``musicrec optimum``."""
    from musicrec_gym.optimum import OptimumConfig, run_optimum, write_report
    from musicrec_gym.optimum_plan import Planner
    from musicrec_gym.optimum_search import OpenLoopSearch

    if args.world is not None and not Path(args.world).is_dir():
        raise ConfigError(f"argument --world: {args.world}: not a world directory")
    long_term = bool(getattr(args, "long_term", False))
    top_k = args.top_k if args.top_k is not None else (2 if long_term else 4)
    config = OptimumConfig(
        sessions=args.sessions,
        seed=args.seed,
        planner=Planner(top_k, args.depth),
        # the long-term climb takes the first improving move: many more, cheaper moves
        search=OpenLoopSearch(rounds=1000) if long_term else OpenLoopSearch(),
        long_term=long_term,
    )
    result = run_optimum(args.world, config, progress=not args.quiet)
    command = "musicrec " + " ".join(getattr(args, "argv", ["optimum"]))
    path = write_report(result, args.out, command)
    s = result.summary
    print(
        f"upper bound {s['upper_bound']:.4f}, best policy {s['lower_bound']:.4f} "
        f"({s['lower_bound_from']}), greedy {s['greedy_exact']:.4f}: gap "
        f"{100 * s['gap']:.2f}% (target {100 * s['target_gap']:.0f}%: "
        f"{'met' if s['target_met'] else 'not met'}); greedy share of the bound "
        f"{100 * s['greedy_share_of_upper']:.2f}%"
    )
    print(f"report: {path}")
    return 0
